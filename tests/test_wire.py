"""Wire fidelity (issue 21): what real clients read in the mock's replies, through the SDKs."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from mockserver import MockServer, Options
from mockserver.scenarios.loader import load_data
from tests.docs import example

AUTH = {"Authorization": "Bearer sk-test"}
USER = [{"role": "user", "content": "hi"}]
WEATHER = {"name": "get_weather", "arguments": {"city": "Zürich", "days": [1, 2]}}


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer(options=Options(speed=0)) as server:
        yield server


@pytest.fixture
def client(server: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=server.base_url, api_key="sk-test", max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


@pytest.fixture
def claude(server: MockServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=server.url, api_key="sk-ant-test", max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


def body_of(err: openai.APIStatusError | anthropic.APIStatusError) -> dict[str, Any]:
    body = err.body
    assert isinstance(body, dict)
    return body


# --- error types: each protocol its own for a status no scenario named ----------------------


def test_the_loader_leaves_an_unstated_error_type_unstated() -> None:
    [scenario] = load_data([{"error": {"status": 404}}])
    error = scenario.steps[0].error
    assert error is not None
    assert (error.status, error.type) == (404, None)
    [stated] = load_data([{"error": {"status": 404, "type": "custom_error"}}])
    assert stated.steps[0].error is not None
    assert stated.steps[0].error.type == "custom_error"


@pytest.mark.parametrize(
    ("status", "openai_type", "anthropic_type"),
    [
        (400, "invalid_request_error", "invalid_request_error"),
        (401, "invalid_request_error", "authentication_error"),
        (404, "invalid_request_error", "not_found_error"),
        (429, "rate_limit_error", "rate_limit_error"),
        (500, "server_error", "api_error"),
        (503, "server_error", "api_error"),
        (529, "server_error", "overloaded_error"),
    ],
)
def test_an_unstated_type_is_the_protocols_own(
    server: MockServer,
    client: openai.OpenAI,
    claude: anthropic.Anthropic,
    status: int,
    openai_type: str,
    anthropic_type: str,
) -> None:
    server.replace({"error": {"status": status, "message": "scripted"}})
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="m", messages=USER)
    assert body_of(caught.value)["type"] == openai_type
    assert server.last.reply == {
        "error": {"status": status, "message": "scripted", "type": openai_type,
                  "code": {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)}
    }  # fmt: skip
    with pytest.raises(anthropic.APIStatusError) as got:
        claude.messages.create(model="m", max_tokens=5, messages=USER)
    assert body_of(got.value)["error"]["type"] == anthropic_type
    assert server.last.reply is not None
    assert server.last.reply["error"]["type"] == anthropic_type  # what the client saw


def test_a_stated_type_is_sent_as_stated_by_every_protocol(
    server: MockServer, client: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    """Before, Anthropic replaced a stated type it did not know, or ``invalid_request_error``
    on a 404, with its type for the status: the scenario's word was lost."""
    server.replace({"error": {"status": 404, "type": "invalid_request_error", "message": "gone"}})
    with pytest.raises(anthropic.NotFoundError) as got:
        claude.messages.create(model="m", max_tokens=5, messages=USER)
    assert body_of(got.value)["error"]["type"] == "invalid_request_error"
    server.replace({"error": {"status": 400, "type": "context_length_exceeded", "message": "x"}})
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(model="m", max_tokens=5, messages=USER)
    assert body_of(bad.value)["error"]["type"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=USER)
    assert body_of(caught.value)["type"] == "context_length_exceeded"


