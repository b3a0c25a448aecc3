"""Embeddings through the openai SDK, and what retrieval code needs from the vectors."""

from __future__ import annotations

import base64
import json
import math
import struct
import subprocess
import sys
from typing import Any

import httpx
import openai
import pytest

from mockserver import MockServer

AUTH = {"Authorization": "Bearer sk-test"}
DOCS = [
    "The weather in Paris is sunny with light wind.",
    "Paris weather forecast: rain expected tomorrow.",
    "Slow-cook the beef stew with carrots and thyme.",
    "Create an index on the orders table to speed up the SQL query.",
]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_float_vectors_through_the_strict_client(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    result = openai_client.embeddings.create(
        model="text-embedding-3-small", input=DOCS, encoding_format="float"
    )
    assert [d.index for d in result.data] == [0, 1, 2, 3]
    assert all(len(d.embedding) == 1536 for d in result.data)
    assert all(abs(math.fsum(x * x for x in d.embedding) - 1) < 1e-9 for d in result.data)
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0
    assert result.model == "text-embedding-3-small"
    entry = mockserver.last
    assert (entry.api, entry.scenario, entry.last_user) == ("embeddings", "generated", DOCS[0])


def test_the_sdk_default_is_base64_which_strict_validation_rejects(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    """As against the real API: the strict client needs ``encoding_format="float"``; a client
    without strict validation decodes base64 itself."""
    with pytest.raises(openai.APIResponseValidationError):
        openai_client.embeddings.create(model="text-embedding-3-small", input="hello")
    with openai.OpenAI(base_url=mockserver.base_url, api_key="k", max_retries=0) as plain:
        decoded = plain.embeddings.create(model="text-embedding-3-small", input="hello")
    floats = openai_client.embeddings.create(
        model="text-embedding-3-small", input="hello", encoding_format="float"
    )
    as_float32 = [struct.unpack("<f", struct.pack("<f", x))[0] for x in floats.data[0].embedding]
    assert decoded.data[0].embedding == as_float32


def test_base64_is_little_endian_float32(mockserver: MockServer) -> None:
    body = {"model": "text-embedding-3-small", "input": "hi", "encoding_format": "base64"}
    encoded = httpx.post(f"{mockserver.base_url}/embeddings", json=body, headers=AUTH).json()
    body["encoding_format"] = "float"
    floats = httpx.post(f"{mockserver.base_url}/embeddings", json=body, headers=AUTH).json()
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(
        floats["data"][0]["embedding"], abs=1e-7
    )


def test_dimensions_and_native_sizes(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    def size(model: str, **extra: Any) -> int:
        result = openai_client.embeddings.create(
            model=model, input="x", encoding_format="float", **extra
        )
        return len(result.data[0].embedding)

    assert size("text-embedding-3-large") == 3072
    assert size("text-embedding-ada-002") == 1536
    assert size("text-embedding-3-small", dimensions=256) == 256
    with pytest.raises(openai.BadRequestError) as caught:
        size("text-embedding-ada-002", dimensions=256)
    assert caught.value.body == {
        "message": "This model does not support specifying dimensions.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_related_texts_rank_above_unrelated_ones(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    result = openai_client.embeddings.create(
        model="text-embedding-3-small",
        input=["How is the weather in Paris today?", *DOCS],
        encoding_format="float",
    )
    query, *docs = [d.embedding for d in result.data]
    ranked = sorted(range(len(DOCS)), key=lambda i: -cosine(query, docs[i]))
    assert set(ranked[:2]) == {0, 1}, [cosine(query, d) for d in docs]


def test_same_text_same_vector_in_another_process(mockserver: MockServer) -> None:
    body = {"model": "text-embedding-3-small", "input": DOCS[0], "encoding_format": "base64"}
    here = httpx.post(f"{mockserver.base_url}/embeddings", json=body, headers=AUTH).json()
    code = (
        "import json, sys; from mockserver.core.vectors import embed, to_base64; "
        f"print(to_base64(embed({DOCS[0]!r}, 1536)))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    ).stdout.strip()  # fmt: skip
    assert here["data"][0]["embedding"] == there


def test_a_scenario_pins_or_randomizes_vectors(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add(
        {"name": "pinned", "match": {"api": "embeddings", "last_user": "pin"},
         "reply": {"embedding": [0.6, 0.8]}},
        {"name": "each", "match": {"api": "embeddings", "last_user": "each"},
         "reply": {"embeddings": [[1.0, 0.0], [0.0, 1.0]]}},
        {"name": "noise", "match": {"api": "embeddings", "last_user": {"contains": "noise"}},
         "reply": {"embedding_style": "random"}},
        {"name": "broken", "match": {"api": "embeddings", "last_user": "fail"},
         "error": {"status": 500, "message": "embedding backend down"}},
    )  # fmt: skip

    def vectors(texts: list[str]) -> list[list[float]]:
        result = openai_client.embeddings.create(model="m", input=texts, encoding_format="float")
        return [d.embedding for d in result.data]

    assert vectors(["pin", "anything"]) == [[0.6, 0.8], [0.6, 0.8]]
    assert vectors(["each", "b", "c"]) == [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    a, b = vectors(["noise about weather", "noise about weather too"])
    semantic = vectors(["signal about weather", "signal about weather too"])
    assert cosine(*semantic) > 0.5 > abs(cosine(a, b))
    with pytest.raises(openai.InternalServerError):
        vectors(["fail"])
    assert [e.scenario for e in mockserver.journal] == [
        "pinned",
        "each",
        "noise",
        "generated",
        "broken",
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": ""}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": ["x"] * 2049}, "input"),
        ({"model": "m", "input": [1, "x"]}, "input[0]"),
        ({"model": "m", "input": "x", "encoding_format": "md5"}, "encoding_format"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "m", "input": "x", "dimensions": 10**9}, "dimensions"),
        ({"model": "m", "input": "x", "dimensions": "big"}, "dimensions"),
    ],
)
def test_malformed_requests_are_400(
    mockserver: MockServer, body: dict[str, Any], param: str
) -> None:
    r = httpx.post(f"{mockserver.base_url}/embeddings", content=json.dumps(body), headers=AUTH)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


def test_token_arrays(mockserver: MockServer) -> None:
    body = {"model": "m", "input": [[1, 2, 3], [4, 5]], "encoding_format": "float"}
    r = httpx.post(f"{mockserver.base_url}/embeddings", json=body, headers=AUTH)
    assert [d["index"] for d in r.json()["data"]] == [0, 1]
    one = httpx.post(f"{mockserver.base_url}/embeddings", headers=AUTH,
                     json={"model": "m", "input": [1, 2, 3], "encoding_format": "float"})  # fmt: skip
    assert one.json()["data"][0]["embedding"] == r.json()["data"][0]["embedding"]


def test_a_token_array_is_held_to_the_models_context(openai_client: openai.OpenAI) -> None:
    """A token array's count is exact, so OpenAI's 8,192-token context holds for it (a single
    array of more than 2,048 ids is one input, not too many inputs)."""
    long = openai_client.embeddings.create(model="text-embedding-3-small", input=[7] * 3000,
                                           encoding_format="float")  # fmt: skip
    assert long.usage.prompt_tokens == 3000
    for too_long in ([7] * 8193, [[1, 2], [7] * 8193]):
        with pytest.raises(openai.BadRequestError) as caught:
            openai_client.embeddings.create(model="text-embedding-3-small", input=too_long)
        assert "maximum context length is 8192 tokens, however you requested 8193" in str(
            caught.value
        )
