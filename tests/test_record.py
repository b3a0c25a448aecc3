"""Recording: the openai SDK talks to a recorder in front of a second mockserver (the upstream,
scripted, on another port); the upstream is stopped, the recordings are served alone, and the
same requests get the same answers. Everything runs on loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from aiohttp import web

from mockserver import MockServer
from mockserver.cli import main
from mockserver.core.errors import ScenarioError
from mockserver.core.profiles import OPENAI
from mockserver.protocols.capture import Event
from mockserver.protocols.chat import Chat, parse_chat
from mockserver.protocols.embeddings import embeddings_body
from mockserver.protocols.messages import messages_body, messages_stream
from mockserver.protocols.responses import Responses
from mockserver.recording.record import Recorder, _Exchange
from mockserver.scenarios.fingerprint import REDACTED, Redactor, request_digest
from mockserver.scenarios.loader import load_paths, load_text
from mockserver.state.live import Options

KEY = "sk-live-7f3c9a1b2d4e6f8091a2b3c4"
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {}}}

UPSTREAM: list[dict[str, Any]] = [
    {
        "name": "reasoned",
        "match": {"last_user": {"contains": "weather"}},
        "reply": {
            "reasoning": "The user wants the weather.",
            "content": "Sunny in Paris,\n21 degrees.",
            "usage": {
                "prompt_tokens": 17,
                "completion_tokens": 12,
                "reasoning_tokens": 5,
                "cached_tokens": 4,
                "cache_write_tokens": 2,
            },
            "model": "gpt-4o-2024-08-06",
        },
    },
    {
        "name": "tools",
        "match": {"tools": ["get_weather"]},
        "reply": {
            "tool_calls": [
                {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Paris"}'},
                {"id": "call_b", "name": "get_time", "arguments": '{"tz":"Europe/Paris"}'},
            ]
        },
    },
    {
        "name": "refusal",
        "match": {"last_user": {"contains": "forbidden"}},
        "reply": {"content": None, "refusal": "I can't help with that."},
    },
    {"name": "echo", "priority": -1, "reply": {"content": "You said: {{ last_user }}"}},
]


def recorder(
    upstream: MockServer, out: Path, scenarios: list[Any] | None = None, **kw: Any
) -> MockServer:
    rec = Recorder(upstream=upstream.base_url, out=out, forward_all=scenarios is None, **kw)
    return MockServer(scenarios or [], options=Options(recorder=rec, speed=0))


_CLIENTS: list[openai.OpenAI] = []


def client(server: MockServer, retries: int = 0) -> openai.OpenAI:
    """An SDK client with the test's key; closed when the test ends."""
    api = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=retries)
    _CLIENTS.append(api)
    return api


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def files(out: Path) -> list[Path]:
    return sorted(out.glob("*.yaml"))


def chat_view(reply: Any) -> dict[str, Any]:
    """A completion without what differs per request (id, created, fingerprint)."""
    data: dict[str, Any] = reply.model_dump()
    for key in ("id", "created", "system_fingerprint"):
        data.pop(key)
    return data


def stream_view(stream: Any) -> dict[str, Any]:
    """A chat stream put together: texts, tool calls, finish reason, usage, model."""
    out: dict[str, Any] = {"content": "", "reasoning": "", "refusal": "", "calls": {}}
    for chunk in stream:
        out["model"] = chunk.model
        if chunk.usage is not None:
            out["usage"] = chunk.usage.model_dump()
        for choice in chunk.choices:
            delta = choice.delta
            out["content"] += delta.content or ""
            out["reasoning"] += (delta.model_extra or {}).get("reasoning_content") or ""
            out["refusal"] += delta.refusal or ""
            for call in delta.tool_calls or []:
                slot = out["calls"].setdefault(call.index, {"id": None, "name": "", "args": ""})
                slot["id"] = slot["id"] or call.id
                if call.function is not None:
                    slot["name"] += call.function.name or ""
                    slot["args"] += call.function.arguments or ""
            if choice.finish_reason:
                out["finish_reason"] = choice.finish_reason
    return out


def responses_view(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = response.model_dump()
    data.pop("id")
    data.pop("created_at")
    for item in data["output"]:
        item.pop("id", None)
    return data


Exchange = tuple[str, dict[str, Any]]

CHAT: list[dict[str, Any]] = [
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "How is the weather?"}]},
    {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "How is the weather?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    },
    {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Weather and time in Paris, please"}],
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "stream": True,
    },
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "Something forbidden"}]},
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me a joke"}]},
]
RESPONSES: list[dict[str, Any]] = [
    {"model": "gpt-4o", "input": "How is the weather?", "instructions": "Be brief."},
    {
        "model": "gpt-4o",
        "input": "Weather in Paris?",
        "tools": [{"type": "function", "name": "get_weather", "parameters": {}}],
    },
]


def run_all(api: openai.OpenAI) -> list[Any]:
    """Every request of the suite, each answer reduced to what must replay the same."""
    answers: list[Any] = []
    for body in CHAT:
        reply = api.chat.completions.create(**body)
        answers.append(stream_view(reply) if body.get("stream") else chat_view(reply))
    for body in RESPONSES:
        answers.append(responses_view(api.responses.create(**body)))
        events = list(api.responses.create(**body, stream=True))
        assert events[-1].type == "response.completed"
        answers.append(responses_view(events[-1].response))
    return answers


