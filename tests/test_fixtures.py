"""Every file in fixtures/ does what its comment says, through the real openai SDK."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from mockserver import MockServer

FIXTURES = Path(__file__).parent.parent / "fixtures"
USER = [{"role": "user", "content": "What's the weather in Paris?"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


@pytest.mark.mockserver(FIXTURES / "tool_round_trip.yaml")
def test_tool_round_trip(openai_client: openai.OpenAI) -> None:
    first = openai_client.chat.completions.create(model="gpt-4", messages=USER, tools=[TOOL])
    call = (first.choices[0].message.tool_calls or [])[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
    history = [
        *USER,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "21°C and sunny"},
    ]
    final = openai_client.chat.completions.create(model="gpt-4", messages=history, tools=[TOOL])
    assert final.choices[0].message.content == "It is 21°C and sunny in Paris right now."


@pytest.mark.mockserver(FIXTURES / "parallel_tool_calls.yaml")
def test_parallel_tool_calls(openai_client: openai.OpenAI) -> None:
    reply = openai_client.chat.completions.create(model="gpt-4", messages=USER, tools=[TOOL])
    calls = reply.choices[0].message.tool_calls or []
    cities = [json.loads(c.function.arguments)["city"] for c in calls]
    assert cities == ["Paris", "Tokyo"]


@pytest.mark.mockserver(FIXTURES / "reasoning.yaml")
def test_reasoning(openai_client: openai.OpenAI) -> None:
    reply = openai_client.chat.completions.create(model="deepseek-reasoner", messages=USER)
    message = reply.choices[0].message
    assert message.reasoning_content.startswith("The user asks")
    assert message.content == "17 times 3 is 51."


@pytest.mark.mockserver(FIXTURES / "json_output.yaml")
def test_json_output(openai_client: openai.OpenAI) -> None:
    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str
        temperature: int

    parsed = openai_client.chat.completions.parse(
        model="gpt-4o", messages=USER, response_format=Weather
    )
    assert parsed.choices[0].message.parsed == Weather(city="Paris", temperature=21)
    plain = openai_client.chat.completions.create(
        model="gpt-4o", messages=USER, response_format={"type": "json_object"}
    )
    assert json.loads(plain.choices[0].message.content or "") == {"answer": USER[0]["content"]}


@pytest.mark.mockserver(FIXTURES / "slow_stream.yaml")
def test_slow_stream_runs_instantly_but_keeps_its_script(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    stream = openai_client.chat.completions.create(model="gpt-4", messages=USER, stream=True)
    words = [c.choices[0].delta.content for c in stream if c.choices[0].delta.content]
    assert words[:3] == ["Streaming ", "one ", "word "]
    delays = mockserver.last.extra["delays"]
    assert delays[0] == delays[-1] == 0, "the role chunk and the finish chunk carry no text"
    assert delays[1] == 0.5, "first_delay is the time to the first token"
    assert all(0.04 <= d <= 0.06 for d in delays[2:-1]), "50 ms +/- 10 ms of seeded jitter"


@pytest.mark.mockserver(FIXTURES / "rate_limit_then_success.yaml")
def test_rate_limit_then_success(mockserver: MockServer) -> None:
    with openai.OpenAI(base_url=mockserver.base_url, api_key="k", max_retries=2) as client:
        reply = client.chat.completions.create(model="gpt-4", messages=USER)
    assert reply.choices[0].message.content == "Answered after the rate limit cleared."
    assert [e.status for e in mockserver.journal] == [429, 200]


@pytest.mark.mockserver(FIXTURES / "rate_limit_budget.yaml")
def test_rate_limit_budget(
    mockserver: MockServer, openai_client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(mockserver.options, "clock", lambda: now[0])
    seen = []
    for _ in range(3):
        raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4", messages=USER)
        seen.append(
            (
                raw.headers["x-ratelimit-remaining-requests"],
                raw.headers["x-ratelimit-remaining-tokens"],
            )
        )
        now[0] += 1
    assert seen == [("2", "600"), ("1", "200"), ("0", "0")]
    assert raw.headers["x-ratelimit-reset-requests"] == "58s"
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client.chat.completions.create(model="gpt-4", messages=USER)
    err = caught.value
    assert err.response.headers["retry-after"] == "57"
    assert err.response.headers["retry-after-ms"] == "57000"
    assert err.type == "requests"
    assert err.code == "rate_limit_exceeded"
    assert err.message.startswith(
        "Error code: 429 - Rate limit reached for gpt-4 in organization org-mockserver on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 57s."
    )
    now[0] += 57
    reply = openai_client.chat.completions.create(model="gpt-4", messages=USER)
    assert reply.choices[0].message.content == "Within budget."
    assert [e.outcome for e in mockserver.journal] == ["ok"] * 3 + ["rate_limited", "ok"]


@pytest.mark.mockserver(FIXTURES / "server_error_then_success.yaml")
def test_server_error_then_success(mockserver: MockServer) -> None:
    client = openai.OpenAI(base_url=mockserver.base_url, api_key="k", max_retries=1)
    with client.with_options(timeout=5) as c:
        reply = c.chat.completions.create(model="gpt-4", messages=USER)
    assert reply.choices[0].message.content == "Answered on the second attempt."
    assert [e.status for e in mockserver.journal] == [500, 200]


@pytest.mark.mockserver(FIXTURES / "mid_stream_drop.yaml")
def test_mid_stream_drop(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    received = []
    stream = openai_client.chat.completions.create(model="gpt-4", messages=USER, stream=True)
    with pytest.raises(openai.APIConnectionError):  # noqa: PT012 - the error comes mid-iteration
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 4  # the role chunk, then three pieces of text
    assert [c.choices[0].delta.content for c in received[1:]] == ["This", " answer", " never"]
    assert mockserver.last.outcome == "fault:drop"


@pytest.mark.mockserver(FIXTURES / "timeout.yaml")
def test_timeout(mockserver: MockServer) -> None:
    with (
        openai.OpenAI(base_url=mockserver.base_url, api_key="k", max_retries=0, timeout=0.2) as c,
        pytest.raises(openai.APITimeoutError),
    ):
        c.chat.completions.create(model="gpt-4", messages=USER)


@pytest.mark.mockserver(FIXTURES / "refusal.yaml")
def test_refusal(openai_client: openai.OpenAI) -> None:
    reply = openai_client.chat.completions.create(model="gpt-4", messages=USER)
    assert reply.choices[0].message.content is None
    assert reply.choices[0].message.refusal == "I'm sorry, I can't help with that request."
    with openai_client.chat.completions.stream(model="gpt-4", messages=USER) as stream:
        kinds = {e.type for e in stream}
    assert "refusal.done" in kinds


@pytest.mark.mockserver(FIXTURES / "quirks.yaml")
def test_quirks(mockserver: MockServer) -> None:
    full = "One two three four five six seven eight nine ten."
    body = {"model": "gpt-4", "messages": USER}
    cases = [
        ({"temperature": -13, "top_p": 2}, full, "temperature=0, top_p=1"),
        ({"stop": "three"}, full, "stop=ignored"),
        ({"max_tokens": 1}, full, "max_tokens=ignored"),
        ({"max_completion_tokens": 5}, "One two three four five", None),
    ]
    with httpx.Client(headers={"Authorization": "Bearer k"}) as http:
        for params, text, adjusted in cases:
            r = http.post(f"{mockserver.base_url}/chat/completions", json={**body, **params})
            assert r.status_code == 200
            assert r.json()["choices"][0]["message"]["content"] == text
            assert r.headers.get("x-mock-adjusted") == adjusted


def test_every_fixture_is_tested() -> None:
    """Each file is served by a test here: by the plugin's marker, or by its own server
    where it needs other options (prompt caching)."""
    tested = set(re.findall(r'FIXTURES / "(\w+\.yaml)"', Path(__file__).read_text()))
    assert tested == {p.name for p in FIXTURES.glob("*.yaml")}


@pytest.mark.mockserver(FIXTURES / "retrieval_then_answer.yaml")
def test_retrieval_then_answer(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    docs = [
        "Paris weather: sunny, 21 degrees, light wind.",
        "Beef stew: brown the meat, add carrots, simmer for two hours.",
        "To speed up a SQL query, add an index on the filtered column.",
    ]
    question = "What is the weather like in Paris?"
    result = openai_client.embeddings.create(
        model="text-embedding-3-small", input=[question, *docs], encoding_format="float"
    )
    query, *vectors = [d.embedding for d in result.data]
    best = max(
        range(len(docs)), key=lambda i: sum(a * b for a, b in zip(query, vectors[i], strict=True))
    )
    reply = openai_client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": docs[best]}, {"role": "user", "content": question}],
    )
    assert reply.choices[0].message.content == f"From the forecast: {docs[0]}"
    assert [e.api for e in mockserver.journal] == ["embeddings", "chat"]


@pytest.mark.mockserver(FIXTURES / "claude_tool_round_trip.yaml")
def test_claude_tool_round_trip(anthropic_client: Any) -> None:
    tools = [{"name": "get_weather", "description": "Weather in a city.",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]  # fmt: skip
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    first = anthropic_client.messages.create(
        model="claude-x", max_tokens=200, messages=ask, tools=tools
    )
    thinking, call = first.content
    assert thinking.type == "thinking"
    assert (call.type, call.name, call.input) == ("tool_use", "get_weather", {"city": "Paris"})
    history = [
        *ask,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
        },
    ]
    final = anthropic_client.messages.create(
        model="claude-x", max_tokens=200, messages=history, tools=tools
    )
    assert final.content[0].text == "It is sunny in Paris."


def test_prompt_caching_cost() -> None:
    """An app's cost function, checked against what the cache reports (fixture's comment)."""
    from mockserver import Options

    price, cached_price = 2.50 / 1e6, 1.25 / 1e6  # dollars per prompt token, fresh and cached

    def cost(usage: Any) -> float:
        cached = usage.prompt_tokens_details.cached_tokens
        return float((usage.prompt_tokens - cached) * price + cached * cached_price)

    contract = " ".join(["The tenant shall pay the rent on the first day of each month."] * 120)
    messages = [{"role": "system", "content": contract}, {"role": "user", "content": "Summarize."}]
    options = Options(speed=0, prompt_cache=True)
    with MockServer([FIXTURES / "prompt_caching_cost.yaml"], options=options) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-app", max_retries=0)
        first = client.chat.completions.create(model="gpt-4o", messages=messages).usage
        second = client.chat.completions.create(model="gpt-4o", messages=messages).usage
        client.close()
    assert first is not None
    assert second is not None
    assert first.prompt_tokens_details.cached_tokens == 0
    hit = second.prompt_tokens_details.cached_tokens or 0
    assert hit >= 1024
    assert cost(first) - cost(second) == pytest.approx(hit * (price - cached_price))


def _make_thumbnail(client: openai.OpenAI, prompt: str) -> bytes:
    """The app's thumbnail: one low-quality WebP, decoded from base64 as the relay's example."""
    import base64

    result = client.images.generate(
        model="gpt-image-2", prompt=prompt, size="1024x1024", quality="low", output_format="webp"
    )
    assert result.data is not None
    assert result.data[0].b64_json is not None
    return base64.b64decode(result.data[0].b64_json)


def _render_video(base: str, prompt: str) -> tuple[list[int], dict[str, Any]]:
    """The app's video job: submit, then poll (no waiting here) until done or failed."""
    headers = {"AIKey": "sk-relay"}
    body = {"model": "doubao-seedance-2-0-fast", "content": [{"type": "text", "text": prompt}],
            "resolution": "720p", "ratio": "16:9", "duration": 5}  # fmt: skip
    task_id = httpx.post(f"{base}/ai/seedance/videos", json=body, headers=headers).json()["result"][
        "task_id"
    ]
    progress: list[int] = []
    while True:
        reply = httpx.get(f"{base}/ai/seedance/result", params={"task_id": task_id},
                          headers=headers).json()  # fmt: skip
        if reply["code"] != 0 or reply["result"]["status"] != 0:
            return progress, reply
        progress.append(reply["result"]["progress"])


