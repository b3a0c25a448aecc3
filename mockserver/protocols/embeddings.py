"""Embeddings: ``POST /v1/embeddings``.

Needs no script: a request no scenario answers gets generated vectors, deterministic and
meaningful (texts that share words are closer), of the model's native size or ``dimensions``.
A scenario can pin vectors, choose random ones, or answer with an error or a fault. ``last_user``
reads the first input, so the usual conditions select embeddings scenarios too.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..core.caching import Plan
from ..core.errors import APIError, invalid_type, missing_param
from ..core.request import NOTHING, Request, body_and_model, integral
from ..core.tokens import count_tokens
from ..core.vectors import (
    NATIVE_DIMENSIONS,
    accepts_dimensions,
    embed,
    native_dimensions,
    to_base64,
)
from ..scenarios.scenario import Reply
from . import NOWHERE, Answer, Lookup, Protocol, Target, dumps
from .capture import Captured, dig, text_of, usage_of

MAX_INPUTS = 2048
MAX_TOKENS = 300_000
"""OpenAI's limit on the tokens of all inputs of one request, whatever the model."""
MAX_DIMENSIONS = max(NATIVE_DIMENSIONS.values())
"""The largest vector a real model has (text-embedding-3-large's 3072): a request for more
would only cost the mock time and memory (16384 took 26 s and 783 MB)."""
SLICE_FLOATS = 32_768
"""About 20 ms of vectors: a larger reply is written out in slices of this many floats, and
other requests are served between them."""
FORMATS = ("float", "base64")
_INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


_PINNED: weakref.WeakKeyDictionary[Reply, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _pinned_json(reply: Reply) -> tuple[str, ...]:
    """The JSON text of a reply's pinned vectors, encoded once per scenario reply (a reply is
    frozen; its entry goes when a reload drops it): writing 1,536 floats costs about 6 million
    instructions, twenty times the rest of a request."""
    texts = _PINNED.get(reply)
    if texts is None:
        texts = _PINNED[reply] = tuple(json.dumps(list(v)) for v in reply.embeddings)
    return texts


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value
    )


MAX_INPUT_TOKENS = 8192
"""Tokens one input may hold (every OpenAI embedding model). Enforced where the count is
exact, a token array; a string's count is the mock's estimate, and is not held to it."""


def _within_context(tokens: int) -> int:
    if tokens > MAX_INPUT_TOKENS:
        raise APIError(
            400,
            f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you "
            f"requested {tokens} tokens ({tokens} in your prompt; 0 for the completion). "
            "Please reduce your prompt; or completion length.",
        )
    return tokens


def _texts(value: Any) -> tuple[list[str], int]:
    """The inputs as texts (strings as they are, token arrays as their ids), and their tokens:
    a token array counts exactly its length, a string what the tokenizer makes of it."""
    if isinstance(value, str):
        if not value:
            raise APIError(400, _INVALID_INPUT, param="input")
        return [value], count_tokens(value)
    if not isinstance(value, list):
        raise invalid_type("input", "a string or an array", value)
    if value and _is_ids(value):
        return [" ".join(map(str, value))], _within_context(len(value))  # one token array
    if not value or len(value) > MAX_INPUTS:
        raise APIError(400, _INVALID_INPUT, param="input")
    texts = []
    tokens = 0
    for i, item in enumerate(value):
        if isinstance(item, str):
            if not item:
                raise APIError(400, _INVALID_INPUT, param="input")
            texts.append(item)
            tokens += count_tokens(item)
        elif item and _is_ids(item):
            texts.append(" ".join(map(str, item)))
            tokens += _within_context(len(item))
        else:
            raise invalid_type(f"input[{i}]", "a string or an array of integers", item)
    return texts, tokens


def parse_embeddings(raw: bytes, headers: Mapping[str, str], lookup: Lookup) -> Request:
    body, model = body_and_model(raw)
    if "input" not in body:
        raise missing_param("input")
    texts, tokens = _texts(body["input"])
    if tokens > MAX_TOKENS:
        raise APIError(
            400,
            f"Requested {tokens} tokens, max {MAX_TOKENS} tokens per request",
            type="max_tokens_per_request",
            code="max_tokens_per_request",
        )
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in FORMATS:
        raise APIError(
            400,
            f"Invalid value for 'encoding_format' = {fmt}. Supported values: ['float', 'base64'].",
            param="encoding_format",
            code="invalid_value",
        )
    if "dimensions" in body:
        dims = integral(body, "dimensions")
        if not accepts_dimensions(model):
            raise APIError(400, "This model does not support specifying dimensions.")
        if isinstance(dims, bool) or not isinstance(dims, int):
            raise invalid_type("dimensions", "an integer", dims)
        # OpenAI's wording for these is unknown (its schema only says minimum 1): ours.
        if dims < 1:
            raise APIError(
                400,
                f"Invalid 'dimensions': integer below minimum value. Expected a value >= 1, "
                f"but got {dims} instead.",
                param="dimensions",
                code="integer_below_min_value",
            )
        if dims > MAX_DIMENSIONS:
            raise APIError(
                400,
                f"Invalid 'dimensions': integer above maximum value. Expected a value <= "
                f"{MAX_DIMENSIONS}, but got {dims} instead.",
                param="dimensions",
                code="integer_above_max_value",
            )
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise invalid_type("user", "a string", body["user"])
    return embeddings_request("embeddings", body, model, texts, headers, tokens=tokens)