def test_record_then_replay_offline(tmp_path: Path) -> None:
    out = tmp_path / "recorded"
    with MockServer(UPSTREAM, options=Options(speed=0)) as upstream:
        with recorder(upstream, out) as rec:
            recorded = run_all(client(rec))
            assert [e.outcome for e in rec.journal] == ["recorded"] * 9
        assert len(upstream.journal) == 9  # every request reached the upstream
    assert len(files(out)) == 9
    assert load_paths([out])  # `mockserver validate` accepts them
    assert main(["validate", str(out)]) == 0
    with MockServer([out], options=Options(speed=0)) as replay:  # the upstream is gone
        replayed = run_all(client(replay))
        assert not replay.unmatched
        assert all((e.scenario or "").startswith(e.api) for e in replay.journal)
    assert replayed == recorded
    # Spot checks that the comparison compared something.
    assert (
        recorded[0]["choices"][0]["message"]["reasoning_content"] == "The user wants the weather."
    )
    assert recorded[0]["usage"]["prompt_tokens_details"]["cached_tokens"] == 4
    assert recorded[1]["content"] == "Sunny in Paris,\n21 degrees."
    assert recorded[1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 5
    assert recorded[2]["calls"][1] == {
        "id": "call_b",
        "name": "get_time",
        "args": '{"tz":"Europe/Paris"}',
    }
    assert recorded[2]["finish_reason"] == "tool_calls"
    assert recorded[3]["choices"][0]["message"]["refusal"] == "I can't help with that."
    assert recorded[4]["choices"][0]["message"]["content"] == "You said: Tell me a joke"
    assert recorded[4]["model"] == "gpt-4o-mini"
    assert recorded[5]["usage"]["input_tokens_details"]["cache_write_tokens"] == 2
    assert recorded[7]["output"][0]["type"] == "function_call"


def test_recorded_file_is_readable(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    with (
        MockServer(UPSTREAM, options=Options(speed=0)) as upstream,
        recorder(upstream, out) as rec,
    ):
        client(rec).chat.completions.create(**CHAT[1])
    (path,) = files(out)
    assert path.name.startswith("chat-how-is-the-weather-")
    text = path.read_text()
    data = yaml.safe_load(text)
    (scenario,) = data["scenarios"]
    assert scenario["priority"] < 0  # hand-written scenarios win
    assert scenario["match"]["api"] == "chat"
    assert scenario["match"]["model"] == "gpt-4o"
    assert scenario["match"]["last_user"] == "How is the weather?"
    assert len(scenario["match"]["recorded"]["digest"]) == 32
    assert scenario["reply"]["model"] == "gpt-4o-2024-08-06"
    # Chat's usage object has no cache-write figure, so that one cannot be recorded from chat.
    expected = {k: v for k, v in UPSTREAM[0]["reply"]["usage"].items() if k != "cache_write_tokens"}
    assert scenario["reply"]["usage"] == expected
    chunks = scenario["cadence"]["chunks"]
    assert "".join(c.get("reasoning", "") for c in chunks) == "The user wants the weather."
    assert "".join(c.get("text", "") for c in chunks) == "Sunny in Paris,\n21 degrees."
    assert "content: |-\n      Sunny in Paris,\n      21 degrees." in text  # a block, not "\n"
    assert "\n    - {reasoning: The, delay: " in text  # one line per piece


def test_replay_keeps_the_rhythm(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    slow = {
        "reply": {"reasoning": "Thinking hard.", "content": "One two three four five."},
        "cadence": {"first_delay": 0.12, "delay": 0.04, "chunk": "word"},
    }
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "count"}], "stream": True}
    with MockServer([slow]) as upstream, recorder(upstream, out) as rec:
        assert stream_view(client(rec).chat.completions.create(**body))["content"]
    (path,) = files(out)
    chunks = yaml.safe_load(path.read_text())["scenarios"][0]["cadence"]["chunks"]
    assert len(chunks) == 7
    # Lower bounds are exact (a piece cannot arrive before it was sent); the upper ones leave
    # room for a loaded machine, where threads wait for the CPU (0.12 s and 0.04 s scripted).
    assert 0.1 <= chunks[0]["delay"] <= 0.6  # the time to the first piece
    assert all(0.01 <= c["delay"] <= 0.3 for c in chunks[1:])
    schedule = [sum(c["delay"] for c in chunks[: i + 1]) for i in range(len(chunks))]

    with MockServer([out], options=Options(speed=1)) as replay:
        api = client(replay)
        list(api.chat.completions.create(**body))  # warm the client and the connection
        start = time.perf_counter()  # a chunk cannot come before its delay has passed since
        stream = api.chat.completions.create(**body)
        arrivals = []
        for chunk in stream:
            delta = chunk.choices[0].delta if chunk.choices else None
            if delta and (delta.content or (delta.model_extra or {}).get("reasoning_content")):
                arrivals.append(time.perf_counter() - start)
        late = [round(got - due, 4) for got, due in zip(arrivals, schedule, strict=True)]
        assert all(0 <= x <= 0.25 for x in late), late  # never early; late only when loaded

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with MockServer([out], options=Options(speed=0, sleep=sleep)) as replay:
        assert stream_view(client(replay).chat.completions.create(**body))["content"]
        assert replay.last.extra["delays"] == [0.0, *[c["delay"] for c in chunks], 0.0]
    assert slept == []  # --speed 0: the recorded rhythm is kept in the file, not waited for


