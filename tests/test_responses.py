"""The Responses API through the official SDKs (strict validation) and on the wire."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pydantic
import pytest

from mockserver import OPENAI, MockServer, Options

AUTH = {"Authorization": "Bearer sk-test"}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
ROUND_TRIP = {
    "name": "weather-round-trip",
    "match": {"tools": ["get_weather"]},
    "steps": [
        {"reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}},
        {"reply": {"content": "It is {{ tool_result }} in Paris."}},
    ],
}


def post(server: MockServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}/responses", json=body, headers=AUTH)


def test_plain_reply_passes_strict_validation(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add({"reply": {"content": "Hello from the Responses API."}})
    response = openai_client.responses.create(model="gpt-4.1", input="hi", instructions="Be kind.")
    assert response.output_text == "Hello from the Responses API."
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.instructions == "Be kind."
    usage = response.usage
    assert usage is not None
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.output_tokens == 6  # Hello, " from", " the", " Responses", " API", "."
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    entry = mockserver.last
    assert entry.request is not None
    assert (entry.api, entry.last_user, entry.request.system) == ("responses", "hi", "Be kind.")


def test_stream_and_stream_helper(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add({"reply": {"content": "Streamed words arrive in order."}})
    events = list(openai_client.responses.create(model="m", input="hi", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Streamed words arrive in order."
    with openai_client.responses.stream(model="m", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Streamed words arrive in order."
    assert final.usage is not None
    assert final.usage.output_tokens == 6


class Weather(pydantic.BaseModel):
    city: str
    degrees: int


def test_parse_structured_output(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add(
        {
            "match": {"response_format": "json_schema"},
            "reply": {"content": '{"city": "Paris", "degrees": 21}'},
        }
    )
    parsed = openai_client.responses.parse(model="m", input="weather?", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Paris", degrees=21)


def test_function_call_round_trip_by_resent_history(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add(ROUND_TRIP)
    first = openai_client.responses.create(
        model="m", input="Weather in Paris?", tools=[WEATHER_TOOL]
    )
    (call,) = first.output
    assert call.type == "function_call"
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    history: list[Any] = [
        {"role": "user", "content": "Weather in Paris?"},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]
    second = openai_client.responses.create(model="m", input=history, tools=[WEATHER_TOOL])
    assert second.output_text == "It is sunny in Paris."
    assert [e.step for e in mockserver.journal] == [0, 1]


def test_function_call_round_trip_by_previous_response_id(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add(ROUND_TRIP)
    first = openai_client.responses.create(
        model="m", input="Weather in Paris?", tools=[WEATHER_TOOL]
    )
    call = first.output[0]
    assert call.type == "function_call"
    second = openai_client.responses.create(
        model="m",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rainy"}],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "It is rainy in Paris."
    assert second.previous_response_id == first.id
    assert [m["role"] for m in mockserver.last.messages] == ["user", "assistant", "tool"]
    stored = openai_client.responses.retrieve(second.id)
    assert stored.output_text == "It is rainy in Paris."


def test_unknown_previous_response_and_unstored_ones(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add({"reply": {"content": "ok"}})
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.responses.create(model="m", input="x", previous_response_id="resp_nope")
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"
    unstored = openai_client.responses.create(model="m", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(unstored.id)


@pytest.mark.parametrize("stream", [False, True])
def test_responses_are_retrieved_and_continued_as_sent(
    mockserver: MockServer, openai_client: openai.OpenAI, stream: bool
) -> None:
    """A stored copy is kept as its compiled body's values (from the third response of a reply
    and request shape on, plain or streamed): retrieved, it is the response that was sent, and
    a later request continues its conversation."""
    mockserver.add({"reply": {"content": "Noted.", "reasoning": "Short.",
                              "tool_calls": [{"name": "f", "arguments": {"x": 1}}]}})  # fmt: skip

    def create(text: str, previous: str | None) -> Any:
        if not stream:
            return openai_client.responses.create(
                model="m", input=text, previous_response_id=previous
            )
        events = list(openai_client.responses.create(
            model="m", input=text, stream=True, previous_response_id=previous
        ))  # fmt: skip
        assert events[-1].type == "response.completed"
        return events[-1].response

    for i in range(4):  # requests that set nothing the response echoes: the plain shape
        sent = create(f"alone {i}", None)
        assert openai_client.responses.retrieve(sent.id) == sent
    previous, first_call = None, ""
    for i in range(4):
        sent = create(f"note {i}", previous)
        assert openai_client.responses.retrieve(sent.id) == sent
        if i:
            said = [(m["role"], m["content"]) for m in mockserver.last.messages]
            assert said == [("user", "note 0"), ("assistant", "Noted."), *said[2:]]
            assert said[-1] == ("user", f"note {i}")
            assert len(said) == 2 * i + 1
            calls = mockserver.last.messages[1]["tool_calls"]  # the first reply's call, by id
            assert calls[0]["id"] == first_call
        else:
            first_call = next(o.call_id for o in sent.output if o.type == "function_call")
        previous = sent.id


def test_reasoning_then_text(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add({"reply": {"reasoning": "Two and two make four.", "content": "4"}})
    response = openai_client.responses.create(model="o4-mini", input="2+2?")
    reasoning, _message = response.output
    assert reasoning.type == "reasoning"
    assert reasoning.summary[0].text == "Two and two make four."
    assert response.output_text == "4"
    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens == 6
    events = list(openai_client.responses.create(model="o4-mini", input="2+2?", stream=True))
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert summary == "Two and two make four."
    kinds = [e.type for e in events]
    assert kinds.index("response.reasoning_summary_text.done") < kinds.index(
        "response.output_text.delta"
    )


def test_refusal(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add({"reply": {"content": None, "refusal": "I can't help with that."}})
    response = openai_client.responses.create(model="m", input="forbidden")
    (message,) = response.output
    assert message.type == "message"
    assert message.content[0].type == "refusal"
    assert message.content[0].refusal == "I can't help with that."
    events = list(openai_client.responses.create(model="m", input="forbidden", stream=True))
    assert "".join(e.delta for e in events if e.type == "response.refusal.delta") == (
        "I can't help with that."
    )


def test_length_cut_is_incomplete(mockserver: MockServer) -> None:
    options = Options(profile=OPENAI, speed=0)
    scenario = {"reply": {"content": "one two three four five six seven eight nine ten " * 3}}
    with (
        MockServer([scenario], options=options) as server,
        openai.OpenAI(
            base_url=server.base_url, api_key="k", _strict_response_validation=True
        ) as client,
    ):
        response = client.responses.create(model="m", input="x", max_output_tokens=16)
        assert response.status == "incomplete"
        assert response.incomplete_details is not None
        assert response.incomplete_details.reason == "max_output_tokens"
        assert response.usage is not None
        assert response.usage.output_tokens == 16
        events = list(
            client.responses.create(model="m", input="x", max_output_tokens=16, stream=True)
        )
        assert events[-1].type == "response.incomplete"


def test_each_fault(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    text = "one two three four five six"
    for kind in ("drop", "reset"):
        mockserver.replace({"reply": {"content": text}, "fault": {"kind": kind, "after_chunks": 2}})
        with pytest.raises(openai.APIConnectionError):
            list(openai_client.responses.create(model="m", input="x", stream=True))
        with pytest.raises(openai.APIConnectionError):
            openai_client.responses.create(model="m", input="x")
    mockserver.replace({"reply": {"content": text}, "fault": {"kind": "stream_error", "after_chunks": 2,
                        "error": {"status": 500, "message": "boom", "type": "server_error"}}})  # fmt: skip
    seen: list[Any] = []
    with pytest.raises(openai.APIError) as caught:  # noqa: PT012 - the error comes mid-stream
        for event in openai_client.responses.create(model="m", input="x", stream=True):
            seen.append(event)
    assert caught.value.message == "boom"
    assert [e.delta for e in seen if e.type == "response.output_text.delta"] == ["one", " two"]
    mockserver.replace({"reply": {"content": text}, "fault": {"kind": "failed", "after_chunks": 1}})
    events = list(openai_client.responses.create(model="m", input="x", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None
    assert events[-1].response.error.code == "server_error"
    with pytest.raises(openai.InternalServerError):
        openai_client.responses.create(model="m", input="x")
    mockserver.replace({"reply": {"content": text}, "fault": {"kind": "no_done"}})
    events = list(openai_client.responses.create(model="m", input="x", stream=True))
    assert events[-1].type == "response.output_item.done"
    mockserver.replace(
        {"reply": {"content": text}, "fault": {"kind": "malformed", "after_chunks": 1}}
    )
    with pytest.raises(json.JSONDecodeError):
        list(openai_client.responses.create(model="m", input="x", stream=True))


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "x"}, "model", "missing_required_parameter"),
        ({"model": "m"}, "input", "missing_required_parameter"),
        ({"model": "m", "input": 5}, "input", "invalid_type"),
        (
            {"model": "m", "input": [{"role": "robot", "content": "x"}]},
            "input[0].role",
            "invalid_value",
        ),
        ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
        (
            {"model": "m", "input": "x", "tools": [{"type": "function"}]},
            "tools[0].name",
            "missing_required_parameter",
        ),
        (
            {"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}},
            "text.format.type",
            "invalid_value",
        ),
        (
            {"model": "m", "input": "x", "max_output_tokens": "many"},
            "max_output_tokens",
            "invalid_type",
        ),
        (
            {"model": "m", "input": "x", "previous_response_id": 7},
            "previous_response_id",
            "invalid_type",
        ),
    ],
)
def test_malformed_requests_are_400_naming_the_param(
    mockserver: MockServer, body: dict[str, Any], param: str, code: str
) -> None:
    mockserver.add({"reply": {"content": "never"}})
    response = post(mockserver, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert response.headers["x-request-id"].startswith("req_")


def test_one_scenario_answers_chat_and_responses_alike(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add(
        {"match": {"last_user": {"contains": "weather"}}, "reply": {"content": "Sunny, 21 degrees.",
         "usage": {"prompt_tokens": 11, "completion_tokens": 5}}},
        {"match": {"tools": ["get_weather"]}, "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}},
    )  # fmt: skip
    chat = openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "the weather?"}]
    )
    resp = openai_client.responses.create(model="m", input="the weather?")
    assert chat.choices[0].message.content == resp.output_text == "Sunny, 21 degrees."
    assert chat.usage is not None
    assert resp.usage is not None
    assert (chat.usage.prompt_tokens, chat.usage.completion_tokens, chat.usage.total_tokens) == (
        resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.total_tokens
    )  # fmt: skip
    chat_tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    chat = openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "go"}], tools=chat_tools
    )
    resp = openai_client.responses.create(model="m", input="go", tools=[WEATHER_TOOL])
    (chat_call,) = chat.choices[0].message.tool_calls or []
    assert chat_call.type == "function"
    resp_call = resp.output[0]
    assert resp_call.type == "function_call"
    assert (chat_call.function.name, chat_call.function.arguments) == (
        resp_call.name,
        resp_call.arguments,
    )
    assert [e.api for e in mockserver.journal] == ["chat", "responses", "chat", "responses"]


def test_api_condition_restricts_a_scenario(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add(
        {"name": "responses-only", "match": {"api": "responses"}, "reply": {"content": "R"}},
        {"name": "others", "reply": {"content": "C"}},
    )
    assert openai_client.responses.create(model="m", input="x").output_text == "R"
    chat = openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}]
    )
    assert chat.choices[0].message.content == "C"


def test_text_stream_bytes(mockserver: MockServer, clock: Any) -> None:
    mockserver.options.clock = clock
    mockserver.add({"reply": {"content": "Hi there"}})
    body = {"model": "m", "input": "x", "stream": True, "store": False}
    raw = post(mockserver, body).content.decode()
    assert "[DONE]" not in raw
    frames = raw.split("\n\n")
    assert frames[-1] == ""
    names = [f.split("\n")[0] for f in frames[:-1]]
    assert names == [f"event: response.{n}" for n in (
        "created", "in_progress", "output_item.added", "content_part.added", "output_text.delta",
        "output_text.delta", "output_text.done", "content_part.done", "output_item.done",
        "completed")]  # fmt: skip
    data = [json.loads(f.split("\n")[1].removeprefix("data: ")) for f in frames[:-1]]
    assert [d["sequence_number"] for d in data] == list(range(10))
    assert [d["type"] for d in data] == [n.removeprefix("event: ") for n in names]
    delta = data[4]
    rid = data[0]["response"]["id"]
    assert delta == {"type": "response.output_text.delta", "sequence_number": 4,
                     "item_id": "msg_" + rid.removeprefix("resp_")[:16], "output_index": 0,
                     "content_index": 0, "delta": "Hi", "logprobs": []}  # fmt: skip
    assert data[-1]["response"]["created_at"] == 1000
    assert post(mockserver, body).content.decode() == raw  # same input, same bytes


def test_apifactory_quirks(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add({"reply": {"content": "A full answer of several words."}})
    raw = openai_client.responses.with_raw_response.create(
        model="m", input="x", max_output_tokens=10
    )
    assert raw.parse().output_text == "A full answer of several words."
    assert raw.headers["x-mock-adjusted"] == "max_output_tokens=ignored"
    for effort in ("low", "medium"):
        raw = openai_client.responses.with_raw_response.create(
            model="m", input="x", reasoning={"effort": effort}
        )
        assert raw.parse().output_text == ""
        assert raw.headers["x-mock-adjusted"] == f"reasoning.effort={effort}: empty content"
    for effort in ("high", "none", "minimal"):
        response = openai_client.responses.create(
            model="m", input="x", reasoning={"effort": effort}
        )
        assert response.output_text == "A full answer of several words."
    assert mockserver.journal[1].adjusted == ("reasoning.effort=low: empty content",)


def test_openai_profile_rejects_small_max_output_tokens() -> None:
    with MockServer([{"reply": {"content": "x"}}], options=Options(profile=OPENAI)) as server:
        response = post(server, {"model": "m", "input": "x", "max_output_tokens": 10})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "integer_below_min_value"
    assert response.json()["error"]["param"] == "max_output_tokens"


def test_chat_style_usage_is_an_opt_in() -> None:
    options = Options(responses_usage="chat")
    with MockServer([{"reply": {"content": "x"}}], options=options) as server:
        usage = post(server, {"model": "m", "input": "x"}).json()["usage"]
    assert set(usage) >= {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_openai_agents_run_and_run_streamed(mockserver: MockServer) -> None:
    agents = pytest.importorskip("agents")
    import asyncio

    mockserver.add(
        {
            "match": {"api": "responses", "tools": ["get_weather"], "last_role": "user"},
            "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
        },
        {
            "match": {"last_role": "tool"},
            "reply": {"content": "The agent says: {{ tool_result }}."},
        },
    )

    @agents.function_tool  # type: ignore[untyped-decorator]
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    async def run() -> tuple[str, str]:
        client = openai.AsyncOpenAI(base_url=mockserver.base_url, api_key="k", max_retries=0)
        agents.set_tracing_disabled(True)  # tracing would try the network
        agents.set_default_openai_client(client, use_for_tracing=False)
        agent = agents.Agent(name="Assistant", instructions="Be brief.", tools=[get_weather])
        plain = await agents.Runner.run(agent, "Weather in Paris?")
        streamed = agents.Runner.run_streamed(agent, "Weather in Paris?")
        async for _ in streamed.stream_events():
            pass
        await client.close()
        return plain.final_output, streamed.final_output

    plain, streamed = asyncio.run(run())
    assert plain == streamed == "The agent says: sunny in Paris."
    assert [e.api for e in mockserver.journal] == ["responses"] * 4
    assert mockserver.journal[0].body["instructions"] == "Be brief."
    assert mockserver.journal[0].body["reasoning"] == {"effort": "none"}  # the default model's
    second = mockserver.journal[1].body["input"]
    assert [i.get("type") for i in second] == [None, "function_call", "function_call_output"]


@pytest.mark.parametrize("kind", ["text", "json_object"])
def test_text_formats_are_matched(mockserver: MockServer, kind: str) -> None:
    mockserver.add({"match": {"response_format": kind}, "reply": {"content": "{}"}})
    r = post(mockserver, {"model": "m", "input": "x", "text": {"format": {"type": kind}}})
    assert r.status_code == 200
    assert r.json()["text"] == {"format": {"type": kind}}
