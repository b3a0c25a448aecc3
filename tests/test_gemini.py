"""Google Gemini's native API through the real google-genai SDK (pydantic, strict) and raw HTTP."""

# The SDK types every field of a reply Optional: a test reads what the mock sent.
# mypy: disable-error-code="index,operator,misc"

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pydantic
import pytest
from google import genai
from google.genai import errors, types

from mockserver import MockServer, Options
from mockserver.core.profiles import PROFILES

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
SCENARIOS: list[dict[str, Any]] = [
    {"name": "think", "match": {"last_user": "2+2?"},
     "reply": {"reasoning": "Two and two make four.", "content": "4"}},
    {"name": "ask-tool", "match": {"tools": ["get_weather"], "last_role": "user"},
     "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}},
    {"name": "answer-tool", "match": {"last_role": "tool"},
     "reply": {"content": "It is {{ tool_result }} in Paris."}},
    {"name": "city", "match": {"last_user": "a city as JSON", "response_format": "json_schema"},
     "reply": {"content": '{"name": "Paris", "population": 2100000}'}},
    {"name": "busy", "match": {"last_user": "busy"},
     "error": {"status": 429, "message": "Resource has been exhausted (e.g. check quota)."},
     "headers": {"retry-after": "7"}},
    {"name": "down", "match": {"last_user": "down"},
     "error": {"status": 503, "message": "The model is overloaded. Please try again later."}},
    {"name": "counting", "match": {"last_user": "count"},
     "steps": [{"reply": {"content": "one"}}, {"reply": {"content": "two"}}]},
    {"name": "breaks", "match": {"last_user": "break"},
     "reply": {"content": "a b c d e f"}, "cadence": {"chunk": 2},
     "fault": {"kind": "stream_error", "after_chunks": 2,
               "error": {"status": 500, "message": "An internal error has occurred."}}},
    {"name": "only-gemini", "match": {"api": "gemini", "last_user": "which api?"},
     "reply": {"content": "gemini"}},
    {"name": "hello", "match": {"last_user": "hi"}, "reply": {"content": "Hello from the mock."},
     "cadence": {"chunk": 2}},
]  # fmt: skip
KEY = "AIza-test-key-0123456789"


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer(SCENARIOS, options=Options(speed=0)) as server:
        yield server


@pytest.fixture
def client(server: MockServer) -> genai.Client:
    options = types.HttpOptions(base_url=server.url, api_version="v1beta")
    return genai.Client(api_key=KEY, http_options=options)


def test_text(server: MockServer, client: genai.Client) -> None:
    response = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert response.text == "Hello from the mock."
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content.role == "model"
    usage = response.usage_metadata
    assert usage.prompt_token_count == 8
    assert usage.candidates_token_count == 5
    assert usage.total_token_count == 13
    assert response.model_version == "gemini-2.5-flash"
    assert response.response_id
    entry = server.state.journal.entries[-1]
    assert (entry.api, entry.path) == ("gemini", "/v1beta/models/gemini-2.5-flash:generateContent")
    assert entry.headers["x-goog-api-key"] == "***"


def test_stream(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    texts = [c.text for c in chunks if c.text]
    assert len(texts) > 2
    assert "".join(texts) == "Hello from the mock."
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.total_token_count == 13
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1])


def test_function_calling_round_trip(client: genai.Client) -> None:
    """Automatic function calling off: the app runs the function and sends its result back."""
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(**WEATHER)])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    asked = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])
    first = client.models.generate_content(
        model="gemini-2.5-flash", contents=[asked], config=config
    )
    (call,) = first.function_calls
    assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
    assert first.candidates[0].finish_reason == types.FinishReason.STOP
    result = types.Part.from_function_response(name=call.name, response={"result": "sunny"})
    second = client.models.generate_content(
        model="gemini-2.5-flash",
        contents=[asked, first.candidates[0].content, types.Content(role="user", parts=[result])],
        config=config,
    )
    assert second.text == "It is sunny in Paris."


def test_response_schema_parsed_into_a_model(client: genai.Client) -> None:
    class City(pydantic.BaseModel):
        name: str
        population: int

    response = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="a city as JSON",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=City
        ),
    )
    assert response.parsed == City(name="Paris", population=2100000)