@pytest.mark.mockserver(FIXTURES / "thumbnail_and_video_job.yaml")
def test_thumbnail_and_video_job(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    import io

    from PIL import Image

    thumbnail = Image.open(io.BytesIO(_make_thumbnail(openai_client, "a sunset over the sea")))
    assert (thumbnail.format, thumbnail.size) == ("WEBP", (1024, 1024))
    progress, done = _render_video(mockserver.url, "a sunset over the sea, slow pan")
    assert progress == [0, 40, 80]
    video = httpx.get(done["result"]["videoUrl"])
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    progress, failed = _render_video(mockserver.url, "something forbidden")
    assert progress == [0]
    assert (failed["code"], failed["info"]) == (4003, "The prompt violates the content policy.")
    submits = [e.scenario for e in mockserver.journal if e.method == "POST"]
    assert submits == ["thumbnail", "video job", "video job refused"]
    polls = [e.reply and e.reply["status"] for e in mockserver.journal if e.method == "GET"]
    assert polls == ["queued", "running", "running", "succeeded", "queued", "failed"]


@pytest.mark.mockserver(FIXTURES / "same_conversation.yaml")
def test_same_conversation(
    mockserver: MockServer, openai_client: openai.OpenAI, anthropic_client: Any, gemini_client: Any
) -> None:
    """The same answers on chat, messages and gemini, from one scenario file."""
    from google.genai import types

    ask = "What's the weather in Paris?"
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    said: dict[str, tuple[Any, ...]] = {}

    chat_tool = {"type": "function", "function": {"name": "get_weather", "parameters": schema}}
    history: list[Any] = [{"role": "user", "content": ask}]
    first = openai_client.chat.completions.create(
        model="gpt-4o", messages=history, tools=[chat_tool]
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    history += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    final = openai_client.chat.completions.create(
        model="gpt-4o", messages=history, tools=[chat_tool]
    )
    said["chat"] = (call.function.name, json.loads(call.function.arguments),
                    final.choices[0].message.content)  # fmt: skip

    claude_tool = {"name": "get_weather", "input_schema": schema}
    turns: list[Any] = [{"role": "user", "content": ask}]
    first_c = anthropic_client.messages.create(
        model="claude-x", max_tokens=200, messages=turns, tools=[claude_tool]
    )
    use = next(b for b in first_c.content if b.type == "tool_use")
    turns += [
        {
            "role": "assistant",
            "content": [b.model_dump(exclude_none=True) for b in first_c.content],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
        },
    ]
    final_c = anthropic_client.messages.create(
        model="claude-x", max_tokens=200, messages=turns, tools=[claude_tool]
    )
    said["messages"] = (use.name, use.input, final_c.content[0].text)

    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[
            types.FunctionDeclaration(name="get_weather", parameters_json_schema=schema)])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )  # fmt: skip
    contents: list[Any] = [types.Content(role="user", parts=[types.Part(text=ask)])]
    first_g = gemini_client.models.generate_content(
        model="gemini-2.5-flash", contents=contents, config=config
    )
    fn = first_g.function_calls[0]
    contents += [
        first_g.candidates[0].content,
        types.Content(role="user", parts=[
            types.Part.from_function_response(name=fn.name, response={"result": "sunny"})]),
    ]  # fmt: skip
    final_g = gemini_client.models.generate_content(
        model="gemini-2.5-flash", contents=contents, config=config
    )
    said["gemini"] = (fn.name, fn.args, final_g.text)

    expected = ("get_weather", {"city": "Paris"}, "It is sunny in Paris.")
    assert said == {"chat": expected, "messages": expected, "gemini": expected}
    assert [e.api for e in mockserver.journal] == ["chat"] * 2 + ["messages"] * 2 + ["gemini"] * 2