def test_record_on_miss(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    local = {"name": "local", "match": {"last_user": "hi"}, "reply": {"content": "Local hello."}}
    ask = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Tell me a joke"}]}
    with (
        MockServer(UPSTREAM, options=Options(speed=0)) as upstream,
        recorder(upstream, out, scenarios=[local]) as rec,
    ):
        api = client(rec)
        hello = api.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
        assert hello.choices[0].message.content == "Local hello."
        first = api.chat.completions.create(**ask)
        again = api.chat.completions.create(**ask)  # answered from its recording
        assert first.choices[0].message.content == again.choices[0].message.content
        assert again.choices[0].message.content == "You said: Tell me a joke"
        assert len(upstream.journal) == 1
        assert [e.outcome for e in rec.journal] == ["ok", "recorded", "ok"]
        assert rec.journal[2].scenario == rec.journal[1].scenario
        recording = Path(rec.journal[1].extra["recording"])
        assert rec.journal[1].reply is not None
        assert rec.journal[1].reply["content"] == "You said: Tell me a joke"
    assert files(out) == [recording]


def test_serve_record_missing_flags() -> None:
    for argv, message in [
        (["--record-missing"], "needs --upstream URL and --out DIR"),
        (["--upstream", "http://127.0.0.1:1/v1"], "need --record-missing"),
        (["--record-missing", "--upstream", "ftp://x", "--out", "d"], "http:// or https://"),
        (
            ["--record-missing", "--upstream", "http://h/v1", "--out", "d", "--workers", "2"],
            "use --workers 1",
        ),
        (
            ["--record-missing", "--upstream", "http://h/v1", "--out", "d", "--redact", "("],
            "invalid redaction pattern",
        ),
    ]:
        assert message in _usage_error(["serve", "--port", "0", *argv])
    assert "not loopback" in _usage_error(
        ["record", "--host", "0.0.0.0", "--upstream", "http://h/v1", "--out", "d"]
    )


def _usage_error(argv: list[str]) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return err.getvalue()


def test_digest_tells_requests_apart_and_ignores_volatile_fields() -> None:
    def digest(**body: Any) -> str:
        full = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **body}
        return request_digest(parse_chat(json.dumps(full).encode()))

    base = digest()
    history = [
        {"role": "user", "content": "before"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "hi"},
    ]
    different = [
        digest(model="gpt-4o-mini"),
        digest(messages=history),
        digest(tools=[WEATHER_TOOL]),
        digest(tools=[WEATHER_TOOL], tool_choice="required"),
        digest(response_format={"type": "json_object"}),
        digest(n=2),
        digest(stream=True),
    ]
    assert len({base, *different}) == 1 + len(different)
    volatile = digest(user="u-1", metadata={"a": "b"}, seed=7, stream_options=None, temperature=1)
    assert volatile == base
    # What an app sends back of the assistant's message may carry provider extras.
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    plain = [{"role": "user", "content": "hi"},
             {"role": "assistant", "content": None, "tool_calls": [call]},
             {"role": "tool", "tool_call_id": "call_1", "content": "42"}]  # fmt: skip
    echoed = [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
              {"role": "assistant", "content": None, "refusal": None, "annotations": [],
               "audio": None, "reasoning_content": "hm", "tool_calls": [call]},
              {"role": "tool", "tool_call_id": "call_1", "content": "42"}]  # fmt: skip
    assert digest(messages=plain) == digest(messages=echoed)
    other_call = [*plain[:1], {**plain[1], "tool_calls": [{**call, "id": "call_2"}]}, plain[2]]
    assert digest(messages=plain) != digest(messages=other_call)
    fields = ("model", "messages", "temperature")
    hot = parse_chat(
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 1}'
    )
    cold = parse_chat(
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0}'
    )
    assert request_digest(hot, fields) != request_digest(cold, fields)
    assert request_digest(hot) == request_digest(cold)


