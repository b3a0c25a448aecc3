"""The deterministic embedding vectors: unit length, same bytes everywhere, and meaning."""

from __future__ import annotations

import array
import base64
import json
import math
import os
import struct
import subprocess
import sys
from collections.abc import Sequence

import pytest
from openai.lib._parsing._embeddings import parse_embedding_response
from openai.types import CreateEmbeddingResponse

from mockserver.core.vectors import (
    DEFAULT_DIMENSIONS,
    NATIVE_DIMENSIONS,
    accepts_dimensions,
    embed,
    native_dimensions,
    to_base64,
)

TEXTS = [
    "",
    " ",
    "hello",
    "The weather in Paris is rainy today",
    "\u00dcn\u00efc\u00f6d\u00e9 \uff26\uff35\uff2c\uff2c \u6771\u4eac\u306e\u5929\u6c17 \U0001f327",
    "lone surrogate \ud800 from a JSON escape",
    "word " * 2000,
]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def norm(v: Sequence[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in v))


@pytest.mark.parametrize("style", ["semantic", "random"])
@pytest.mark.parametrize("dimensions", [1, 2, 3, 7, 256, 1536, 3072])
@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_unit_length_and_dimensions(text: str, dimensions: int, style: str) -> None:
    vector = embed(text, dimensions, style=style)
    assert len(vector) == dimensions
    assert all(type(x) is float and math.isfinite(x) for x in vector)
    assert abs(norm(vector) - 1.0) < 1e-9


def test_same_call_same_floats_and_seed_matters() -> None:
    text = "The weather in Paris is rainy today"
    assert embed(text, 64) == embed(text, 64)
    assert embed(text, 64, seed=1) != embed(text, 64)
    assert embed(text, 64, style="random") != embed(text, 64)


def test_case_and_width_do_not_change_meaning() -> None:
    """Words are NFKC-normalized and casefolded; only the small dense part sees the raw text."""
    fullwidth = "\uff30\uff21\uff32\uff29\uff33 weather"  # PARIS in fullwidth letters
    assert cosine(embed("paris WEATHER", 1536), embed(fullwidth, 1536)) > 0.95
    assert cosine(embed("paris weather", 1536), embed("london traffic", 1536)) < 0.2


def test_vectors_look_dense() -> None:
    """Real embeddings have no zero entries; hashed features alone would leave most at 0."""
    vector = embed("how is the weather in Paris", 1536)
    assert all(x != 0.0 for x in vector)
    assert len({round(x, 9) for x in vector}) > 200


_CASES = [
    (text, d, seed, style)
    for text in TEXTS[:6]
    for d in (1, 5, 1536)
    for seed in (0, 7, -3)
    for style in ("semantic", "random")
]


def _fingerprint() -> list[str]:
    return [
        to_base64(embed(t, d, s, st)) + "|" + ",".join(float.hex(x) for x in embed(t, d, s, st))
        for t, d, s, st in _CASES
    ]


def test_same_floats_in_another_process() -> None:
    """hash() is salted per process: another interpreter with another salt must agree exactly."""
    script = "import json, sys; from tests.test_vectors import _fingerprint; json.dump(_fingerprint(), sys.stdout)"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(out.stdout) == _fingerprint()


def test_golden_values() -> None:
    """Pinned floats: a change here changes every stored vector of every user, on purpose only."""
    assert [float.hex(x) for x in embed("The weather in Paris", 6)] == GOLDEN_SEMANTIC
    assert [
        float.hex(x) for x in embed("The weather in Paris", 5, seed=3, style="random")
    ] == GOLDEN_RANDOM
    assert to_base64(embed("", 4)) == GOLDEN_EMPTY_BASE64


GOLDEN_SEMANTIC = [
    "-0x1.ae981f0efb941p-3",
    "-0x1.69b53d2615cd1p-1",
    "-0x1.8bf5d67654789p-2",
    "-0x1.0ab149608b181p-1",
    "-0x1.f8f6c7ae79010p-7",
    "-0x1.8292469f6a5d4p-3",
]
GOLDEN_RANDOM = [
    "-0x1.dcaccafe2603dp-3",
    "0x1.42d49d5de59f7p-1",
    "0x1.2d178f4b01903p-1",
    "-0x1.9427a431825e4p-5",
    "-0x1.c9f25c5bfedd9p-2",
]
GOLDEN_EMPTY_BASE64 = "qbDmvB6jqb4w4DS/Cusfvw=="


QUERY = "how is the weather in Paris"
RELATED = [
    "The weather in Paris is rainy today",
    "Weather forecast: sunny with light wind tomorrow",
    "Paris is the capital of France",
]
UNRELATED = [
    "Mix the flour and eggs, then bake the cake for forty minutes",
    "Create an index to speed up slow database queries",
    "The cat is sleeping on the mat",
]


