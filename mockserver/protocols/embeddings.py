"""Embeddings: ``POST /v1/embeddings``.

Needs no script: a request no scenario answers gets generated vectors, deterministic and
meaningful (texts that share words are closer), of the model's native size or ``dimensions``.
A scenario can pin vectors, choose random ones, or answer with an error or a fault. ``last_user``
reads the first input, so the usual conditions select embeddings scenarios too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.caching import Plan
from ..core.errors import APIError, invalid_type, missing_param
from ..core.request import NOTHING, Request, body_and_model, integral
from ..core.tokens import count_tokens
from ..core.vectors import accepts_dimensions, embed, native_dimensions, to_base64
from . import NOWHERE, Answer, Lookup, Protocol, Target
from .capture import Captured, dig, text_of, usage_of

MAX_INPUTS = 2048
MAX_DIMENSIONS = 16_384  # a cap on what one vector may cost (``embed`` allocates what it is asked)
FORMATS = ("float", "base64")
_INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


def _texts(value: Any) -> list[str]:
    """The inputs as texts: strings as they are, token arrays as their ids."""
    if isinstance(value, str):
        if not value:
            raise APIError(400, _INVALID_INPUT, param="input")
        return [value]
    if not isinstance(value, list):
        raise invalid_type("input", "a string or an array", value)
    if not value or len(value) > MAX_INPUTS:
        raise APIError(400, _INVALID_INPUT, param="input")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [" ".join(map(str, value))]  # one token array
    texts = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            if not item:
                raise APIError(400, _INVALID_INPUT, param="input")
            texts.append(item)
        elif (
            isinstance(item, list)
            and item
            and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        ):
            texts.append(" ".join(map(str, item)))
        else:
            raise invalid_type(f"input[{i}]", "a string or an array of integers", item)
    return texts


def parse_embeddings(raw: bytes, headers: Mapping[str, str], lookup: Lookup) -> Request:
    body, model = body_and_model(raw)
    if "input" not in body:
        raise missing_param("input")
    texts = _texts(body["input"])
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
    return embeddings_request("embeddings", body, model, texts, headers)


def embeddings_request(
    api: str,
    body: dict[str, Any],
    model: str,
    texts: Sequence[str],
    headers: Mapping[str, str],
    wire: Mapping[str, Any] = NOTHING,
) -> Request:
    """The neutral request of texts to embed: the first is ``last_user``, and the prompt
    tokens are the inputs' (no message framing)."""
    return Request(
        api=api,
        body=body,
        model=model,
        messages=[{"role": "user", "content": texts[0]}],
        headers=headers,
        inputs=tuple(texts),
        tokens=sum(count_tokens(t) for t in texts),
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

    def body(self, answer: Answer) -> bytes:
        base64 = answer.request.body.get("encoding_format") == "base64"
        dims = answer.request.body.get("dimensions") or native_dimensions(answer.request.model)
        data = [
            {"object": "embedding", "index": i, "embedding": to_base64(v) if base64 else v}
            for i, v in enumerate(vectors(answer, [dims] * len(answer.request.inputs)))
        ]
        tokens = answer.usage.prompt
        body = {"object": "list", "data": data, "model": answer.env.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}  # fmt: skip
        return json.dumps(body).encode()

    def cache_plan(self, req: Request, scope: str, ttl: float) -> Plan | None:
        return None  # embeddings inputs are not a conversation: nothing is cached

    def read_body(self, body: Any) -> Captured:
        return embeddings_body(body)


def vectors(answer: Answer, dims: Sequence[int]) -> list[list[float]]:
    """A vector per input (of ``dims[i]`` floats): the scenario's pinned ones, else generated."""
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