def test_thoughts_only_when_asked(client: genai.Client) -> None:
    asked = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="2+2?", config=asked
    )
    parts = response.candidates[0].content.parts
    assert [(p.thought, p.text) for p in parts] == [
        (True, "Two and two make four."),
        (None, "4"),
    ]
    assert response.text == "4"
    assert response.usage_metadata.thoughts_token_count == 6
    hidden = client.models.generate_content(model="gemini-2.5-flash", contents="2+2?")
    assert [p.text for p in hidden.candidates[0].content.parts] == ["4"]
    assert hidden.usage_metadata.thoughts_token_count == 6  # thinking is always counted
    streamed = list(
        client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="2+2?", config=asked
        )
    )
    thoughts = [p.text for c in streamed for p in c.candidates[0].content.parts if p.thought]
    assert "".join(thoughts) == "Two and two make four."


def test_count_tokens_is_the_usage_count(server: MockServer, client: genai.Client) -> None:
    counted = client.models.count_tokens(model="gemini-2.5-flash", contents="count")
    answered = client.models.generate_content(model="gemini-2.5-flash", contents="count")
    assert counted.total_tokens == answered.usage_metadata.prompt_token_count
    # Counting matched nothing: the steps start at their first.
    assert answered.text == "one"
    assert server.state.journal.entries[-2].scenario is None


def test_embeddings(server: MockServer, client: genai.Client) -> None:
    one = client.models.embed_content(model="gemini-embedding-001", contents="rainy weather")
    assert len(one.embeddings[0].values) == 3072
    assert (
        len(
            client.models.embed_content(model="text-embedding-004", contents="x")
            .embeddings[0]
            .values
        )
        == 768
    )
    texts = ["rainy weather today", "rain and weather", "the database is slow"]
    batch = client.models.embed_content(
        model="gemini-embedding-001",
        contents=texts,
        config=types.EmbedContentConfig(output_dimensionality=256),
    )
    vectors = [e.values for e in batch.embeddings]
    assert [len(v) for v in vectors] == [256] * 3

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True)) / math.hypot(*a) / math.hypot(*b)

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    # The same vectors /v1/embeddings generates for the same texts and size.
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test") as oai:
        same = oai.embeddings.create(model="any", input=texts[0], dimensions=256)
    assert same.data[0].embedding == pytest.approx(vectors[0])


def test_errors_are_the_sdks_errors(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as busy:
        client.models.generate_content(model="gemini-2.5-flash", contents="busy")
    assert (busy.value.code, busy.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert busy.value.message == "Resource has been exhausted (e.g. check quota)."
    retry = busy.value.details["error"]["details"][0]
    assert retry == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}
    with pytest.raises(errors.ServerError) as down:
        client.models.generate_content(model="gemini-2.5-flash", contents="down")
    assert (down.value.code, down.value.status) == (503, "UNAVAILABLE")
    with pytest.raises(errors.ClientError) as missing:
        client.models.generate_content(model="gemini-2.5-flash", contents="nothing matches this")
    assert (missing.value.code, missing.value.status) == (404, "NOT_FOUND")


def test_steps(client: genai.Client) -> None:
    said = [
        client.models.generate_content(model="gemini-2.5-flash", contents="count").text
        for _ in range(3)
    ]
    assert said == ["one", "two", "two"]


def test_mid_stream_error_breaks_the_stream(client: genai.Client) -> None:
    got: list[str] = []

    def read() -> None:
        for chunk in client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="break"
        ):
            got.append(chunk.text or "")

    with pytest.raises(errors.ServerError) as broken:
        read()
    assert "".join(got) == "a b "
    assert (broken.value.code, broken.value.status) == (500, "INTERNAL")


def test_api_gemini_restricts_a_scenario(server: MockServer, client: genai.Client) -> None:
    said = client.models.generate_content(model="gemini-2.5-flash", contents="which api?")
    assert said.text == "gemini"
    with (
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test") as oai,
        pytest.raises(openai.NotFoundError),
    ):
        oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "which api?"}])