@pytest.mark.parametrize("dimensions", [1536, 3072])
@pytest.mark.parametrize("seed", range(10))
def test_retrieval_ranks_related_documents_first(seed: int, dimensions: int) -> None:
    """At the native sizes: hash-collision noise on a cosine is about 1/sqrt(dimensions)."""
    query = embed(QUERY, dimensions, seed)
    scores = {doc: cosine(query, embed(doc, dimensions, seed)) for doc in RELATED + UNRELATED}
    ranking = sorted(scores, key=scores.__getitem__, reverse=True)
    assert ranking[0] == RELATED[0], scores  # shares both words
    assert set(ranking[:3]) == set(RELATED), scores
    assert min(scores[d] for d in RELATED) - max(scores[d] for d in UNRELATED) > 0.05, scores


def test_short_vectors_keep_meaning_on_average() -> None:
    """At 256 dimensions one seed may misrank (noise ~1/16), but the signal is still there."""

    def mean_score(docs: list[str]) -> float:
        scores = [cosine(embed(QUERY, 256, s), embed(d, 256, s)) for s in range(10) for d in docs]
        return math.fsum(scores) / len(scores)

    assert mean_score(RELATED) > 0.15 + mean_score(UNRELATED)


def test_similarity_is_clearly_higher_for_shared_words() -> None:
    """Averaged over seeds, so one lucky hash collision cannot make the test pass or fail."""
    pairs_related = [
        ("rain", "raining"),
        ("databases", "database"),
        ("It is raining in London", "rain in London"),
    ]
    pairs_unrelated = [
        ("rain", "database"),
        ("raining", "cake"),
        ("It is raining in London", "bake a cake"),
    ]

    def mean_cosine(a: str, b: str) -> float:
        return math.fsum(cosine(embed(a, 1536, s), embed(b, 1536, s)) for s in range(10)) / 10

    for related, unrelated in zip(pairs_related, pairs_unrelated, strict=True):
        assert mean_cosine(*related) > 0.1 + mean_cosine(*unrelated)
    assert abs(mean_cosine(*pairs_unrelated[0])) < 0.05


def test_random_style_ignores_meaning() -> None:
    a, b = "the weather in Paris", "Paris weather"
    assert cosine(embed(a, 1536), embed(b, 1536)) > 0.5
    assert abs(cosine(embed(a, 1536, style="random"), embed(b, 1536, style="random"))) < 0.15
    assert embed(a, 32, seed=5, style="random") == embed(a, 32, seed=5, style="random")
    assert embed(a, 32, seed=5, style="random") != embed(a, 32, seed=6, style="random")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_bad_dimensions_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="dimensions"):
        embed("x", bad)


def test_unknown_style_rejected() -> None:
    with pytest.raises(ValueError, match="style"):
        embed("x", 8, style="dense")


def _sdk_decode(data: str) -> list[float]:
    """The decode in openai/lib/_parsing/_embeddings.py (numpy's frombuffer float32 agrees)."""
    return array.array("f", base64.b64decode(data)).tolist()


@pytest.mark.parametrize("dimensions", [1, 3, 1536, 3072])
def test_base64_is_what_the_sdk_decodes(dimensions: int) -> None:
    vector = embed("The weather in Paris is rainy today", dimensions)
    encoded = to_base64(vector)
    assert len(base64.b64decode(encoded)) == 4 * dimensions
    as_float32 = [struct.unpack("<f", struct.pack("<f", x))[0] for x in vector]
    assert _sdk_decode(encoded) == as_float32
    assert all(abs(a - b) < 1e-7 for a, b in zip(_sdk_decode(encoded), vector, strict=True))
    # and the SDK's own post-parser, as applied when the caller left encoding_format unset
    response = CreateEmbeddingResponse.construct(
        object="list",
        model="text-embedding-3-small",
        data=[{"object": "embedding", "index": 0, "embedding": encoded}],
        usage={"prompt_tokens": 7, "total_tokens": 7},
    )
    from openai import omit

    parsed = parse_embedding_response(response, encoding_format=omit)
    assert parsed.data[0].embedding == as_float32


def test_base64_is_little_endian_float32() -> None:
    assert base64.b64decode(to_base64([1.0, -0.5])) == b"\x00\x00\x80\x3f\x00\x00\x00\xbf"


def test_native_dimensions() -> None:
    assert dict(NATIVE_DIMENSIONS) == {
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
    assert native_dimensions("text-embedding-3-large") == 3072
    assert native_dimensions("my-local-embedder") == DEFAULT_DIMENSIONS == 1536
    assert not accepts_dimensions("text-embedding-ada-002")
    assert accepts_dimensions("text-embedding-3-small")
    assert accepts_dimensions("text-embedding-3-large")
    assert accepts_dimensions("my-local-embedder")