def test_a_fault_error_without_type_is_each_protocols_own(
    server: MockServer, client: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.replace({"reply": {"content": "a b c d"},
                    "fault": {"kind": "stream_error", "after_chunks": 1}})  # fmt: skip
    with (
        claude.messages.stream(model="m", max_tokens=5, messages=USER) as stream,
        pytest.raises(anthropic.APIStatusError) as got,
    ):
        stream.get_final_message()
    assert body_of(got.value)["error"]["type"] == "api_error"
    r = httpx.post(
        f"{server.base_url}/responses", json={"model": "m", "input": "hi", "stream": True},
        headers=AUTH,
    )  # fmt: skip
    error = [json.loads(line[6:]) for line in r.text.splitlines() if '"type": "error"' in line]
    assert error[0]["error"]["type"] == "server_error"


# --- tool-call arguments: compact JSON, as OpenAI writes them -------------------------------


def test_arguments_are_compact_json_in_chat_and_responses(
    server: MockServer, client: openai.OpenAI
) -> None:
    server.replace({"reply": {"tool_calls": [WEATHER]}})
    compact = '{"city":"Zürich","days":[1,2]}'
    chat = client.chat.completions.create(model="m", messages=USER)
    calls = chat.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.arguments == compact
    streamed = "".join(
        call.function.arguments or ""
        for chunk in client.chat.completions.create(model="m", messages=USER, stream=True)
        for choice in chunk.choices
        for call in choice.delta.tool_calls or []
        if call.function is not None
    )
    assert streamed == compact
    response = client.responses.create(model="m", input="hi")
    assert [item.arguments for item in response.output] == [compact]
    assert server.last.reply is not None
    assert server.last.reply["tool_calls"][0]["arguments"] == compact


def test_a_string_of_arguments_is_sent_as_written(
    server: MockServer, client: openai.OpenAI
) -> None:
    spaced = '{"city": "Paris"}'
    server.replace({"reply": {"tool_calls": [{"name": "get_weather", "arguments": spaced}]}})
    chat = client.chat.completions.create(model="m", messages=USER)
    calls = chat.choices[0].message.tool_calls or []
    assert [c.function.arguments for c in calls if c.type == "function"] == [spaced]


def test_an_anthropic_tool_use_becomes_compact_arguments(
    server: MockServer, claude: anthropic.Anthropic
) -> None:
    """What Anthropic's ``input`` object becomes in the neutral conversation (and the journal,
    and a recording): the same JSON text OpenAI would have sent."""
    server.replace({"match": {"last_role": "tool"}, "reply": {"content": "ok"}})
    claude.messages.create(
        model="m", max_tokens=5,
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris", "days": [1]}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
        ],
    )  # fmt: skip
    said = server.last.messages[1]
    assert said["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris","days":[1]}'


# --- Responses reasoning items carry encrypted_content --------------------------------------

REASONING = {"reply": {"reasoning": "The user greets me; greet back.", "content": "Hello!"}}


def test_reasoning_items_carry_encrypted_content(server: MockServer, client: openai.OpenAI) -> None:
    server.replace(REASONING)
    first = client.responses.create(
        model="o4-mini", input="hi", store=False, include=["reasoning.encrypted_content"]
    )
    item = first.output[0]
    assert item.type == "reasoning"
    sealed = item.encrypted_content
    assert isinstance(sealed, str)
    assert len(sealed) > 40
    base64.urlsafe_b64decode(sealed)  # opaque, but shaped like the real one
    assert "greet" not in sealed  # not the reasoning in clear
    again = client.responses.create(
        model="o4-mini", input="hi", store=False, include=["reasoning.encrypted_content"]
    )
    assert again.output[0].encrypted_content == sealed
    # Stateless use: the items sent back as input, encrypted reasoning included.
    follow = client.responses.create(
        model="o4-mini",
        input=[
            {"role": "user", "content": "hi"},
            *[o.model_dump(exclude_none=True) for o in first.output],
            {"role": "user", "content": "and again"},
        ],
        store=False,
        include=["reasoning.encrypted_content"],
    )
    assert follow.output_text == "Hello!"
    sent = server.last.body["input"][1]
    assert sent["type"] == "reasoning"
    assert sent["encrypted_content"] == sealed


def test_encrypted_content_in_the_stream_and_the_stored_copy(
    server: MockServer, client: openai.OpenAI
) -> None:
    server.replace(REASONING)
    plain = client.responses.create(model="o4-mini", input="hi")
    sealed = plain.output[0].encrypted_content
    assert sealed
    events = list(client.responses.create(model="o4-mini", input="hi", stream=True))
    added = [e.item for e in events if e.type == "response.output_item.added"]
    assert added[0].type == "reasoning"
    assert added[0].encrypted_content is None
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert done[0].type == "reasoning"
    assert done[0].encrypted_content
    completed = next(e for e in events if e.type == "response.completed")
    streamed = completed.response.output[0]
    assert streamed.encrypted_content == done[0].encrypted_content
    stored = client.responses.retrieve(plain.id)
    assert stored.output[0].encrypted_content == sealed