def test_models(client: genai.Client) -> None:
    model = client.models.get(model="gemini-2.5-flash")
    assert model.name == "models/gemini-2.5-flash"
    assert "generateContent" in model.supported_actions
    names = [m.name for m in client.models.list()]
    assert "models/gemini-2.5-flash" in names
    with pytest.raises(errors.ClientError) as unknown:
        client.models.get(model="gemini-0")
    assert unknown.value.status == "NOT_FOUND"


def test_gemini_profile_rejects_what_google_does() -> None:
    with MockServer(SCENARIOS, options=Options(speed=0, profile=PROFILES["gemini"])) as server:
        client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.url))
        with pytest.raises(errors.ClientError) as hot:
            client.models.generate_content(
                model="gemini-2.5-flash",
                contents="hi",
                config=types.GenerateContentConfig(temperature=3),
            )
        assert (hot.value.code, hot.value.status) == (400, "INVALID_ARGUMENT")
        assert "temperature" in hot.value.message


# --- raw HTTP ------------------------------------------------------------------------------------

BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"


def test_key_in_the_query(server: MockServer) -> None:
    reply = httpx.post(f"{server.url}{GENERATE}?key={KEY}", json=BODY)
    assert reply.status_code == 200
    assert reply.json()["candidates"][0]["content"]["parts"] == [{"text": "Hello from the mock."}]
    entry = server.state.journal.entries[-1]
    assert KEY not in entry.path
    bearer = httpx.post(f"{server.url}{GENERATE}", json=BODY, headers={"Authorization": "Bearer k"})
    assert bearer.status_code == 200


def test_no_key_is_googles_error(server: MockServer) -> None:
    reply = httpx.post(f"{server.url}{GENERATE}", json=BODY)
    assert reply.status_code == 403
    assert reply.json() == {
        "error": {
            "code": 403,
            "message": "Method doesn't allow unregistered callers (callers without established "
            "identity). Please use API Key or other form of API consumer identity to call this API.",
            "status": "PERMISSION_DENIED",
        }
    }


def test_a_key_not_accepted() -> None:
    with MockServer(SCENARIOS, options=Options(speed=0, api_keys=frozenset({"good"}))) as server:
        reply = httpx.post(f"{server.url}{GENERATE}?key=bad", json=BODY)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert (error["status"], error["details"][0]["reason"]) == (
        "INVALID_ARGUMENT",
        "API_KEY_INVALID",
    )


def test_json_array_stream(server: MockServer) -> None:
    """Without ``alt=sse``: one JSON array, sent element by element."""
    reply = httpx.post(f"{server.url}{STREAM}?key={KEY}", json=BODY)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    elements = json.loads(reply.text)
    assert isinstance(elements, list)
    text = "".join(
        p.get("text", "") for e in elements for p in e["candidates"][0]["content"]["parts"]
    )
    assert text == "Hello from the mock."
    assert elements[-1]["candidates"][0]["finishReason"] == "STOP"
    assert reply.text.startswith("[{")
    assert reply.text.endswith("}\n]")


def test_sse_stream(server: MockServer) -> None:
    reply = httpx.post(f"{server.url}{STREAM}?alt=sse", json=BODY, headers={"x-goog-api-key": KEY})
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = [e for e in reply.text.split("\r\n\r\n") if e]
    assert all(e.startswith("data: ") for e in events)
    last = json.loads(events[-1][6:])
    assert last["usageMetadata"]["totalTokenCount"] == 13
    assert last["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        ({}, "contents"),
        ({"contents": [{"role": "robot", "parts": [{"text": "hi"}]}]}, "contents[0].role"),
        ({"contents": [{"parts": "hi"}]}, "contents[0].parts"),
        ({**BODY, "generationConfig": {"temperature": "hot"}}, "generation_config.temperature"),
        (
            {**BODY, "generation_config": {"max_output_tokens": "x"}},
            "generation_config.max_output_tokens",
        ),
    ],
)
def test_malformed_bodies_name_the_field(server: MockServer, body: Any, field: str) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = httpx.post(f"{server.url}{GENERATE}?key={KEY}", content=content)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert field in error["message"] or field == "body"


# --- recording -----------------------------------------------------------------------------------

