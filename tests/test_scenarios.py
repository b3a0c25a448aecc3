"""The scenario language, end to end: matching, order, sequences, templates, faults, admin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from mockserver import MockServer, Options, ScenarioError

AUTH = {"Authorization": "Bearer k"}


def ask(client: openai.OpenAI, text: str, **params: Any) -> str:
    reply = client.chat.completions.create(
        model=params.pop("model", "gpt-4"), messages=[{"role": "user", "content": text}], **params
    )
    return reply.choices[0].message.content or ""


def test_priority_then_file_order(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add(
        "scenarios:\n"
        "  - {name: first, match: {last_user: {contains: a}}, reply: {content: first}}\n"
        "  - {name: second, match: {last_user: {contains: a}}, reply: {content: second}}\n"
        "  - {name: urgent, priority: 10, match: {last_user: {contains: b}},"
        " reply: {content: urgent}}\n"
    )
    assert ask(openai_client, "a") == "first"
    assert ask(openai_client, "a b") == "urgent"


def test_conditions(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add(
        {"name": "glob", "match": {"model": "claude-*"}, "reply": {"content": "glob"}},
        {"name": "sys", "match": {"system": {"contains": "pirate"}}, "reply": {"content": "arr"}},
        {"name": "hdr", "match": {"headers": {"x-tenant": "acme"}}, "reply": {"content": "acme"}},
        {"name": "body", "match": {"body": {"metadata.team": "red"}}, "reply": {"content": "red"}},
        {"name": "stream", "match": {"stream": True}, "reply": {"content": "streamed"}},
        {"name": "any", "match": {"any_message": {"regex": "^remember"}},
         "reply": {"content": "remembered"}},
        {"name": "exact", "match": {"last_user": "ping"}, "reply": {"content": "pong"}},
    )  # fmt: skip
    assert ask(openai_client, "x", model="claude-3") == "glob"
    pirate = openai_client.chat.completions.create(
        model="gpt-4",
        messages=[{"role": "system", "content": "You are a pirate."},
                  {"role": "user", "content": "hi"}],
    )  # fmt: skip
    assert pirate.choices[0].message.content == "arr"
    assert ask(openai_client, "x", extra_headers={"x-tenant": "acme"}) == "acme"
    assert ask(openai_client, "x", metadata={"team": "red"}, store=True) == "red"
    chunks = openai_client.chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "streamed"
    history = [
        {"role": "user", "content": "remember 42"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "what was it?"},
    ]
    again = openai_client.chat.completions.create(model="gpt-4", messages=history)
    assert again.choices[0].message.content == "remembered"
    assert ask(openai_client, "ping") == "pong"


def test_templates_and_captures(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add(
        {
            "match": {"last_user": {"regex": r"weather in (?P<city>\w+)"}},
            "reply": {"content": "{{ model }}: it rains in {{ match.city }} ({{ request.user }})"},
        }
    )
    assert ask(openai_client, "weather in Oslo?", user="u1") == "gpt-4: it rains in Oslo (u1)"


def test_fake_data_is_seeded_by_request_content(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add({"seed": 7, "reply": {"content": "Your agent is {{ fake.name }}."}})
    first = ask(openai_client, "who?")
    assert first == ask(openai_client, "who?")
    assert first != ask(openai_client, "who else?")
    assert first.startswith("Your agent is ")


@pytest.mark.parametrize(
    ("after_last", "expected"),
    [("repeat", ["1", "2", "2", "2"]), ("cycle", ["1", "2", "1", "2"]),
     ("stop", ["1", "2", "fallback", "fallback"])],
)  # fmt: skip
def test_sequences(
    mockserver: MockServer, openai_client: openai.OpenAI, after_last: str, expected: list[str]
) -> None:
    mockserver.add(
        {"after_last": after_last,
         "steps": [{"reply": {"content": "1"}}, {"reply": {"content": "2"}}]},
        {"name": "fallback", "priority": -1, "reply": {"content": "fallback"}},
    )  # fmt: skip
    assert [ask(openai_client, "go") for _ in range(4)] == expected


def test_sequence_state_is_per_conversation_and_resettable(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add(
        {"conversation": {"header": "x-session"},
         "steps": [{"reply": {"content": "1"}}, {"reply": {"content": "2"}}]}
    )  # fmt: skip

    def turn(session: str) -> str:
        return ask(openai_client, "go", extra_headers={"x-session": session})

    assert [turn("a"), turn("b"), turn("a")] == ["1", "1", "2"]
    httpx.post(f"{mockserver.url}/_mock/reset?what=sequences")
    assert turn("a") == "1"


def test_n_choices_usage_and_model(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add(
        {"reply": {"model": "gpt-4o-2024-08-06", "usage": {"prompt_tokens": 11,
                   "completion_tokens": 7, "cached_tokens": 3},
                   "choices": [{"content": "A"}, {"content": "B"}]}}
    )  # fmt: skip
    reply = openai_client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], n=3
    )
    assert [c.message.content for c in reply.choices] == ["A", "B", "A"]
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert reply.model == "gpt-4o-2024-08-06"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 7)
    assert reply.usage.prompt_tokens_details.cached_tokens == 3


def test_raw_reply(mockserver: MockServer) -> None:
    mockserver.add(
        {"raw": {"status": 200, "body": "<html>oops</html>", "content_type": "text/html"}}
    )
    r = httpx.post(f"{mockserver.base_url}/chat/completions", headers=AUTH,
                   json={"model": "m", "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
    assert (r.status_code, r.text, r.headers["content-type"]) == (
        200,
        "<html>oops</html>",
        "text/html",
    )


def test_raw_reply_from_a_file(tmp_path: Path) -> None:
    """A binary body (recorded speech, say) is a file beside the scenario, read when the file
    loads and served byte for byte; a missing file, or a body and a file, fail the load."""
    sound = bytes(range(256)) * 4
    (tmp_path / "voice.mp3").write_bytes(sound)
    (tmp_path / "s.yaml").write_text(
        "- match: {api: speech}\n  raw: {file: voice.mp3, content_type: audio/mpeg}\n"
    )
    with MockServer([tmp_path / "s.yaml"]) as server:
        r = httpx.post(f"{server.base_url}/audio/speech", headers=AUTH,
                       json={"model": "tts-1", "voice": "alloy", "input": "hi"})  # fmt: skip
    assert (r.status_code, r.content, r.headers["content-type"]) == (200, sound, "audio/mpeg")
    (tmp_path / "gone.yaml").write_text("- raw: {file: gone.mp3}\n")
    with pytest.raises(ScenarioError, match=r"gone\.yaml:1: .*raw\.file: cannot read 'gone\.mp3'"):
        MockServer([tmp_path / "gone.yaml"])
    (tmp_path / "both.yaml").write_text("- raw: {file: voice.mp3, body: hi}\n")
    with pytest.raises(ScenarioError, match=r"both\.yaml:1: .*raw: a raw reply needs 'body' or"):
        MockServer([tmp_path / "both.yaml"])


def stream_text(client: openai.OpenAI) -> str:
    chunks = client.chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": "x"}], stream=True
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks)


LONG = "one two three four five six seven eight"


def test_fault_reset_before_headers(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add({"reply": {"content": LONG}, "fault": {"kind": "reset"}})
    with pytest.raises(openai.APIConnectionError):
        stream_text(openai_client)


def test_fault_stream_error(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add({"reply": {"content": LONG}, "fault": {"kind": "stream_error", "after_chunks": 2,
                    "error": {"status": 500, "message": "boom", "type": "server_error"}}})  # fmt: skip
    with pytest.raises(openai.APIError) as caught:
        stream_text(openai_client)
    assert caught.value.message == "boom"


def test_fault_malformed_line(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add({"reply": {"content": LONG}, "fault": {"kind": "malformed", "after_chunks": 2}})
    with pytest.raises(json.JSONDecodeError):
        stream_text(openai_client)


def test_fault_no_done_ends_quietly(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add({"reply": {"content": LONG}, "fault": {"kind": "no_done"}})
    assert stream_text(openai_client) == LONG
    r = httpx.post(f"{mockserver.base_url}/chat/completions", headers=AUTH,
                   json={"model": "m", "stream": True,
                         "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
    assert b"[DONE]" not in r.content


def test_fault_stall_keeps_socket_open(mockserver: MockServer) -> None:
    mockserver.add({"reply": {"content": LONG}, "fault": {"kind": "stall", "after_chunks": 2}})
    client = openai.OpenAI(base_url=mockserver.base_url, api_key="k", max_retries=0, timeout=0.3)
    received = []
    stream = client.chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APITimeoutError):  # noqa: PT012 - the error comes mid-iteration
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3  # the role chunk, then two pieces of text


def test_fault_on_nth_match_only(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    mockserver.add({"reply": {"content": LONG}, "fault": {"kind": "drop", "nth": 2}})
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(stream_text(openai_client) == LONG)
        except openai.APIConnectionError:
            outcomes.append(False)
    assert outcomes == [True, False, True]


def test_fault_probability_is_seeded_by_content(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add({"reply": {"content": "ok"}, "fault": {"kind": "reset", "probability": 0.5}})

    def works(text: str) -> bool:
        try:
            return ask(openai_client, text) == "ok"
        except openai.APIConnectionError:
            return False

    verdicts = [works(f"question {i}") for i in range(12)]
    assert verdicts == [works(f"question {i}") for i in range(12)], "same content, same outcome"
    assert 0 < sum(verdicts) < 12


@pytest.fixture
def recorded_sleeps() -> Iterator[tuple[MockServer, list[float]]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    options = Options(speed=1.0, sleep=sleep, keepalive=10)
    scenario = {"reply": {"content": "slow answer"}, "cadence": {"first_delay": 25, "delay": 1}}
    with MockServer([scenario], options=options) as server:
        yield server, slept


def test_long_waits_send_comment_keepalives(
    recorded_sleeps: tuple[MockServer, list[float]],
) -> None:
    server, slept = recorded_sleeps
    r = httpx.post(f"{server.base_url}/chat/completions", headers=AUTH,
                   json={"model": "m", "stream": True,
                         "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
    frames = r.content.decode().split("\n\n")
    assert frames[0].startswith('data: {"id"')  # the role chunk goes at once
    assert frames[1:4] == [": keep-alive", ": keep-alive", frames[3]]
    assert '"content": "slow"' in frames[3]  # the first token, 25 s in
    assert all(f.startswith(("data: ", ": ")) for f in frames[:-1])
    assert slept == [1.0] * len(slept)  # waits are sliced so a shutdown is noticed within 1 s
    pieces = [f for f in frames if '"delta": {"content": "' in f]
    assert len(slept) == 25 + len(pieces) - 1  # first_delay, then one delay between pieces


def test_admin_endpoints(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    admin = f"{mockserver.url}/_mock"
    r = httpx.post(f"{admin}/scenarios", content="- {name: added, reply: {content: hi}}\n")
    assert [s["name"] for s in r.json()["scenarios"]] == ["added"]
    bad = httpx.put(f"{admin}/scenarios", content="- {reply: {content: 1}}\n")
    assert bad.status_code == 400
    assert bad.json()["problems"] == [
        "<admin>:1: [0].reply.content: expected a string or null, got 1"
    ]
    assert ask(openai_client, "x") == "hi"
    journal = httpx.get(f"{admin}/journal").json()["entries"]
    assert [(e["scenario"], e["status"]) for e in journal] == [("added", 200)]
    assert journal[0]["headers"]["Authorization"] == "Bearer ***"
    assert httpx.delete(f"{admin}/journal").json() == {"entries": []}
    put = httpx.put(f"{admin}/scenarios", json={"name": "json", "reply": {"content": "via json"}})
    assert [s["name"] for s in put.json()["scenarios"]] == ["json"]
    assert ask(openai_client, "x") == "via json"


def test_scripted_tool_call_id_is_used(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add({"reply": {"tool_calls": [{"id": "call_fixed", "name": "f", "arguments": {}},
                                             {"name": "g"}]}})  # fmt: skip
    reply = openai_client.chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": "x"}]
    )
    ids = [c.id for c in reply.choices[0].message.tool_calls or []]
    assert ids[0] == "call_fixed"
    assert ids[1].startswith("call_")
    assert ids[1] != "call_fixed"
    chunks = openai_client.chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": "x"}], stream=True
    )
    streamed = [t.id for c in chunks for t in c.choices[0].delta.tool_calls or [] if t.id]
    assert streamed[0] == "call_fixed"
    assert len(streamed) == 2


def test_template_in_tool_arguments_stays_valid_json(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add(
        {"match": {"last_user": {"regex": "search for (?P<q>.+)"}},
         "reply": {"tool_calls": [{"name": "search", "arguments": {"query": "{{ match.q }}"}},
                                  {"name": "search", "arguments": '{"query": "{{ match.q }}"}'}]}}
    )  # fmt: skip
    reply = openai_client.chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": 'search for "quoted" \\ text'}]
    )
    calls = reply.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [{"query": '"quoted" \\ text'}] * 2


def test_templates_are_data_not_code(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    for text, refused in [
        ("{{ fake.__init__ }}", "unknown fake data '__init__'"),
        ("{{ os.system }}", "unknown placeholder '{{ os.system }}'"),
        ("{{ open('/etc/passwd') }}", "\"{{ open('/etc/passwd') }\" is not a placeholder"),
    ]:
        with pytest.raises(ScenarioError) as caught:
            mockserver.add({"reply": {"content": text}})
        assert caught.value.problems[0].message.startswith(refused)
    mockserver.add({"reply": {"content": "[{{ request.__class__.__init__ }}] {% x %}"}})
    reply = openai_client.chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": "x"}]
    )
    assert reply.choices[0].message.content == "[] {% x %}"


def test_sequence_positions_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from mockserver import load_data
    from mockserver.protocols.chat import parse_chat
    from mockserver.scenarios import matching

    monkeypatch.setattr(matching, "_CONVERSATIONS", 2)
    scenarios = load_data({"steps": [{"reply": {"content": "1"}}, {"reply": {"content": "2"}}]})
    sequences = matching.ScenarioSet(scenarios)

    def step(conversation: str) -> int:
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": conversation}]})
        return sequences.resolve(parse_chat(body.encode())).step_index

    assert [step("a"), step("b"), step("a")] == [0, 0, 1]
    assert step("c") == 0  # a third conversation: the oldest ("a") is forgotten
    assert [step("b"), step("a")] == [1, 0]