def test_same_request_different_answers_become_steps(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    upstream_scenarios = [
        {"steps": [{"reply": {"content": "First."}}, {"reply": {"content": "Second."}}]}
    ]
    ask = {"model": "gpt-4o", "messages": [{"role": "user", "content": "again"}]}
    with (
        MockServer(upstream_scenarios, options=Options(speed=0)) as upstream,
        recorder(upstream, out) as rec,
    ):
        api = client(rec)
        said = [api.chat.completions.create(**ask).choices[0].message.content for _ in range(3)]
    assert said == ["First.", "Second.", "Second."]
    (path,) = files(out)
    steps = yaml.safe_load(path.read_text())["scenarios"][0]["steps"]
    assert [s["reply"]["content"] for s in steps] == ["First.", "Second."]
    with MockServer([out], options=Options(speed=0)) as replay:
        api = client(replay)
        assert [
            api.chat.completions.create(**ask).choices[0].message.content for _ in range(3)
        ] == said


def test_errors_are_recorded(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    upstream_scenarios = [
        {
            "name": "limited",
            "match": {"last_user": "busy"},
            "steps": [
                {
                    "error": {"status": 429, "message": "Slow down."},
                    "headers": {
                        "retry-after-ms": "5",
                        "x-ratelimit-remaining-requests": "0",
                        "set-cookie": "session=abc",
                        "x-secret-thing": "s3",
                    },
                },
                {"reply": {"content": "OK now."}},
            ],
        },
        {
            "match": {"last_user": "html"},
            "raw": {"status": 502, "body": "<html>Bad gateway</html>", "content_type": "text/html"},
        },
        {
            "match": {"last_user": "drop"},
            "reply": {"content": "one two three four five"},
            "cadence": {"chunk": "word"},
            "fault": {"kind": "drop", "after_chunks": 2},
        },
        {
            "match": {"last_user": "broken"},
            "reply": {"content": "one two three"},
            "cadence": {"chunk": "word"},
            "fault": {
                "kind": "stream_error",
                "after_chunks": 1,
                "error": {"status": 500, "message": "Model overloaded."},
            },
        },
        {
            "match": {"last_user": "garbled"},
            "reply": {"content": "one two three"},
            "cadence": {"chunk": "word"},
            "fault": {"kind": "malformed", "after_chunks": 2},
        },
    ]

    def ask(text: str, **kw: Any) -> dict[str, Any]:
        return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **kw}

    def run(server: MockServer) -> list[Any]:
        api = client(server, retries=1)
        seen: list[Any] = [api.chat.completions.create(**ask("busy")).choices[0].message.content]
        with pytest.raises(openai.InternalServerError) as html:
            client(server).chat.completions.create(**ask("html"))
        seen.append((html.value.status_code, html.value.response.text))
        pieces: list[str] = []

        def read_dropped() -> None:
            for chunk in client(server).chat.completions.create(**ask("drop", stream=True)):
                pieces.append(chunk.choices[0].delta.content or "" if chunk.choices else "")

        with pytest.raises(openai.APIConnectionError):
            read_dropped()
        seen.append("".join(pieces))
        with pytest.raises(openai.APIError) as broken:
            list(client(server).chat.completions.create(**ask("broken", stream=True)))
        seen.append(broken.value.message)
        garbled: list[str] = []

        def read_garbled() -> None:
            for chunk in client(server).chat.completions.create(**ask("garbled", stream=True)):
                garbled.append(chunk.choices[0].delta.content or "" if chunk.choices else "")

        with pytest.raises(ValueError, match=r"Expecting|Unterminated"):
            read_garbled()
        seen.append("".join(garbled))
        return seen

    with (
        MockServer(upstream_scenarios, options=Options(speed=0)) as upstream,
        recorder(upstream, out) as rec,
    ):
        recorded = run(rec)
        first = rec.journal[0]
    assert first.status == 429
    assert recorded[0] == "OK now."
    assert recorded[1] == (502, "<html>Bad gateway</html>")
    with MockServer([out], options=Options(speed=0)) as replay:
        assert run(replay) == recorded
        assert [e.status for e in replay.journal][:3] == [429, 200, 502]
    by_name = {
        p.name.split("-")[1]: yaml.safe_load(p.read_text())["scenarios"][0] for p in files(out)
    }
    busy = by_name["busy"]["steps"]
    assert busy[0]["error"] == {
        "status": 429,
        "message": "Slow down.",
        "type": "rate_limit_error",
        "code": "rate_limit_exceeded",
    }
    assert busy[0]["headers"]["retry-after-ms"] == "5"
    assert busy[0]["headers"]["x-ratelimit-remaining-requests"] == "0"
    assert busy[0]["headers"]["x-request-id"].startswith("req_")
    assert "set-cookie" not in busy[0]["headers"]
    assert "x-secret-thing" not in busy[0]["headers"]
    assert by_name["html"]["raw"]["content_type"] == "text/html"
    assert by_name["drop"]["fault"] == {"kind": "drop", "after_chunks": 2}
    assert by_name["broken"]["fault"]["kind"] == "stream_error"
    assert by_name["broken"]["fault"]["error"]["message"] == "Model overloaded."
    assert by_name["garbled"]["fault"] == {"kind": "malformed", "after_chunks": 2}
    assert recorded[4] == "one two "  # the pieces before the broken event


def test_no_credential_reaches_a_file_and_redact_works(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    secret = "acct-99887766"
    ask = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": f"The account is {secret}."},
            {"role": "user", "content": f"Why was {secret} charged?"},
        ],
    }
    headers = {
        "OpenAI-Organization": "org-private42",
        "X-Api-Key": "xk-private43",
        "Cookie": "session=private44",
    }
    with (
        MockServer(UPSTREAM, options=Options(speed=0)) as upstream,
        recorder(upstream, out, redact=[r"acct-\d+"]) as rec,
    ):
        api = client(rec)
        first = api.chat.completions.create(**ask, extra_headers=headers)
        assert first.choices[0].message.content == f"You said: Why was {secret} charged?"
        streamed = stream_view(api.chat.completions.create(**ask, stream=True))
        assert secret in streamed["content"]  # the client gets the real answer
    written = "".join(p.read_text() for p in files(out))
    for leaked in (KEY, "Bearer", secret, "org-private42", "xk-private43", "private44"):
        assert leaked not in written
    assert REDACTED in written
    for path in files(out):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    # A plain replay applies the file's patterns to incoming requests: the unredacted one matches.
    with MockServer([out], options=Options(speed=0)) as replay:
        api = client(replay)
        again = api.chat.completions.create(**ask)
        assert again.choices[0].message.content == f"You said: Why was {REDACTED} charged?"
        other = json.loads(json.dumps(ask).replace(secret, "acct-11111111"))
        assert api.chat.completions.create(**other).choices[0].message.content  # same shape
        with pytest.raises(openai.NotFoundError):
            api.chat.completions.create(**json.loads(json.dumps(ask).replace("Why", "How")))