UPSTREAM: list[dict[str, Any]] = [
    {"name": "weather", "match": {"last_user": "Weather in Paris?", "tools": ["get_weather"]},
     "reply": {"reasoning": "They want the weather.",
               "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
               "model": "gemini-2.5-flash-001"},
     "cadence": {"chunk": 3, "delay": 0.01}},
    {"name": "plain", "match": {"last_user": "Weather in Paris?"},
     "reply": {"content": f"Sunny, and your key is {KEY}.", "usage": {"cached_tokens": 2}},
     "cadence": {"chunk": 3, "delay": 0.01}},
    {"name": "vectors", "match": {"api": "gemini_embeddings"}, "reply": {"embeddings": [[0.5, 0.25]]}},
]  # fmt: skip


def _run(url: str) -> list[Any]:
    """What an app sees: plain, with a tool and thoughts, streamed (SSE and, with the key in the
    query, a JSON array) and an embedding."""
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=url))
    ask = "Weather in Paris?"
    tools = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(**WEATHER)])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        thinking_config=types.ThinkingConfig(include_thoughts=True),
    )
    skip = {"response_id", "sdk_http_response", "automatic_function_calling_history"}
    out: list[Any] = [
        client.models.generate_content(model="gemini-2.5-flash", contents=ask).model_dump(
            mode="json", exclude=skip
        ),
        client.models.generate_content(
            model="gemini-2.5-flash", contents=ask, config=tools
        ).model_dump(mode="json", exclude=skip),
        "".join(
            c.text or ""
            for c in client.models.generate_content_stream(model="gemini-2.5-flash", contents=ask)
        ),
        client.models.embed_content(model="gemini-embedding-001", contents="x").model_dump(
            mode="json", exclude={"sdk_http_response"}
        ),
    ]
    array = httpx.post(
        f"{url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?key={KEY}",
        json={"contents": [{"parts": [{"text": ask}]}], "generationConfig": {"temperature": 0}},
    )
    elements = array.json()
    assert len(elements) > 2
    out.append("".join(p["text"] for e in elements for p in e["candidates"][0]["content"]["parts"]))
    return out


