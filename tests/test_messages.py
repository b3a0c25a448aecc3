"""Anthropic Messages through the official anthropic SDK (strict validation) and on the wire."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from mockserver import MockServer, Options
from mockserver.core.profiles import PROFILES

TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "The weather in a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
SCENARIOS = [
    {"name": "think", "match": {"last_user": "2+2?"},
     "reply": {"reasoning": "Two and two make four.", "content": "4"}},
    {"name": "ask-tool", "match": {"tools": ["get_weather"], "last_role": "user"},
     "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}},
    {"name": "answer-tool", "match": {"last_role": "tool"},
     "reply": {"content": "It is {{ tool_result }} in Paris."}},
    {"name": "hello", "match": {"last_user": "hi"}, "reply": {"content": "Hello from the mock."}},
]  # fmt: skip
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer(SCENARIOS, options=Options(speed=0)) as server:
        yield server


@pytest.fixture
def client(server: MockServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=server.url, api_key="sk-ant-test", max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


def test_plain_message(server: MockServer, client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model="claude-x", max_tokens=64, messages=USER)
    message = raw.parse()
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the mock."
    assert message.stop_reason == "end_turn"
    assert message.id.startswith("msg_")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (8, 5)
    assert raw.headers["request-id"] == message._request_id
    assert server.state.journal.entries[-1].api == "messages"


def test_both_auth_headers_and_any_version(server: MockServer) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": USER}
    for headers in ({"x-api-key": "k"}, {"Authorization": "Bearer k"}):
        r = httpx.post(f"{server.url}/v1/messages", json=body,
                       headers={**headers, "anthropic-version": "2023-06-01"})  # fmt: skip
        assert r.status_code == 200
    r = httpx.post(f"{server.url}/v1/messages", json=body)
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"
    assert r.json()["request_id"] == r.headers["request-id"]


def test_stream_and_final_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="claude-x", max_tokens=64, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the mock."
    assert final.content[0].type == "text"
    assert final.stop_reason == "end_turn"
    events = [e.type for e in client.messages.create(
        model="claude-x", max_tokens=64, messages=USER, stream=True)]  # fmt: skip
    assert events[0] == "message_start"
    assert events[-2:] == ["message_delta", "message_stop"]


def test_thinking_then_text(client: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": "2+2?"}]
    message = client.messages.create(model="claude-x", max_tokens=64, messages=ask)
    thinking, text = message.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "Two and two make four."
    assert thinking.signature
    assert text.type == "text"
    assert text.text == "4"
    with client.messages.stream(model="claude-x", max_tokens=64, messages=ask) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking"
    assert final.content[0].thinking == "Two and two make four."
    assert final.content[0].signature


@pytest.mark.parametrize("streamed", [False, True])
def test_tool_use_round_trip(client: anthropic.Anthropic, streamed: bool) -> None:
    ask: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first: Any
    if streamed:
        with client.messages.stream(model="m", max_tokens=64, messages=ask, tools=TOOLS) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(model="m", max_tokens=64, messages=ask, tools=TOOLS)
    (call,) = first.content
    assert call.type == "tool_use"
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    assert first.stop_reason == "tool_use"
    history = [
        *ask,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                      "content": [{"type": "text", "text": "sunny"}]}]},
    ]  # fmt: skip
    second = client.messages.create(model="m", max_tokens=64, messages=history, tools=TOOLS)
    assert second.content[0].type == "text"
    assert second.content[0].text == "It is sunny in Paris."


def test_stop_sequences_and_max_tokens(server: MockServer, client: anthropic.Anthropic) -> None:
    server.replace({"reply": {"content": "one two three. four five six"}})
    cut = client.messages.create(model="m", max_tokens=64, messages=USER, stop_sequences=["."])
    assert cut.content[0].type == "text"
    assert (cut.content[0].text, cut.stop_reason, cut.stop_sequence) == (
        "one two three", "stop_sequence", "."
    )  # fmt: skip
    short = client.messages.create(model="m", max_tokens=2, messages=USER)
    assert short.stop_reason == "max_tokens"
    assert short.usage.output_tokens == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, anthropic.BadRequestError),
        (401, anthropic.AuthenticationError),
        (403, anthropic.PermissionDeniedError),
        (404, anthropic.NotFoundError),
        (413, anthropic.RequestTooLargeError),
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (529, anthropic.OverloadedError),
    ],
)
def test_each_error_class(
    server: MockServer, client: anthropic.Anthropic, status: int, error: type[Exception]
) -> None:
    server.replace({"error": {"status": status, "message": "scripted"}})
    with pytest.raises(error) as caught:
        client.messages.create(model="m", max_tokens=5, messages=USER)
    body = caught.value.body
    assert body["type"] == "error"
    assert body["error"]["message"] == "scripted"
    assert body["error"]["type"] == {413: "request_too_large", 529: "overloaded_error"}.get(
        status, body["error"]["type"]
    )


def test_sdk_retries_overloaded_then_succeeds(server: MockServer) -> None:
    server.replace(
        {
            "steps": [
                {
                    "error": {"status": 529, "message": "Overloaded"},
                    "headers": {"retry-after-ms": "10"},
                },
                {
                    "error": {"status": 429, "message": "Slow down"},
                    "headers": {"retry-after-ms": "10"},
                },
                {"reply": {"content": "Finally."}},
            ]
        }
    )
    with anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=2) as client:
        message = client.messages.create(model="m", max_tokens=5, messages=USER)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Finally."
    assert [e.status for e in server.state.journal.entries] == [529, 429, 200]


def test_stream_error_event(server: MockServer, client: anthropic.Anthropic) -> None:
    server.replace({"reply": {"content": "one two three four"},
                    "fault": {"kind": "stream_error", "after_chunks": 2,
                              "error": {"status": 529, "message": "Overloaded"}}})  # fmt: skip
    with pytest.raises(anthropic.APIStatusError) as caught:
        for _ in client.messages.create(model="m", max_tokens=5, messages=USER, stream=True):
            pass
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_rate_limit_headers(server: MockServer, client: anthropic.Anthropic) -> None:
    server.replace({"reply": {"content": "ok"}, "rate_limit": {"requests": 1}})
    raw = client.messages.with_raw_response.create(model="m", max_tokens=5, messages=USER)
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="m", max_tokens=5, messages=USER)
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert "x-ratelimit-limit-requests" not in caught.value.response.headers


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "m", "messages": USER}, "max_tokens: Field required"),
        ({"max_tokens": 5, "messages": USER}, "model: Field required"),
        ({"model": "m", "max_tokens": 5}, "messages: Field required"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]},
         "messages.0.role: Input should be 'user' or 'assistant' or 'system'"),
        ({"model": "m", "max_tokens": 5, "messages": USER, "tool_choice": {"type": "maybe"}},
         "tool_choice.type: Input should be one of 'auto', 'any', 'tool', 'none'"),
    ],
)  # fmt: skip
def test_malformed_requests_are_400_in_anthropic_shape(
    server: MockServer, body: dict[str, Any], message: str
) -> None:
    r = httpx.post(f"{server.url}/v1/messages", json=body, headers={"x-api-key": "k"})
    assert r.status_code == 400
    assert r.json()["error"] == {"type": "invalid_request_error", "message": message}


def test_temperature_range_only_in_the_anthropic_profile(server: MockServer) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": USER, "temperature": 1.5}
    assert httpx.post(f"{server.url}/v1/messages", json=body, headers={"x-api-key": "k"}).is_success
    options = Options(profile=PROFILES["anthropic"])
    with MockServer([{"reply": {"content": "x"}}], options=options) as strict:
        r = httpx.post(f"{strict.url}/v1/messages", json=body, headers={"x-api-key": "k"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "temperature: range: 0..1"


def test_system_blocks_and_tool_result_conditions(server: MockServer) -> None:
    server.replace(
        {
            "match": {"system": {"contains": "pirate"}, "api": "messages"},
            "reply": {"content": "Arr."},
        }
    )
    body = {"model": "m", "max_tokens": 5, "messages": USER,
            "system": [{"type": "text", "text": "You are a pirate."}]}  # fmt: skip
    r = httpx.post(f"{server.url}/v1/messages", json=body, headers={"x-api-key": "k"})
    assert r.json()["content"] == [{"type": "text", "text": "Arr."}]


def test_stream_bytes(server: MockServer) -> None:
    server.replace({"reply": {"content": "Hi there"}})
    body = {"model": "m", "max_tokens": 5, "messages": USER, "stream": True}
    raw = httpx.post(f"{server.url}/v1/messages", json=body, headers={"x-api-key": "k"}).text
    frames = raw.split("\n\n")[:-1]
    names = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]  # fmt: skip
    data = [json.loads(f.split("\n")[1].removeprefix("data: ")) for f in frames]
    assert [d["type"] for d in data] == names
    assert data[3]["delta"] == {"type": "text_delta", "text": "Hi"}
    assert data[6]["usage"]["output_tokens"] == 2
    assert "[DONE]" not in raw


def test_models_list_in_each_sdk(server: MockServer, client: anthropic.Anthropic) -> None:
    ids = [m.id for m in client.models.list()]
    assert "gpt-4" in ids
    import openai

    with openai.OpenAI(base_url=server.base_url, api_key="k") as other:
        openai_ids = [m.id for m in other.models.list()]
    assert ids == openai_ids
    assert "text-embedding-3-small" in openai_ids