def test_an_encrypted_content_that_is_not_a_string_is_refused(server: MockServer) -> None:
    server.replace(REASONING)
    item = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": 5}
    r = httpx.post(
        f"{server.base_url}/responses",
        json={"model": "m", "input": [item, {"role": "user", "content": "hi"}]},
        headers=AUTH,
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "input[0].encrypted_content"


# --- embeddings: exact token counts, and the real API's limits ------------------------------


def test_token_arrays_count_exactly_their_tokens(server: MockServer, client: openai.OpenAI) -> None:
    one = client.embeddings.create(
        model="text-embedding-3-small", input=[1, 2, 3], encoding_format="float"
    )
    assert one.usage.prompt_tokens == one.usage.total_tokens == 3
    many = client.embeddings.create(
        model="text-embedding-3-small", input=[[1, 2, 3], [40, 5000]], encoding_format="float"
    )
    assert many.usage.prompt_tokens == 5
    assert len(many.data) == 2


def test_more_tokens_than_a_request_may_carry(server: MockServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(
            model="text-embedding-3-small",
            input=[list(range(1000))] * 301,
            encoding_format="float",
        )
    assert caught.value.body == {
        "message": "Requested 301000 tokens, max 300000 tokens per request",
        "type": "max_tokens_per_request",
        "param": None,
        "code": "max_tokens_per_request",
    }
    body = {"model": "text-embedding-3-small", "input": [list(range(1000))] * 300,
            "encoding_format": "base64", "dimensions": 8}  # fmt: skip
    fits = httpx.post(f"{server.base_url}/embeddings", json=body, headers=AUTH, timeout=60)
    assert fits.json()["usage"]["prompt_tokens"] == 300_000


def test_more_inputs_or_dimensions_than_a_real_model_has(
    server: MockServer, client: openai.OpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input=["a"] * 2049)
    assert caught.value.param == "input"
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-3-large", input="a", dimensions=3073)
    assert caught.value.param == "dimensions"
    assert "3072" in caught.value.message
    largest = client.embeddings.create(
        model="text-embedding-3-large", input="a", dimensions=3072, encoding_format="float"
    )
    assert len(largest.data[0].embedding) == 3072


def test_a_large_batch_is_the_same_body_sent_in_pieces(server: MockServer) -> None:
    """Above a few hundred vectors the body is written out in slices; the bytes are those a
    small request would get, vector for vector."""
    texts = [f"document {i} about the weather" for i in range(100)]
    body = {"model": "text-embedding-3-small", "input": texts, "encoding_format": "float"}
    big = httpx.post(f"{server.base_url}/embeddings", json=body, headers=AUTH, timeout=60)
    assert big.status_code == 200
    assert big.headers.get("content-length") is None  # streamed out, not built whole
    data = big.json()
    assert [d["index"] for d in data["data"]] == list(range(100))
    small = httpx.post(
        f"{server.base_url}/embeddings", json={**body, "input": texts[99]}, headers=AUTH
    ).json()
    assert data["data"][99]["embedding"] == small["data"][0]["embedding"]
    assert math.isclose(math.fsum(x * x for x in data["data"][3]["embedding"]), 1.0)


# --- /openapi.json ----------------------------------------------------------------------------


def test_openapi_documents_retrieving_a_response(server: MockServer) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    operation = document["paths"]["/v1/responses/{response_id}"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["response_id"]
    assert "200" in operation["responses"]
    assert "404" in operation["responses"]


# --- logprobs -------------------------------------------------------------------------------

LONG = "The quick brown fox jumps over the lazy dog, twice."


def _check_logprobs(items: list[Any], text: str, top: int) -> None:
    assert "".join(i.token for i in items) == text
    for item in items:
        assert item.logprob <= 0
        assert bytes(item.bytes) == item.token.encode()
        assert len(item.top_logprobs) == top
        probabilities = [math.exp(t.logprob) for t in item.top_logprobs]
        assert sum(probabilities) <= 1.0 + 1e-9
        if top:
            assert item.top_logprobs[0].token == item.token
            assert item.top_logprobs[0].logprob == item.logprob
            assert len({t.token for t in item.top_logprobs}) == top


def test_chat_logprobs(server: MockServer, client: openai.OpenAI) -> None:
    server.replace({"reply": {"content": LONG}})
    plain = client.chat.completions.create(
        model="m",
        messages=USER,
        logprobs=True,
        top_logprobs=3,
    )
    logprobs = plain.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    _check_logprobs(logprobs.content, LONG, 3)
    again = client.chat.completions.create(
        model="m",
        messages=USER,
        logprobs=True,
        top_logprobs=3,
    )
    assert again.choices[0].logprobs == logprobs  # deterministic
    streamed = [
        item
        for chunk in client.chat.completions.create(
            model="m",
            messages=USER,
            logprobs=True,
            top_logprobs=3,
            stream=True,
        )
        for choice in chunk.choices
        for item in (choice.logprobs.content or [] if choice.logprobs else [])
    ]
    assert streamed == logprobs.content
    bare = client.chat.completions.create(model="m", messages=USER, logprobs=True)
    assert bare.choices[0].logprobs is not None
    _check_logprobs(bare.choices[0].logprobs.content or [], LONG, 0)
    none = client.chat.completions.create(model="m", messages=USER)
    assert none.choices[0].logprobs is None


def test_top_logprobs_at_most_20(server: MockServer, client: openai.OpenAI) -> None:
    server.replace({"reply": {"content": LONG}})
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=USER, logprobs=True, top_logprobs=21)
    assert caught.value.param == "top_logprobs"
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="m", input="hi", top_logprobs=21)
    assert caught.value.param == "top_logprobs"
    alone = client.chat.completions.create(model="m", messages=USER, top_logprobs=2)
    assert alone.choices[0].logprobs is None  # logprobs not asked for


def test_responses_logprobs(server: MockServer, client: openai.OpenAI) -> None:
    server.replace({"reply": {"content": LONG}})
    include: Any = ["message.output_text.logprobs"]
    plain = client.responses.create(model="m", input="hi", include=include, top_logprobs=2)
    message = plain.output[0]
    assert message.type == "message"
    part = message.content[0]
    assert part.type == "output_text"
    assert part.logprobs is not None
    _check_logprobs(part.logprobs, LONG, 2)
    events = list(
        client.responses.create(model="m", input="hi", include=include, top_logprobs=2, stream=True)
    )
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    streamed = [lp for e in deltas for lp in e.logprobs]
    assert [(lp.token, lp.logprob) for lp in streamed] == [
        (lp.token, lp.logprob) for lp in part.logprobs
    ]
    assert all(len(lp.top_logprobs or []) == 2 for lp in streamed)
    done = next(e for e in events if e.type == "response.output_text.done")
    assert [lp.token for lp in done.logprobs] == [lp.token for lp in part.logprobs]
    without = client.responses.create(model="m", input="hi").output[0]
    assert without.type == "message"
    assert without.content[0].type == "output_text"
    assert without.content[0].logprobs == []


# --- credentials: every header that carries one, and ?key=, redacted in the journal -------

SECRETS = {
    "Cookie": "session=cookie-secret-1; theme=dark",
    "Proxy-Authorization": "Basic proxy-secret-2",
    "api-key": "azure-secret-3",
    "x-goog-api-key": "google-secret-4",
    "AIKey": "relay-secret-5",
    "x-api-key": "anthropic-secret-6",
}


def test_every_credential_header_and_the_key_parameter_are_redacted(
    server: MockServer, client: openai.OpenAI
) -> None:
    server.replace({"reply": {"content": "ok"}})
    client.chat.completions.create(
        model="m", messages=USER, extra_headers=SECRETS,
        extra_query={"key": "query-secret-7", "alt": "sse"},
    )  # fmt: skip
    entry = server.last
    assert entry.path == "/v1/chat/completions?key=***&alt=sse"
    headers = {k.lower(): v for k, v in entry.headers.items()}
    assert headers["cookie"] == "session=***; theme=***"
    assert headers["proxy-authorization"] == "Basic ***"
    assert headers["authorization"] == "Bearer ***"
    for name in ("api-key", "x-goog-api-key", "aikey", "x-api-key"):
        assert headers[name] == "***"
    inspected = httpx.get(f"{server.url}/_mock/journal/{entry.seq}").text
    listed = httpx.get(f"{server.url}/_mock/journal").text
    for shown in (inspected, listed, json.dumps(entry.to_dict())):
        assert "sk-test" not in shown
        for n in range(1, 8):
            assert f"secret-{n}" not in shown


# --- the docs page's example -------------------------------------------------------------


def test_the_wire_page_example(capsys: pytest.CaptureFixture[str]) -> None:
    exec(example("wire-logprobs-and-reasoning"), {})
    assert capsys.readouterr().out.splitlines() == [
        "'Hello' True 2",
        "' there' True 2",
        "'!' True 2",
        "reasoning gAAAAA",
        "Hello there!",
    ]