def test_unreachable_upstream_is_502_and_slow_one_504(tmp_path: Path) -> None:
    with MockServer([]) as gone:
        url = gone.base_url
    rec = Recorder(upstream=url, out=tmp_path / "rec", timeout=0.3)
    with MockServer([], options=Options(recorder=rec)) as server:
        with pytest.raises(openai.APIStatusError) as err:
            client(server).chat.completions.create(**CHAT[0])
        assert err.value.status_code == 502
        assert url in err.value.message
        assert err.value.code == "upstream_unreachable"
    slow = [{"delay": 5, "reply": {"content": "late"}}]
    with MockServer(slow) as upstream, recorder(upstream, tmp_path / "rec", timeout=0.3) as server:
        started = time.perf_counter()
        with pytest.raises(openai.APIStatusError) as err:
            client(server).chat.completions.create(**CHAT[0])
        assert err.value.status_code == 504
        assert err.value.code == "upstream_timeout"
        assert time.perf_counter() - started < 3
    assert not (tmp_path / "rec").exists()


def test_client_leaving_mid_stream_saves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    slow = [{"reply": {"content": "a b c d e f g h"}, "cadence": {"chunk": "word", "delay": 0.05}}]
    body = {**CHAT[0], "stream": True}
    with MockServer(slow) as upstream, recorder(upstream, out) as rec:
        with httpx.stream(
            "POST",
            f"{rec.base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
        ) as reply:
            next(reply.iter_raw())
        for _ in range(100):
            if rec.journal:
                break
            time.sleep(0.02)
        assert rec.journal[0].outcome == "client_disconnected"
    assert not out.exists() or not files(out)


@contextlib.contextmanager
def raw_upstream(handler: Any) -> Iterator[str]:
    """A bare aiohttp server answering POST /v1/chat/completions with ``handler``, for upstream
    behaviour a mockserver cannot script; yields its base URL."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_redirects_are_not_followed(tmp_path: Path) -> None:
    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://example.invalid/v1/chat/completions")

    with raw_upstream(moved) as url:
        rec = Recorder(upstream=url, out=tmp_path / "rec")
        with MockServer([], options=Options(recorder=rec)) as server:
            reply = httpx.post(
                f"{server.base_url}/chat/completions",
                json=CHAT[0],
                headers={"Authorization": f"Bearer {KEY}"},
            )
        assert reply.status_code == 302
        assert not (tmp_path / "rec").exists()


def test_a_client_closing_on_done_keeps_the_recording(tmp_path: Path) -> None:
    """The SDK stops reading at [DONE]; the upstream may close its stream later."""
    release = threading.Event()

    async def lingering(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in ("Hel", "lo"):
            chunk = {"model": "m", "choices": [{"index": 0, "delta": {"content": piece}}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        # The upstream keeps its connection open a while after [DONE].
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        return response

    out = tmp_path / "rec"
    try:
        with raw_upstream(lingering) as url:
            rec = Recorder(upstream=url, out=out)
            with MockServer([], options=Options(recorder=rec)) as server:
                api = client(server)
                said = stream_view(api.chat.completions.create(**{**CHAT[0], "stream": True}))
                for _ in range(200):
                    if server.journal:
                        break
                    time.sleep(0.01)
                assert said["content"] == "Hello"
                assert server.journal[0].outcome == "recorded"
                release.set()
    finally:
        release.set()
    (path,) = files(out)
    assert yaml.safe_load(path.read_text())["scenarios"][0]["reply"]["content"] == "Hello"


# --- readers for protocols other engineers are adding: unit tests on captured JSON ----------

ANTHROPIC_MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "Need the weather tool.", "signature": "sig"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 40,
        "output_tokens": 25,
        "cache_read_input_tokens": 8,
        "cache_creation_input_tokens": 3,
    },
}


def _sse(*events: tuple[str, dict[str, Any]]) -> list[Event]:
    return [Event(0.01 * i, name, json.dumps(data)) for i, (name, data) in enumerate(events, 1)]


def test_messages_reader_json_and_stream() -> None:
    reply = messages_body(ANTHROPIC_MESSAGE).reply()
    assert reply == {
        "content": "Let me check.",
        "reasoning": "Need the weather tool.",
        "tool_calls": [{"id": "toolu_01", "name": "get_weather", "arguments": '{"city":"Paris"}'}],
        "finish_reason": "tool_calls",
        "usage": {
            "prompt_tokens": 40,
            "completion_tokens": 25,
            "cached_tokens": 8,
            "cache_write_tokens": 3,
        },
        "model": "claude-sonnet-4-5-20250929",
    }
    start = {
        **ANTHROPIC_MESSAGE,
        "content": [],
        "stop_reason": None,
        "usage": {
            "input_tokens": 40,
            "output_tokens": 1,
            "cache_read_input_tokens": 8,
            "cache_creation_input_tokens": 3,
        },
    }
    events = _sse(
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Need the "},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "weather tool."},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": "Let me check."},
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'},
            },
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 25},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    )
    captured = messages_stream(events)
    assert captured.complete
    # A body's ``input`` object is written compact; a stream's arguments keep the spelling of
    # its deltas, which the recorded pieces must spell again.
    spelled = [{"id": "toolu_01", "name": "get_weather", "arguments": '{"city": "Paris"}'}]
    assert captured.reply() == {**reply, "tool_calls": spelled}
    assert [(p.kind, p.text) for p in captured.pieces] == [
        ("reasoning", "Need the "),
        ("reasoning", "weather tool."),
        ("text", "Let me check."),
        ("arguments", '{"city": '),
        ("arguments", '"Paris"}'),
    ]
    cut = messages_stream(events[:7])
    assert not cut.complete
    assert cut.choices[0]["content"] == "Let me check."


def test_embeddings_reader() -> None:
    body = {
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]},
            {"object": "embedding", "index": 0, "embedding": [0.1, -0.2]},
        ],
        "usage": {"prompt_tokens": 6, "total_tokens": 6},
    }
    assert embeddings_body(body).reply() == {
        "embeddings": [[0.1, -0.2], [0.3, 0.4]],
        "usage": {"prompt_tokens": 6},
        "model": "text-embedding-3-small",
    }


def test_explicit_pieces_must_spell_their_texts() -> None:
    good = """