def embeddings_request(
    api: str,
    body: dict[str, Any],
    model: str,
    texts: Sequence[str],
    headers: Mapping[str, str],
    wire: Mapping[str, Any] = NOTHING,
    tokens: int | None = None,
) -> Request:
    """The neutral request of texts to embed: the first is ``last_user``, and the prompt
    tokens are the inputs' (no message framing; ``tokens`` when counted already)."""
    return Request(
        api=api,
        body=body,
        model=model,
        messages=[{"role": "user", "content": texts[0]}],
        headers=headers,
        inputs=tuple(texts),
        tokens=sum(count_tokens(t) for t in texts) if tokens is None else tokens,
        wire=wire,
    )


class Embeddings(Protocol):
    name = "embeddings"
    routes = ("/embeddings",)
    id_prefix = "emb-"
    answers_unmatched = True

    def parse(
        self, raw: bytes, headers: Mapping[str, str], lookup: Lookup, target: Target = NOWHERE
    ) -> Request:
        return parse_embeddings(raw, headers, lookup)

    def vector(self, answer: Answer, i: int) -> list[float]:
        request, reply = answer.request, answer.reply
        if reply is not None and reply.embeddings:
            pinned = reply.embeddings
            return list(pinned[i % len(pinned)])
        style = (reply.embedding_style if reply is not None else None) or "semantic"
        return embed(request.inputs[i], _dimensions(answer), answer.seed, style)

    def _pieces(self, answer: Answer, per: int) -> Iterator[bytes]:
        """The body, ``per`` vectors a piece; joined, the bytes ``json.dumps`` would write."""
        base64 = answer.request.body.get("encoding_format") == "base64"
        count = len(answer.request.inputs)
        reply = answer.reply
        pinned = (
            _pinned_json(reply) if not base64 and reply is not None and reply.embeddings else ()
        )
        yield b'{"object": "list", "data": ['
        for start in range(0, count, per):
            if pinned:  # spliced from the vectors' text, encoded once
                text = ", ".join(
                    f'{{"object": "embedding", "index": {i}, "embedding": {pinned[i % n]}}}'
                    for n in (len(pinned),)
                    for i in range(start, min(start + per, count))
                )
            else:
                items = []
                for i in range(start, min(start + per, count)):
                    vector = self.vector(answer, i)
                    encoded = to_base64(vector) if base64 else vector
                    items.append({"object": "embedding", "index": i, "embedding": encoded})
                text = dumps(items)[1:-1]
            yield (", " + text if start else text).encode()
        tokens = answer.usage.prompt
        yield (
            f'], "model": {dumps(answer.env.model)}, "usage": {{"prompt_tokens": {tokens}, '
            f'"total_tokens": {tokens}}}}}'
        ).encode()

    def body(self, answer: Answer) -> bytes:
        return b"".join(self._pieces(answer, len(answer.request.inputs) or 1))

    def pieces(self, answer: Answer) -> Iterator[bytes] | None:
        per = max(1, SLICE_FLOATS // _dimensions(answer))
        return self._pieces(answer, per) if len(answer.request.inputs) > per else None

    def cache_plan(self, req: Request, scope: str, ttl: float) -> Plan | None:
        return None  # embeddings inputs are not a conversation: nothing is cached

    def read_body(self, body: Any) -> Captured:
        return embeddings_body(body)


def _dimensions(answer: Answer) -> int:
    reply = answer.reply
    if reply is not None and reply.embeddings:
        return len(reply.embeddings[0]) or 1
    request = answer.request
    dims: int = request.body.get("dimensions") or native_dimensions(request.model)
    return dims


def vectors(answer: Answer, dims: Sequence[int]) -> list[list[float]]:
    """A vector per input (of ``dims[i]`` floats): the scenario's pinned ones, else generated
    (Google's embeddings, which size each input on its own)."""
    request, reply = answer.request, answer.reply
    if reply is not None and reply.embeddings:
        pinned = reply.embeddings
        return [list(pinned[i % len(pinned)]) for i in range(len(request.inputs))]
    style = (reply.embedding_style if reply is not None else None) or "semantic"
    return [
        embed(text, size, answer.seed, style)
        for text, size in zip(request.inputs, dims, strict=True)
    ]


# --- reading an upstream's reply back (recording) -------------------------------------------


def embeddings_body(body: Any) -> Captured:
    """``reply.embeddings``: one vector (or base64 string) per input, in input order."""
    data = sorted(body.get("data") or [], key=lambda d: d.get("index", 0))
    usage = usage_of([("prompt_tokens", dig(body, "usage", "prompt_tokens"))])
    return Captured(
        [],
        usage,
        text_of(body.get("model")),
        extra={"embeddings": [d.get("embedding") for d in data]},
    )
