"""Deterministic embedding vectors for a mock ``/v1/embeddings``.

Tests that use embeddings (retrieval, clustering, caching) need vectors that are the same in every
run and on every machine, and that mean something: a query should find the documents that share
its words. ``embed`` gives both without a model, numpy or the network.

Style ``semantic`` hashes features of the text (normalized words, bigrams of content words, and
the 3- to 6-character prefixes of content words as a cheap stem, so "rain", "raining" and "rained"
overlap) into a few signed dimensions each, then adds a small dense part so that vectors look
dense like a real model's. Style ``random`` is only the dense part: a seeded pseudo-random unit
vector per text, unrelated to its meaning.

Same floats everywhere: hashing is blake2b/SHAKE (``hash()`` is salted per process), bytes are
read explicitly little-endian, arithmetic is IEEE-754 ``+ * /`` and ``math.sqrt`` in a fixed order,
and sums of many terms use ``math.fsum``, which is correctly rounded (``sum`` of floats changed
its algorithm in Python 3.12). Only the Unicode tables behind ``casefold``/NFKC/``\\w`` differ
between Python versions, and only for characters those versions added.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import re
import struct
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache
from types import MappingProxyType

__all__ = [
    "DEFAULT_DIMENSIONS",
    "FIXED_DIMENSION_MODELS",
    "NATIVE_DIMENSIONS",
    "STYLES",
    "accepts_dimensions",
    "embed",
    "native_dimensions",
    "to_base64",
]

NATIVE_DIMENSIONS: Mapping[str, int] = MappingProxyType(
    {
        "text-embedding-ada-002": 1536,
        "text-embedding-3-small": 1536,
        "text-embedding-3-large": 3072,
        "gemini-embedding-001": 3072,
        "gemini-embedding-exp-03-07": 3072,
        "text-embedding-004": 768,
        "text-embedding-005": 768,
        "text-multilingual-embedding-002": 768,
        "embedding-001": 768,
    }
)
"""Length of a vector when the request names no ``dimensions``, per model (OpenAI's, Google's)."""

DEFAULT_DIMENSIONS = 1536
"""Length for models not in ``NATIVE_DIMENSIONS``: the most common size, ada-002's and 3-small's."""

FIXED_DIMENSION_MODELS: frozenset[str] = frozenset({"text-embedding-ada-002"})
"""Models for which OpenAI answers 400 "This model does not support specifying dimensions."."""

STYLES: frozenset[str] = frozenset({"semantic", "random"})

# Share of the squared length that goes to the dense part of a semantic vector. The dense parts
# of two different texts are nearly orthogonal (cosine ~1/sqrt(dimensions)), so cosines shrink
# by at most this share and rankings by shared words are kept.
_DENSE_SHARE = 0.04

# Feature weights (squared length each feature adds), each spread over _SLOTS signed dimensions.
# Hash collisions add noise of variance 1/dimensions to a cosine whatever the slot count, but
# more slots make its tail thin: one collision of two words moves a cosine by ~1/(5 * _SLOTS).
_SLOTS = 4
_SLOT_WORDS = struct.Struct(f"<{_SLOTS}I")
_SIGNS = (-1.0, 1.0)
_WORD = 1.0
_STOPWORD = 0.0625
_BIGRAM = 0.25
_PREFIX = 0.2

_TOKEN = re.compile(r"\w+")
# Function words carry little meaning; at full weight they would make "how is the weather"
# as close to "the database is slow" as to "weather report".
_STOPWORD_LIST = (
    "a an and are as at be been but by can could did do does for from had has have how i if in "
    "into is it its me my no not of on or our she so than that the their them then there these "
    "they this to was we were what when where which who why will with would you your"
)
_STOPWORDS = frozenset(_STOPWORD_LIST.split())


def _features(text: str) -> dict[str, float]:
    """Weighted features of ``text`` in first-seen order (the order fixes the float sums)."""
    words = _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())
    weights: dict[str, float] = {}
    get = weights.get
    content: list[str] = []
    for word in words:
        if word in _STOPWORDS:
            weights["w" + word] = get("w" + word, 0.0) + _STOPWORD
            continue
        weights["w" + word] = get("w" + word, 0.0) + _WORD
        content.append(word)
        for end in range(3, min(len(word), 6) + 1):
            gram = "p" + word[:end]
            weights[gram] = get(gram, 0.0) + _PREFIX
    for first, second in itertools.pairwise(content):
        bigram = f"b{first} {second}"
        weights[bigram] = get(bigram, 0.0) + _BIGRAM
    return weights


@lru_cache(maxsize=64)
def _hasher(seed: int, style: str) -> hashlib.blake2b:
    """A keyed blake2b per (seed, style), only ever copied: a different seed is another model."""
    key = hashlib.blake2b(f"{style}\x00{seed}".encode(), digest_size=32).digest()
    return hashlib.blake2b(key=key, digest_size=4 * _SLOTS)


@lru_cache(maxsize=8192)
def _slots(feature: str, dimensions: int, seed: int) -> tuple[tuple[int, float], ...]:
    """The signed dimensions of a feature; cached (bounded) as words recur from text to text."""
    h = _hasher(seed, "semantic").copy()
    h.update(feature.encode("utf-8", "surrogatepass"))
    words = _SLOT_WORDS.unpack(h.digest())
    return tuple([((word >> 1) % dimensions, _SIGNS[word & 1]) for word in words])


@lru_cache(maxsize=32)
def _circle(dimensions: int, share: float) -> tuple[tuple[float, ...], tuple[float, ...], float]:
    """Dense values as 256 points on a circle, scaled so ``dimensions`` of them have length^2 share.

    A dense pair (x, y) is one point, so every dense part has the same known length and needs no
    normalizing pass over its floats: the slow part of pure Python. The points are rational,
    ((1 - t^2), 2t) / (1 + t^2), so they need only IEEE division, not platform cos/sin.
    """
    radius = math.sqrt(2.0 * share / dimensions)
    xs: list[float] = []
    ys: list[float] = []
    for byte in range(256):
        t = ((byte & 63) + 0.5) / 64.0  # exact in binary; the angle 2*atan(t) is in (0, pi/2)
        x = (1.0 - t * t) / (1.0 + t * t) * radius
        y = 2.0 * t / (1.0 + t * t) * radius
        xs.append(-x if byte & 64 else x)
        ys.append(-y if byte & 128 else y)
    return tuple(xs), tuple(ys), math.sqrt(share / dimensions)


def _dense(text: str, dimensions: int, hasher: hashlib.blake2b, share: float) -> list[float]:
    """A dense vector of length^2 ``share`` (up to rounding) drawn from SHAKE-256 of the text."""
    head = hasher.copy()
    head.update(b"dense\x00" + text.encode("utf-8", "surrogatepass"))
    pairs = dimensions // 2
    stream = hashlib.shake_256(head.digest()).digest(pairs + 1)
    xs, ys, lone = _circle(dimensions, share)
    draws = stream[:pairs]
    vector = list(map(xs.__getitem__, draws))
    vector += map(ys.__getitem__, draws)
    if dimensions % 2:  # an odd length: the last value is alone, +-sqrt(share / dimensions)
        vector.append(lone if stream[pairs] & 1 else -lone)
    return vector


def _sparse(text: str, dimensions: int, seed: int) -> dict[int, float]:
    """Feature hashing: a feature adds +-sqrt(weight/_SLOTS) to dimensions chosen by blake2b."""
    vector: dict[int, float] = {}
    get = vector.get
    for feature, weight in _features(text).items():
        value = math.sqrt(weight / _SLOTS)  # a repeated feature grows like sqrt(count)
        for index, sign in _slots(feature, dimensions, seed):
            vector[index] = get(index, 0.0) + sign * value
    return vector


def embed(text: str, dimensions: int, seed: int = 0, style: str = "semantic") -> list[float]:
    """A unit vector of ``dimensions`` floats for ``text``, identical on every run and platform.

    ``semantic``: texts sharing words (or word stems, via word prefixes) have clearly
    higher cosine similarity than unrelated texts. ``random``: seeded noise, unrelated to meaning.
    The empty string gets a valid unit vector too.
    """
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
        raise ValueError(f"dimensions must be a positive integer, not {dimensions!r}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {sorted(STYLES)}, not {style!r}")
    hasher = _hasher(seed, style)
    sparse = _sparse(text, dimensions, seed) if style == "semantic" else {}
    squares = math.fsum(v * v for v in sparse.values())
    if squares == 0.0:  # random style, no words, or features that cancelled out
        return _dense(text, dimensions, hasher, 1.0)
    vector = _dense(text, dimensions, hasher, _DENSE_SHARE)
    # Add t * sparse with t chosen so that |dense + t * sparse| = 1: |dense|^2 = D is known
    # (up to rounding),
    # so t solves A t^2 + 2 B t - (1 - D) = 0 with A = |sparse|^2 and B = dense . sparse,
    # taken in the form without cancellation. No pass over all the floats is needed.
    cross = math.fsum(vector[i] * v for i, v in sparse.items())
    rest = 1.0 - _DENSE_SHARE
    scale = rest / (cross + math.sqrt(cross * cross + squares * rest))
    for index, value in sparse.items():
        vector[index] += scale * value
    return vector


def to_base64(vector: Sequence[float]) -> str:
    """``encoding_format: base64``: the floats as little-endian float32 bytes, base64-encoded.

    That is what OpenAI sends and what its SDK decodes (``np.frombuffer(..., dtype="float32")``
    or ``array.array("f", ...)``, both in the machine's byte order, little-endian in practice).
    """
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def from_base64(text: str) -> tuple[float, ...]:
    """The floats of ``to_base64``'s text; ValueError when it is not one."""
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError("not base64") from None
    if not data or len(data) % 4:
        raise ValueError(f"{len(data)} bytes are not a whole number of float32 values")
    return struct.unpack(f"<{len(data) // 4}f", data)


def exact_float32(vector: Sequence[float]) -> bool:
    """True when every float is a float32 value, so ``to_base64`` keeps it exactly."""
    try:
        return tuple(
            struct.unpack(f"<{len(vector)}f", struct.pack(f"<{len(vector)}f", *vector))
        ) == tuple(vector)
    except (OverflowError, struct.error):
        return False


def native_dimensions(model: str) -> int:
    """Vector length for ``model`` when the request has no ``dimensions``."""
    return NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)


def accepts_dimensions(model: str) -> bool:
    """Whether a request for ``model`` may carry ``dimensions`` (unknown models: yes)."""
    return model not in FIXED_DIMENSION_MODELS