- reply:
    reasoning: "ab"
    tool_calls: [{name: f, arguments: '{"x": 1}'}]
  cadence:
    chunks:
      - {reasoning: a, delay: 0.1}
      - {reasoning: b}
      - {arguments: '{"x":', delay: 0.2}
      - {arguments: ' 1}', call: 0}
"""
    assert load_text(good)
    with pytest.raises(Exception, match="the reasoning chunks spell 'a'"):
        load_text(good.replace("      - {reasoning: b}\n", ""))
    with pytest.raises(Exception, match="a chunk has one of"):
        load_text(good.replace("{reasoning: b}", "{reasoning: b, text: c}"))
    with pytest.raises(Exception, match="no such call"):
        load_text(good.replace("call: 0", "call: 1"))


def test_redaction_pattern_for_a_readable_condition() -> None:
    redactor = Redactor([r"sk-\w+"])
    pattern = redactor.pattern_for("use sk-abc please")
    assert pattern is not None
    assert "abc" not in pattern
    import re

    assert re.search(pattern, "use sk-zzz please")
    assert not re.search(pattern, "use it please")
    with pytest.raises(ValueError, match="matches the empty string"):
        Redactor(["x*"])


def _spawn(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert " on http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.stderr else "")
    return proc, line.split()[3]


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    return err


def test_cli_record_and_serve_record_missing(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    local = tmp_path / "local.yaml"
    local.write_text("scenarios:\n  - match: {last_user: hi}\n    reply: {content: Local.}\n")
    with MockServer(UPSTREAM, options=Options(speed=0)) as upstream:
        proc, url = _spawn("record", "--upstream", upstream.base_url, "--out", str(out))
        try:
            with openai.OpenAI(base_url=url, api_key=KEY, max_retries=0) as api:
                api.chat.completions.create(**CHAT[4])
                assert httpx.get(f"{url.removesuffix('/v1')}/_mock/journal").status_code == 200
        finally:
            err = _stop(proc)
        assert "recorded" in err
        assert len(upstream.journal) == 1  # /_mock/ stayed local
        proc, url = _spawn(
            "serve", "--scenarios", str(local), "--record-missing",
            "--upstream", upstream.base_url, "--out", str(out), "--speed", "0",
        )  # fmt: skip
        try:
            with openai.OpenAI(base_url=url, api_key=KEY, max_retries=0) as api:
                said = [
                    api.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": text}]
                    )
                    .choices[0]
                    .message.content
                    for text in ("hi", "Fresh question", "Fresh question")
                ]
        finally:
            _stop(proc)
        assert said == ["Local.", "You said: Fresh question", "You said: Fresh question"]
        assert len(upstream.journal) == 2
    assert len(files(out)) == 2


def test_an_upstream_echoing_the_key_does_not_leak_it(tmp_path: Path) -> None:
    rec = Recorder(upstream="http://127.0.0.1:9/v1", out=tmp_path)
    req = parse_chat(json.dumps(CHAT[0]).encode(), {"Authorization": f"Bearer {KEY}"})
    error = {"error": {"message": f"Key {KEY} is revoked.", "type": "invalid_request_error"}}
    plain = _Exchange(401, {}, "application/json", json.dumps(error).encode(), [], 0.01)
    assert rec.record(Chat(), req, plain)
    chunks = [KEY[:5], KEY[5:12], KEY[12:], " is yours."]
    events = [
        Event(
            0.01 * i,
            None,
            json.dumps({"model": "m", "choices": [{"index": 0, "delta": {"content": c}}]}),
        )
        for i, c in enumerate(chunks)
    ] + [Event(0.1, None, "[DONE]")]
    streamed = _Exchange(200, {}, "text/event-stream", b"", events, 0.1)
    req = parse_chat(
        json.dumps({**CHAT[0], "stream": True}).encode(), {"Authorization": f"Bearer {KEY}"}
    )
    assert rec.record(Chat(), req, streamed)
    written = "".join(p.read_text() for p in files(tmp_path))
    assert KEY not in written
    assert KEY[5:12] not in written  # a piece of it, streamed apart, is merged and redacted
    assert f"Key {REDACTED} is revoked." in written
    assert load_paths([tmp_path])


def test_digest_fields_and_hot_reload(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    out.mkdir()
    watching = Options(speed=0, watch=(str(out),), reload_interval=0.02)
    with (
        MockServer([out], options=watching) as replay,
        MockServer(UPSTREAM, options=Options(speed=0)) as upstream,
        recorder(upstream, out, fields=("model", "messages")) as rec,
    ):
        client(rec).chat.completions.create(**CHAT[4])
        (path,) = files(out)
        spec = yaml.safe_load(path.read_text())["scenarios"][0]["match"]["recorded"]
        assert spec["fields"] == ["model", "messages"]
        assert replay.state.watcher is not None
        for _ in range(200):  # the running server picks the new file up
            if len(replay.state.scenarios):
                break
            time.sleep(0.02)
        streamed = client(replay).chat.completions.create(**CHAT[4], stream=True)
        assert stream_view(streamed)["content"] == "You said: Tell me a joke"  # stream not in it


def test_record_on_miss_retries_past_a_recorded_error(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    limited = [
        {
            "match": {"last_user": "busy"},
            "steps": [
                {"error": {"status": 429}, "headers": {"retry-after-ms": "1"}},
                {"reply": {"content": "OK now."}},
            ],
        }
    ]
    ask = {"model": "gpt-4o", "messages": [{"role": "user", "content": "busy"}]}
    with (
        MockServer(limited, options=Options(speed=0)) as upstream,
        recorder(upstream, out, scenarios=[{"match": {"last_user": "x"}, "reply": {}}]) as rec,
    ):
        api = client(rec, retries=1)
        assert api.chat.completions.create(**ask).choices[0].message.content == "OK now."
        assert api.chat.completions.create(**ask).choices[0].message.content == "OK now."
        assert [e.status for e in upstream.journal] == [429, 200]  # the third stayed local
        assert [(e.status, e.outcome) for e in rec.journal] == [
            (429, "recorded"),
            (200, "recorded"),
            (200, "ok"),
        ]
    (path,) = files(out)
    steps = yaml.safe_load(path.read_text())["scenarios"][0]["steps"]
    assert [next(iter(s)) for s in steps] == ["error", "reply"]


def test_a_recording_replays_verbatim_whatever_the_limits(tmp_path: Path) -> None:
    """The upstream applied max_tokens already; the replay must not cut the recorded answer
    again with the mock's own token counts (here: recorded through the relay profile, which
    ignores max_tokens=1, replayed under the openai profile, which would honour it)."""
    out = tmp_path / "rec"
    ask = {**CHAT[2], "stream": False, "max_tokens": 1}
    with (
        MockServer(UPSTREAM, options=Options(speed=0)) as upstream,
        recorder(upstream, out) as rec,
    ):
        recorded = chat_view(client(rec).chat.completions.create(**ask))
    assert recorded["choices"][0]["message"]["tool_calls"]
    with MockServer([out], options=Options(speed=0, profile=OPENAI)) as replay:
        assert chat_view(client(replay).chat.completions.create(**ask)) == recorded


def test_pieces_that_do_not_spell_their_text_are_left_out(tmp_path: Path) -> None:
    """Two reasoning summary parts: the final object joins them with a blank line, the deltas
    do not; the file must still load (the reasoning is then cut by the chunk setting)."""
    rec = Recorder(upstream="http://127.0.0.1:9/v1", out=tmp_path)
    req = parse_chat(json.dumps(CHAT[0]).encode())
    final = {"model": "o3", "status": "completed", "output": [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "A."},
                                          {"type": "summary_text", "text": "B."}]},
        {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]}]}  # fmt: skip
    events = [
        Event(
            0.1, None, json.dumps({"type": "response.reasoning_summary_text.delta", "delta": "A."})
        ),
        Event(
            0.2, None, json.dumps({"type": "response.reasoning_summary_text.delta", "delta": "B."})
        ),
        Event(0.3, None, json.dumps({"type": "response.output_text.delta", "delta": "Hi"})),
        Event(0.4, None, json.dumps({"type": "response.completed", "response": final})),
    ]
    assert rec.record(Responses(), req, _Exchange(200, {}, "text/event-stream", b"", events, 0.4))
    (scenario,) = load_paths([tmp_path])
    chunks = yaml.safe_load(files(tmp_path)[0].read_text())["scenarios"][0]["cadence"]["chunks"]
    assert chunks == [{"text": "Hi", "delay": 0.3}]
    assert scenario.steps[0].reply is not None
    assert scenario.steps[0].reply.choices[0].reasoning == "A.\n\nB."


def test_responses_conversation_by_previous_response_id(tmp_path: Path) -> None:
    """Turns chained by previous_response_id replay too: the upstream's response ids are not
    the replay's, so a digest covers the turn's own input, not the stored turns before it."""
    out = tmp_path / "rec"
    agent = [
        {"match": {"last_role": "user"}, "reply": {"tool_calls": [
            {"id": "call_w", "name": "get_weather", "arguments": {"city": "Paris"}}]}},
        {"match": {"last_role": "tool"}, "reply": {"content": "It is {{ tool_result }}."}},
    ]  # fmt: skip
    tools = [{"type": "function", "name": "get_weather", "parameters": {}}]

    def converse(server: MockServer) -> list[Any]:
        api = client(server)
        first = api.responses.create(model="gpt-4o", input="Weather in Paris?", tools=tools)
        call = first.output[0]
        assert call.type == "function_call"
        second = api.responses.create(
            model="gpt-4o",
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
            tools=tools,
        )
        return [responses_view(first), responses_view(second)]

    with (
        MockServer(agent, options=Options(speed=0)) as upstream,
        recorder(upstream, out) as rec,
    ):
        recorded = converse(rec)
    assert recorded[1]["output"][0]["content"][0]["text"] == "It is sunny."
    with MockServer([out], options=Options(speed=0)) as replay:
        replayed = converse(replay)
    for turn in (*recorded, *replayed):
        turn.pop("previous_response_id")  # an id: the upstream's, then the replay's
    assert replayed == recorded


def test_the_upstream_url_is_written_without_credentials(tmp_path: Path) -> None:
    rec = Recorder(upstream="https://me:pw-secret@llm.example:8443/v1?key=q-secret", out=tmp_path)
    req = parse_chat(json.dumps(CHAT[0]).encode())
    body = json.dumps({"model": "m", "choices": [{"message": {"content": "ok"}}]}).encode()
    assert rec.record(Chat(), req, _Exchange(200, {}, "application/json", body, [], 0.2))
    text = files(tmp_path)[0].read_text()
    assert "from https://llm.example:8443/v1 on" in text
    assert "secret" not in text


def test_recorded_braces_stay_literal(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    jinja = [{"reply": {"content": "Write {{ user.name }} and {{ model }}.", "templates": False}}]
    with (
        MockServer(jinja, options=Options(speed=0)) as upstream,
        recorder(upstream, out) as rec,
    ):
        said = client(rec).chat.completions.create(**CHAT[0]).choices[0].message.content
    assert said == "Write {{ user.name }} and {{ model }}."
    assert "templates: false" in files(out)[0].read_text()
    with MockServer([out], options=Options(speed=0)) as replay:
        assert client(replay).chat.completions.create(**CHAT[0]).choices[0].message.content == said
    with pytest.raises(ScenarioError, match="unknown placeholder"):
        load_text("- reply: {content: 'Write {{ user.name }}'}")


CLAUDE_UPSTREAM: list[dict[str, Any]] = [
    {"name": "claude-tool", "match": {"api": "messages", "tools": ["get_weather"]},
     "reply": {"reasoning": "I should look it up.",
               "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
               "usage": {"prompt_tokens": 21, "completion_tokens": 9, "cached_tokens": 3}}},
    {"name": "claude-text", "match": {"api": "messages"},
     "reply": {"content": "Bonjour from Claude.", "model": "claude-x-2026"}},
]  # fmt: skip
CLAUDE_TOOLS: list[Any] = [
    {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {}}}}
]


def test_messages_and_embeddings_record_then_replay_offline(tmp_path: Path) -> None:
    """The anthropic SDK (plain and streamed) and embeddings: same answers with the upstream
    gone, vectors included."""
    import anthropic

    def run(server: MockServer) -> list[Any]:
        out: list[Any] = []
        with anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0) as claude:
            ask = [{"role": "user", "content": "Weather in Paris?"}]
            plain = claude.messages.create(model="claude-x", max_tokens=99, messages=ask)
            out.append(plain.model_dump(exclude={"id"}))
            tool = claude.messages.create(
                model="claude-x", max_tokens=99, messages=ask, tools=CLAUDE_TOOLS
            )
            out.append(tool.model_dump(exclude={"id"}))
            with claude.messages.stream(
                model="claude-x", max_tokens=99, messages=ask, tools=CLAUDE_TOOLS
            ) as stream:
                out.append(stream.get_final_message().model_dump(exclude={"id"}))
        vectors = client(server).embeddings.create(
            model="text-embedding-3-small", input=["sunny in Paris", "beef stew"],
            encoding_format="float", dimensions=8,
        )  # fmt: skip
        out.append(vectors.model_dump())
        return out

    out = tmp_path / "recorded"
    with MockServer(CLAUDE_UPSTREAM, options=Options(speed=0)) as upstream:
        with recorder(upstream, out) as rec:
            recorded = run(rec)
            assert [e.outcome for e in rec.journal] == ["recorded"] * 4
        assert [e.api for e in upstream.journal] == ["messages"] * 3 + ["embeddings"]
    assert main(["validate", str(out)]) == 0
    with MockServer([out], options=Options(speed=0)) as replay:
        replayed = run(replay)
        assert not replay.unmatched
        assert [e.api for e in replay.journal] == ["messages"] * 3 + ["embeddings"]
        assert "generated" not in [e.scenario for e in replay.journal]
    assert replayed == recorded
    assert recorded[0]["content"] == [
        {"type": "text", "text": "Bonjour from Claude.", "citations": None}
    ]
    assert recorded[0]["model"] == "claude-x-2026"
    assert [b["type"] for b in recorded[1]["content"]] == ["thinking", "tool_use"]
    assert recorded[1]["usage"]["cache_read_input_tokens"] == 3
    assert len(recorded[3]["data"][0]["embedding"]) == 8