def test_record_then_replay_offline(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from mockserver.cli import main
    from mockserver.recording.record import Recorder

    out = tmp_path / "recorded"
    caplog.set_level(logging.INFO, logger="mockserver")
    with MockServer(UPSTREAM, options=Options(speed=0)) as upstream:
        rec = Recorder(upstream=upstream.url, out=out)
        with MockServer([], options=Options(recorder=rec, speed=0)) as recording:
            recorded = _run(recording.url)
            assert [e.outcome for e in recording.journal] == ["recorded"] * 5
            assert all(KEY not in e.path for e in recording.journal)
        assert [e.path.partition("?")[0].rpartition(":")[2] for e in upstream.journal] == [
            "generateContent", "generateContent", "streamGenerateContent",
            "batchEmbedContents", "streamGenerateContent",
        ]  # fmt: skip
    written = "".join(p.read_text() for p in sorted(out.iterdir()))
    assert KEY not in written
    assert KEY not in caplog.text
    assert "gemini-2.5-flash-001" in written
    assert main(["validate", str(out)]) == 0
    with MockServer([out], options=Options(speed=0)) as replay:
        replayed = _run(replay.url)
        assert not replay.unmatched
    # The same answers, but for the key the upstream echoed, which the recording redacted.
    assert replayed == json.loads(json.dumps(recorded).replace(KEY, "[REDACTED]"))
    assert replayed[0]["candidates"][0]["content"]["parts"][0]["text"] == (
        "Sunny, and your key is [REDACTED]."
    )
    assert recorded[0]["usage_metadata"]["cached_content_token_count"] == 2
    parts = recorded[1]["candidates"][0]["content"]["parts"]
    assert [p["thought"] for p in parts] == [True, None]
    assert parts[1]["function_call"]["args"] == {"city": "Paris"}
    assert parts[1]["thought_signature"]  # with thinking, the call is signed (base64 bytes)
    assert recorded[3]["embeddings"][0]["values"] == [0.5, 0.25]


# --- a framework, unchanged -----------------------------------------------------------------------


def test_langchain_chat_google_generative_ai(server: MockServer) -> None:
    """LangChain's Google chat model, pointed at the mock by its ``base_url``: text, stream,
    and a tool call bound from a function."""
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_google_genai import ChatGoogleGenerativeAI

    llm = ChatGoogleGenerativeAI(
        model="gemini-2.5-flash", google_api_key=KEY, base_url=server.url, max_retries=0
    )
    said = llm.invoke("hi")
    assert said.content == "Hello from the mock."
    assert said.usage_metadata is not None
    assert said.usage_metadata["input_tokens"] == 8
    assert said.usage_metadata["output_tokens"] == 5
    streamed = "".join(str(chunk.content) for chunk in llm.stream("hi"))
    assert streamed == "Hello from the mock."

    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    tooled = llm.bind_tools([get_weather])
    asked = HumanMessage("Weather in Paris?")
    first = tooled.invoke([asked])
    (call,) = first.tool_calls
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Paris"})
    result = ToolMessage("sunny", tool_call_id=call["id"], name="get_weather")
    assert tooled.invoke([asked, first, result]).content == "It is sunny in Paris."
    assert server.state.journal.entries[-1].request.messages[-1]["role"] == "tool"


# google-genai's async client (what pydantic-ai calls) subclasses aiohttp's ClientSession.
@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
async def test_pydantic_ai_google_model(server: MockServer, client: genai.Client) -> None:
    """pydantic-ai's ``GoogleModel`` over a ``google-genai`` client pointed at the mock: text
    with usage, and a tool the agent calls and whose result the model reads back."""
    from pydantic_ai import Agent
    from pydantic_ai.models.google import GoogleModel
    from pydantic_ai.providers.google import GoogleProvider

    model = GoogleModel("gemini-3.5-flash", provider=GoogleProvider(client=client))
    try:
        said = await Agent(model).run("hi")
        assert said.output == "Hello from the mock."
        assert (said.usage.input_tokens, said.usage.output_tokens) == (8, 5)

        agent = Agent(model)

        @agent.tool_plain
        def get_weather(city: str) -> str:
            """The weather in a city."""
            return f"sunny ({city})"

        answered = await agent.run("Weather in Paris?")
        assert answered.output == "It is sunny (Paris) in Paris."
    finally:
        await client.aio.aclose()
    journal = server.state.journal.entries
    assert [e.scenario for e in journal[-2:]] == ["ask-tool", "answer-tool"]


def test_a_shared_journal_reads_a_gemini_entry_with_its_url() -> None:
    """With ``--workers`` or Redis an entry is read back from the shared journal and parsed
    again: a Gemini one with its path (the model) and query (``alt=sse``)."""
    from mockserver.state.shared import LocalBackend, SharedStore

    with MockServer(SCENARIOS, options=Options(speed=0), store=SharedStore(LocalBackend())) as mock:
        url = f"{mock.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        assert httpx.post(url, json=body, headers={"x-goog-api-key": KEY}).status_code == 200
        seq = mock.journal[-1].seq
        shown = httpx.get(f"{mock.url}/_mock/journal/{seq}").json()
    assert (shown["model"], shown["last_user"]) == ("gemini-2.5-flash", "hi")


def test_explain_knows_the_gemini_routes(server: MockServer, client: genai.Client) -> None:
    """``/_mock/explain`` re-reads a journalled Gemini request (its model is in its path), and
    takes a body with the path given or with ``model`` in it."""
    client.models.generate_content(model="gemini-2.5-flash", contents="which api?")
    seq = server.state.journal.entries[-1].seq
    by_seq = httpx.post(f"{server.url}/_mock/explain", json={"seq": seq}).json()
    assert by_seq["answer"]["scenario"] == "only-gemini"
    assert by_seq["request"]["model"] == "gemini-2.5-flash"
    body = {"contents": [{"parts": [{"text": "which api?"}]}]}
    by_path = httpx.post(
        f"{server.url}/_mock/explain",
        json={"api": "gemini", "body": body, "path": "/v1beta/models/gemini-x:generateContent"},
    ).json()
    assert (by_path["answer"]["scenario"], by_path["request"]["model"]) == (
        "only-gemini",
        "gemini-x",
    )
    by_model = httpx.post(
        f"{server.url}/_mock/explain",
        json={"api": "gemini", "body": {**body, "model": "models/gemini-y"}},
    ).json()
    assert by_model["request"]["model"] == "gemini-y"
    assert len(server.state.journal.entries) == 1  # explaining answers nothing


# --- the documentation's examples ----------------------------------------------------------------


def _docs_server() -> MockServer:
    from mockserver import load_text
    from tests.docs import titled

    return MockServer(load_text(titled("scenarios/gemini.yaml")), options=Options(speed=0))


def _exec(code: str, url: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code.replace("http://127.0.0.1:8000", url), {})
    return out.getvalue()


def test_docs_genai_example() -> None:
    from tests.docs import example

    with _docs_server() as server:
        out = _exec(example("gemini-genai"), server.url)
    assert out == "Hello from the mock.\n[True, True]\nTrue\n[3072, 3072]\n"


def test_docs_langchain_example() -> None:
    from tests.docs import example

    with _docs_server() as server:
        assert _exec(example("gemini-langchain"), server.url) == "Hello from the mock.\n"


@pytest.mark.parametrize("alt", ["?alt=sse&", "?"])
def test_stream_faults_break_the_stream_as_googles_do(alt: str) -> None:
    """``no_done``: no last chunk (no finishReason, and the array left open); ``failed``: an
    error object as the last element."""
    faults = [
        {"name": "cut", "match": {"last_user": "cut"}, "reply": {"content": "a b c"},
         "fault": {"kind": "no_done"}},
        {"name": "fail", "match": {"last_user": "fail"}, "reply": {"content": "a b c"},
         "fault": {"kind": "failed", "after_chunks": 1,
                   "error": {"status": 503, "message": "The model is overloaded."}}},
    ]  # fmt: skip
    sse = "sse" in alt
    with MockServer(faults, options=Options(speed=0)) as server:

        def send(text: str) -> str:
            body = {"contents": [{"parts": [{"text": text}]}]}
            return httpx.post(f"{server.url}{STREAM}{alt}key={KEY}", json=body).text

        cut, failed = send("cut"), send("fail")
    assert "finishReason" not in cut
    if sse:
        events = [json.loads(e[6:]) for e in cut.split("\r\n\r\n") if e]
        last = json.loads(failed.strip().split("\r\n\r\n")[-1][6:])
    else:
        assert not cut.rstrip().endswith("]")
        events = json.loads(cut + "]")  # the array, as far as it went
        last = json.loads(failed)[-1]
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == "a b c"
    assert last == {
        "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
    }


# google-genai's async client subclasses aiohttp's ClientSession, which aiohttp warns about.
@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
async def test_async_client_streams(server: MockServer) -> None:
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.url))
    chunks = [
        c.text
        async for c in await client.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="hi"
        )
    ]
    assert "".join(t for t in chunks if t) == "Hello from the mock."
    await client.aio.aclose()


