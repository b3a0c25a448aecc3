"""The official openai SDK, sync and async, streamed and not, against a real socket."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from mockserver import MockServer

USER = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def answer(mockserver: MockServer) -> MockServer:
    mockserver.add({"reply": {"content": "It is sunny in Paris today, with a light breeze."}})
    return mockserver


def test_plain_reply_has_every_field(answer: MockServer, openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(model="gpt-4o", messages=USER)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o"
    assert completion.system_fingerprint
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "It is sunny in Paris today, with a light breeze."
    assert choice.message.refusal is None
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens == 12
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert (completion._request_id or "").startswith("req_")


def test_same_request_same_bytes(answer: MockServer, openai_client: openai.OpenAI) -> None:
    first = openai_client.chat.completions.with_raw_response.create(model="gpt-4", messages=USER)
    second = openai_client.chat.completions.with_raw_response.create(model="gpt-4", messages=USER)
    assert first.parse().id == second.parse().id
    assert first.parse().model_dump(exclude={"created"}) == second.parse().model_dump(
        exclude={"created"}
    )
    assert first.headers["x-request-id"] != second.headers["x-request-id"]  # one per request


def test_streamed_text_joins_to_plain_text(
    answer: MockServer, openai_client: openai.OpenAI
) -> None:
    plain = openai_client.chat.completions.create(model="gpt-4", messages=USER)
    chunks = list(
        openai_client.chat.completions.create(
            model="gpt-4", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert len({c.id for c in chunks}) == 1
    assert len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert len(chunks) > 5, "the reply is streamed token by token"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == plain.usage
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(
    answer: MockServer, openai_client: openai.OpenAI
) -> None:
    chunks = list(openai_client.chat.completions.create(model="gpt-4", messages=USER, stream=True))
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_helper_builds_final_completion(
    answer: MockServer, openai_client: openai.OpenAI
) -> None:
    with openai_client.chat.completions.stream(model="gpt-4", messages=USER) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_completion()
    assert "content.delta" in events
    assert final.choices[0].message.content == "It is sunny in Paris today, with a light breeze."


async def test_async_client(answer: MockServer, async_openai_client: openai.AsyncOpenAI) -> None:
    completion = await async_openai_client.chat.completions.create(model="gpt-4", messages=USER)
    stream = await async_openai_client.chat.completions.create(
        model="gpt-4", messages=USER, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == completion.choices[0].message.content


TOOL_SCENARIO: dict[str, Any] = {
    "reply": {
        "tool_calls": [
            {"name": "get_weather", "arguments": {"city": "Paris"}},
            {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
        ]
    }
}


def test_parallel_tool_calls(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add(TOOL_SCENARIO)
    completion = openai_client.chat.completions.create(
        model="gpt-4", messages=USER, tools=[WEATHER_TOOL]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get_weather", '{"city":"Paris"}'),  # a mapping: compact, as OpenAI writes it
        ("get_weather", '{"city": "Lyon"}'),  # a string: as written
    ]
    assert len({c.id for c in calls}) == 2


def test_streamed_tool_calls_accumulate(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add(TOOL_SCENARIO)
    with openai_client.chat.completions.stream(
        model="gpt-4", messages=USER, tools=[WEATHER_TOOL]
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.arguments for c in calls] == ['{"city":"Paris"}', '{"city": "Lyon"}']
    assert final.choices[0].finish_reason == "tool_calls"


def test_reasoning_content(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add({"reply": {"reasoning": "The user wants weather.", "content": "Sunny."}})
    completion = openai_client.chat.completions.create(model="deepseek-r1", messages=USER)
    message = completion.choices[0].message
    assert message.reasoning_content == "The user wants weather."
    assert message.content == "Sunny."
    details = completion.usage.completion_tokens_details
    assert details is not None
    assert details.reasoning_tokens == 5
    chunks = list(
        openai_client.chat.completions.create(model="deepseek-r1", messages=USER, stream=True)
    )
    kinds = [
        "r" if getattr(c.choices[0].delta, "reasoning_content", None) else "c" for c in chunks[1:-1]
    ]
    assert kinds == sorted(kinds, reverse=True), "reasoning deltas come before content"
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", "") or "" for c in chunks)
    assert reasoning == "The user wants weather."


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (409, openai.ConflictError),
        (422, openai.UnprocessableEntityError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_scripted_error_maps_to_sdk_exception(
    mockserver: MockServer,
    openai_client: openai.OpenAI,
    status: int,
    exception: type[openai.APIStatusError],
) -> None:
    mockserver.add({"error": {"status": status, "message": "scripted", "code": "x"}})
    with pytest.raises(exception) as caught:
        openai_client.chat.completions.create(model="gpt-4", messages=USER)
    assert caught.value.status_code == status
    expected_type = "server_error" if status >= 500 else "invalid_request_error"
    if status == 429:
        expected_type = "rate_limit_error"
    assert caught.value.body == {
        "message": "scripted",
        "type": expected_type,
        "param": None,
        "code": "x",
    }
    assert caught.value.request_id


def test_unmatched_request_names_nearest_scenario(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add({"name": "weather", "match": {"last_user": {"contains": "snow"}},
                    "reply": {"content": "Snow."}})  # fmt: skip
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.chat.completions.create(model="gpt-4", messages=USER)
    assert caught.value.code == "scenario_not_found"
    assert "'weather'" in caught.value.message
    assert "last_user contains 'snow', got 'What is the weather in Paris?'" in caught.value.message
    assert mockserver.unmatched
    mockserver.reset()  # this test expects the miss; don't fail it at teardown


def test_models_list(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add({"match": {"model": "my-model"}, "reply": {"content": "x"}})
    ids = [m.id for m in openai_client.models.list()]
    assert ids == [
        "gemini-2.5-flash",
        "gemini-embedding-001",
        "gpt-4",
        "my-model",
        *(f"text-embedding-{m}" for m in ("3-large", "3-small", "ada-002")),
    ]
    assert openai_client.models.retrieve("my-model").id == "my-model"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("nope")


def test_base_url_without_v1(answer: MockServer) -> None:
    client = openai.OpenAI(base_url=answer.url, api_key="k", max_retries=0)
    completion = client.chat.completions.create(model="gpt-4", messages=USER)
    assert completion.choices[0].message.content


def test_sdk_retries_scripted_429_then_succeeds(mockserver: MockServer) -> None:
    mockserver.add(
        {
            "steps": [
                {"error": {"status": 429}, "headers": {"retry-after-ms": "1"}},
                {"reply": {"content": "Recovered."}},
            ]
        }
    )
    client = openai.OpenAI(base_url=mockserver.base_url, api_key="k", max_retries=2)
    completion = client.chat.completions.create(model="gpt-4", messages=USER)
    assert completion.choices[0].message.content == "Recovered."
    assert [e.status for e in mockserver.journal] == [429, 200]
    assert mockserver.journal[1].headers["x-stainless-retry-count"] == "1"