def test_drift_checks_a_gemini_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``mockserver drift`` sends a Gemini recording again as Google's client would (its key as
    ``x-goog-api-key``, from GEMINI_API_KEY; the path whole, its version included)."""
    from mockserver.cli import main
    from mockserver.recording.record import Recorder

    out = tmp_path / "recorded"
    sunny = [{"name": "sunny", "reply": {"content": "Sunny in Paris."}}]
    with MockServer(sunny, options=Options(speed=0)) as upstream:
        rec = Recorder(upstream=upstream.url, out=out)
        with MockServer([], options=Options(recorder=rec, speed=0)) as recording:
            client = genai.Client(api_key=KEY, http_options={"base_url": recording.url})
            client.models.generate_content(model="gemini-2.5-flash", contents="Weather in Paris?")
            recorded = recording.journal[-1].path  # the SDK's version: /v1beta or /v1
        monkeypatch.setenv("GEMINI_API_KEY", "AIza-drift-0123456789")
        assert main(["drift", "--upstream", upstream.url, str(out)]) == 0
        sent = upstream.journal[-1]
    assert "same" in capsys.readouterr().out
    assert recorded.endswith("/models/gemini-2.5-flash:generateContent")
    assert sent.path == recorded
    assert sent.headers["x-goog-api-key"] == "***"
