"""Drift: recordings made through `mockserver record` with the real SDKs, then checked with
`mockserver drift` against a second mockserver playing the live API: first the same scenario
set (nothing moved), then a changed one (answers moved in known ways). Every server, the
recorder and drift itself run as real processes on loopback sockets."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import anthropic
import httpx
import openai
import pytest
import yaml

from mockserver import MockServer
from mockserver.cli import main
from mockserver.protocols.capture import Event
from mockserver.protocols.chat import parse_chat
from mockserver.recording.drift import compare, similarity
from mockserver.recording.provenance import answer_of
from mockserver.recording.record import Recorder
from mockserver.scenarios.fingerprint import (
    Placeholders,
    Redactor,
    covers,
    differences,
    redact_option,
)
from mockserver.state.live import Options
from tests.docs import example
from tests.test_record import _spawn, _stop

OPENAI_KEY = "sk-drift-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-drift-0123456789"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {}}}

BEFORE = """
scenarios:
  - name: weather
    match: {last_user: {contains: weather}}
    reply: {content: "Sunny in Paris, 21 degrees."}
  - name: lookup
    match: {tools: [get_weather]}
    reply:
      tool_calls: [{name: get_weather, arguments: '{"city": "Paris"}'}]
  - name: joke
    match: {last_user: {contains: joke}}
    reply: {content: "Why did the chicken cross the road? To get to the other side."}
  - name: capital
    match: {last_user: {contains: capital}}
    reply: {content: "Paris is the capital of France."}
  - name: news
    match: {api: responses, last_user: {contains: news}}
    reply: {content: "Nothing much happened today."}
  - name: claude
    match: {api: messages}
    reply: {content: "Hello! How can I help you today?"}
  - name: echo
    priority: -1
    reply: {content: "You said: {{ last_user }}"}
"""

# The live API, later: the weather and Claude answers are as they were; the others moved.
AFTER = """
scenarios:
  - name: weather
    match: {last_user: {contains: weather}}
    reply: {content: "Sunny in Paris, 21 degrees."}
  - name: lookup
    match: {tools: [get_weather]}
    reply:
      tool_calls: [{name: get_weather, arguments: '{"city": "Paris", "unit": "celsius"}'}]
  - name: joke
    match: {last_user: {contains: joke}}
    reply: {content: "Rain is expected tomorrow across the north.", finish_reason: length}
  - name: capital
    match: {last_user: {contains: capital}}
    error: {status: 404, message: "The model 'gpt-4o' does not exist.", code: model_not_found}
  - name: news
    match: {api: responses, last_user: {contains: news}}
    reply: {reasoning: "Checking the wires.", content: "Nothing much happened today."}
  - name: claude
    match: {api: messages}
    reply: {content: "Hello! How can I help you today?"}
  - name: echo
    priority: -1
    reply: {content: "You said: {{ last_user }}"}
"""
CHANGED = {
    "lookup": {"tool_calls"},
    "joke": {"text", "finish_reason"},
    "capital": {"status"},
    "news": {"shape", "events"},
}


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sets")
    (folder / "before.yaml").write_text(BEFORE)
    (folder / "after.yaml").write_text(AFTER)
    return folder


@pytest.fixture(scope="module")
def before(sets: Path) -> Iterator[str]:
    """The live API as it was when the recordings were made."""
    proc, url = _spawn("serve", "--scenarios", str(sets / "before.yaml"), "--speed", "0")
    yield url
    _stop(proc)


@pytest.fixture(scope="module")
def after(sets: Path) -> Iterator[str]:
    """The live API later, answering in new ways (Responses usage named as chat names it)."""
    proc, url = _spawn(
        "serve", "--scenarios", str(sets / "after.yaml"), "--speed", "0",
        "--responses-usage", "chat",
    )  # fmt: skip
    yield url
    _stop(proc)


def _requests(openai_url: str, anthropic_url: str) -> dict[str, Any]:
    """The app's requests, through the real SDKs: what each answered, by scenario."""
    out: dict[str, Any] = {}
    with openai.OpenAI(base_url=openai_url, api_key=OPENAI_KEY, max_retries=0) as api:
        chat = api.chat.completions.create
        user = [{"role": "user", "content": "How is the weather?"}]
        out["weather"] = chat(model="gpt-4o", messages=user).choices[0].message.content
        found = chat(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Weather in Paris, please."}],
            tools=[WEATHER_TOOL],
        )
        calls = found.choices[0].message.tool_calls or []
        out["lookup"] = [(c.function.name, json.loads(c.function.arguments)) for c in calls]
        stream = chat(
            model="gpt-4o", stream=True, messages=[{"role": "user", "content": "Tell me a joke"}]
        )
        text, finish = "", None
        for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
        out["joke"] = (text, finish)
        try:
            capital = [{"role": "user", "content": "What is the capital of France?"}]
            out["capital"] = chat(model="gpt-4o", messages=capital).choices[0].message.content
        except openai.NotFoundError as err:
            out["capital"] = err.status_code
        events = list(api.responses.create(model="gpt-4o", input="Any news?", stream=True))
        done = events[-1].response
        reasoning = [i for i in done.output if i.type == "reasoning"]
        out["news"] = (done.output_text, bool(reasoning))
    with anthropic.Anthropic(
        base_url=anthropic_url, api_key=ANTHROPIC_KEY, max_retries=0
    ) as claude:
        said = claude.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=100,
            messages=[{"role": "user", "content": "Hello Claude"}],
        )
        out["claude"] = said.content[0].text
    return out


def _anthropic_base(url: str) -> str:
    return url.removesuffix("/v1")  # the anthropic SDK adds /v1 itself


@pytest.fixture(scope="module")
def recorded(before: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recordings of the app's requests against the API as it was; tests copy them."""
    out = tmp_path_factory.mktemp("recorded") / "recordings"
    proc, url = _spawn("record", "--upstream", before, "--out", str(out))
    try:
        answered = _requests(url, _anthropic_base(url))
    finally:
        _stop(proc)
    assert answered["weather"] == "Sunny in Paris, 21 degrees."
    assert answered["lookup"] == [("get_weather", {"city": "Paris"})]
    assert answered["capital"] == "Paris is the capital of France."
    (out / "hand-written.yaml").write_text(
        "scenarios:\n  - name: greeting\n    match: {last_user: hi}\n    reply: {content: Hi!}\n"
    )  # drift leaves hand-written scenarios alone
    return out


@pytest.fixture
def recordings(recorded: Path, tmp_path: Path) -> Path:
    """This test's own copy of the recordings."""
    return Path(shutil.copytree(recorded, tmp_path / "recordings"))


def _drift(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    keys = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
    base = {k: v for k, v in os.environ.items() if k not in keys}
    return subprocess.run(
        [sys.executable, "-m", "mockserver", "drift", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **(keys if env is None else env)},
        check=False,
    )


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


_WORDS = {
    "how-is-the-weather": "weather",
    "weather-in-paris": "lookup",
    "tell-me-a-joke": "joke",
    "what-is-the-capital": "capital",
    "any-news": "news",
    "hello-claude": "claude",
}


def _scenario_of(recording: str) -> str:
    """The upstream scenario a recording's name (``chat-how-is-the-weather-1a2b3c4d``) is of."""
    words = re.sub(r"^(chat|responses|messages)-", "", recording)
    (scenario,) = [v for k, v in _WORDS.items() if words.startswith(k)]
    return scenario


def _by_scenario(stdout: str) -> dict[str, str]:
    """Each output line but the summary: the upstream's scenario, and what drift said."""
    out = {}
    for line in stdout.splitlines()[:-1]:
        name, _, rest = line.partition("  ")
        out[_scenario_of(name)] = rest
    return out


def test_drift_same_changed_update_replay(recordings: Path, before: str, after: str) -> None:
    files = _snapshot(recordings)
    assert len(files) == 7  # six recordings and the hand-written file

    same = _drift("--upstream", before, str(recordings))
    assert same.returncode == 0, same.stdout + same.stderr
    assert set(_by_scenario(same.stdout).values()) == {"same"}
    assert same.stdout.splitlines()[-1] == (
        f"drift: 6 recording(s) against {before}: 6 same, 0 changed, 0 failed"
    )
    assert _snapshot(recordings) == files  # nothing is written without --update

    report, junit = recordings.parent / "drift.json", recordings.parent / "drift.xml"
    moved = _drift(
        "--upstream", after, str(recordings), "--report", str(report), "--junit", str(junit)
    )
    assert moved.returncode == 1, moved.stdout + moved.stderr
    lines = _by_scenario(moved.stdout)
    assert lines["weather"] == "same"
    assert lines["claude"] == "same"
    for scenario, kinds in CHANGED.items():
        assert lines[scenario].startswith("changed: "), lines[scenario]
        said = set(re.findall(r"(?:^changed: |, )(\w+) \(", lines[scenario]))
        assert said == kinds, (scenario, lines[scenario])
    assert "200 -> 404" in lines["capital"]
    assert "get_weather(city) -> get_weather(city, unit)" in lines["lookup"]
    assert "stop -> length" in lines["joke"]
    assert "content similarity" in lines["joke"]
    assert "new response.reasoning" in lines["news"]
    assert "removed response.completed response.usage.input_tokens," in lines["news"]
    assert moved.stdout.splitlines()[-1].endswith("2 same, 4 changed, 0 failed")
    assert _snapshot(recordings) == files

    data = json.loads(report.read_text())
    assert data["upstream"] == after
    assert data["summary"] == {"same": 2, "changed": 4, "failed": 0, "not_checkable": 0}
    entries = {_scenario_of(r["name"]): r for r in data["recordings"]}
    assert set(entries) == {"weather", "lookup", "joke", "capital", "news", "claude"}
    for scenario, entry in entries.items():
        assert set(entry) >= {"file", "name", "verdict", "changes"}
        assert Path(entry["file"]).parent == recordings
        assert entry["name"] == Path(entry["file"]).stem
        kinds = {c["kind"] for c in entry["changes"]}
        assert kinds == CHANGED.get(scenario, set())
        assert entry["verdict"] == ("changed" if kinds else "same")
        assert all(c["detail"] for c in entry["changes"])

    suite = ElementTree.parse(junit).getroot()
    assert suite.tag == "testsuite"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("6", "4", "0")
    failed = {
        case.get("name"): case.find("failure")
        for case in suite.iter("testcase")
        if case.find("failure") is not None
    }
    assert len(failed) == 4
    capital = next(f for n, f in failed.items() if "capital" in str(n))
    assert capital is not None
    assert capital.get("message") == "status"
    assert "200 -> 404" in (capital.text or "")

    updated = _drift("--upstream", after, str(recordings), "--update")
    assert updated.returncode == 1  # it reports what it found, then rewrites
    rewritten = [
        line.split()[-1] for line in updated.stdout.splitlines() if line.startswith("updated ")
    ]
    assert len(rewritten) == 4
    now = _snapshot(recordings)
    for name, (content, mtime) in files.items():
        path = recordings / name
        if str(path) in rewritten:
            assert now[name][0] != content
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        else:  # the same ones, and the hand-written file: byte for byte, not even touched
            assert now[name] == (content, mtime), name
    assert sorted(now) == sorted(files)  # rewritten in place, under the same names
    assert (
        subprocess.run(
            [sys.executable, "-m", "mockserver", "validate", str(recordings)], check=False
        ).returncode
        == 0
    )

    again = _drift("--upstream", after, str(recordings))
    assert again.returncode == 0, again.stdout
    assert set(_by_scenario(again.stdout).values()) == {"same"}

    # Offline: the recordings alone now answer what the live API answers.
    proc, url = _spawn("serve", "--scenarios", str(recordings), "--speed", "0")
    try:
        replayed = _requests(url, _anthropic_base(url))
    finally:
        _stop(proc)
    assert replayed["lookup"] == [("get_weather", {"city": "Paris", "unit": "celsius"})]
    assert replayed["joke"] == ("Rain is expected tomorrow across the north.", "length")
    assert replayed["capital"] == 404
    assert replayed["news"] == ("Nothing much happened today.", True)
    assert replayed["weather"] == "Sunny in Paris, 21 degrees."
    assert replayed["claude"] == "Hello! How can I help you today?"


def test_unreachable_upstream_fails(recordings: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    files = _snapshot(recordings)
    run = _drift("--upstream", "http://127.0.0.1:9/v1", str(recordings), "--report", str(report),
                 "--update")  # fmt: skip
    assert run.returncode == 1
    verdicts = _by_scenario(run.stdout)
    assert len(verdicts) == 6
    assert all(
        v.startswith("failed: cannot reach http://127.0.0.1:9/v1") for v in verdicts.values()
    )
    assert run.stdout.splitlines()[-1].endswith("0 same, 0 changed, 6 failed")
    assert {r["verdict"] for r in json.loads(report.read_text())["recordings"]} == {"failed"}
    assert _snapshot(recordings) == files  # --update writes nothing it could not compare


def test_a_missing_key_variable_is_named(recordings: Path, before: str) -> None:
    run = _drift("--upstream", before, str(recordings), env={"OPENAI_API_KEY": OPENAI_KEY})
    assert run.returncode == 2
    assert "ANTHROPIC_API_KEY is not set" in run.stderr
    assert run.stdout == ""  # nothing was sent
    run = _drift("--upstream", before, str(recordings), "--api-key-env", "MY_RELAY_KEY")
    assert run.returncode == 2
    assert "MY_RELAY_KEY is not set" in run.stderr
    run = _drift(
        "--upstream", before, str(recordings), "--api-key-env", "MY_RELAY_KEY",
        env={"MY_RELAY_KEY": "sk-relay-0123456789"},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def _usage(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`mockserver drift` in this process, for what ends before anything is sent: its exit
    status and what it printed on stderr."""
    try:
        code = main(["drift", *args])
    except SystemExit as stop:  # argparse's own errors
        code = int(stop.code or 0)
    return code, capsys.readouterr().err


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hand = tmp_path / "hand"
    hand.mkdir()
    (hand / "s.yaml").write_text("- {name: greeting, reply: {content: Hi!}}\n")
    url = "http://127.0.0.1:9/v1"
    code, err = _usage(capsys, "--upstream", url, str(hand))
    assert (code, "no recordings in") == (2, err[len("mockserver drift: ") :][:16])
    code, err = _usage(capsys, "--upstream", url, str(tmp_path / "nowhere"))
    assert (code, err) == (2, f"mockserver drift: {tmp_path / 'nowhere'}: no such file or folder\n")
    code, err = _usage(capsys, "--upstream", "ftp://x", str(hand))
    assert code == 2
    assert "--upstream must be an http:// or https:// URL, got 'ftp://x'" in err
    code, err = _usage(capsys, "--upstream", url, "--min-similarity", "2", str(hand))
    assert code == 2
    assert "--min-similarity must be between 0 and 1" in err
    code, err = _usage(capsys, "--upstream", url, "--bogus", str(hand))
    assert code == 2
    assert "unrecognized arguments: --bogus" in err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "r.yaml").write_text(
        "- {name: r, match: {recorded: abc}, reply: {content: x}, delay: -1}\n"
    )
    code, err = _usage(capsys, "--upstream", url, str(broken))
    assert code == 2
    assert "r.yaml:1: [0].delay: must be >= 0" in err  # file, line and key, nothing sent


def test_older_recordings_are_not_checkable(recordings: Path, before: str) -> None:
    paths = sorted(recordings.glob("chat-how-is-the-weather-*.yaml"))
    (old,) = paths
    data = yaml.safe_load(old.read_text())
    del data["scenarios"][0]["recording"]  # as recorded before recordings kept their request
    old.write_text(yaml.safe_dump(data))
    run = _drift("--upstream", before, str(recordings))
    assert run.returncode == 0, run.stdout
    verdicts = _by_scenario(run.stdout)
    assert verdicts["weather"].startswith("not checkable: recorded without its request")
    assert run.stdout.splitlines()[-1].endswith("5 same, 0 changed, 0 failed, 1 not checkable")
    for other in recordings.glob("*-*.yaml"):
        if other != old:
            other.unlink()
    run = _drift("--upstream", before, str(recordings))
    assert run.returncode == 2
    assert "can be checked" in run.stderr


def test_a_miss_says_which_covered_field_differs(recordings: Path) -> None:
    proc, url = _spawn("serve", "--scenarios", str(recordings), "--speed", "0")
    try:
        with openai.OpenAI(base_url=url, api_key=OPENAI_KEY, max_retries=0) as api:
            asked = [{"role": "user", "content": "Weather in Paris, please."}]
            with pytest.raises(openai.NotFoundError) as caught:
                api.chat.completions.create(
                    model="gpt-4o", messages=asked, tools=[WEATHER_TOOL, TIME_TOOL]
                )
            assert "recording differs in tools: added 'get_time'" in str(caught.value)
            system = [{"role": "system", "content": "Be brief."}, *asked]
            with pytest.raises(openai.NotFoundError) as caught:
                api.chat.completions.create(model="gpt-4o-mini", messages=system,
                                            tools=[WEATHER_TOOL])  # fmt: skip
            said = str(caught.value)
            assert "model: 'gpt-4o' -> 'gpt-4o-mini'" in said
            assert "messages: message 1 (system) added" in said
        root = url.removesuffix("/v1")
        body = {"model": "gpt-4o", "messages": asked, "tools": [WEATHER_TOOL, TIME_TOOL]}
        explained = httpx.post(f"{root}/_mock/explain", json={"body": body}).json()
        failed = [f for s in explained["scenarios"] for f in s["failed"]]
        assert "recording differs in tools: added 'get_time'" in failed
    finally:
        _stop(proc)


def test_named_placeholders_stay_stable_and_replay(tmp_path: Path, before: str) -> None:
    out = tmp_path / "rec"
    proc, url = _spawn(
        "record", "--upstream", before, "--out", str(out), "--redact", r"email=[\w.]+@[\w.]+"
    )
    text = "Write to bob@example.com and amy@example.org, cc bob@example.com"
    try:
        with openai.OpenAI(base_url=url, api_key=OPENAI_KEY, max_retries=0) as api:
            said = api.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": text}]
            )
            assert said.choices[0].message.content == f"You said: {text}"
    finally:
        _stop(proc)
    (path,) = out.glob("*.yaml")
    written = path.read_text()
    assert "example.com" not in written
    assert "example.org" not in written
    scenario = yaml.safe_load(written)["scenarios"][0]
    placed = "Write to <email-1> and <email-2>, cc <email-1>"
    assert scenario["recording"]["request"]["messages"][0]["content"] == placed
    assert scenario["reply"]["content"] == f"You said: {placed}"  # the same numbers
    proc, url = _spawn("serve", "--scenarios", str(out), "--speed", "0")
    try:
        with openai.OpenAI(base_url=url, api_key=OPENAI_KEY, max_retries=0) as api:
            for asked in (text, "Write to cy@a.io and di@b.io, cc cy@a.io"):
                again = api.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": asked}]
                )
                assert again.choices[0].message.content == f"You said: {placed}"
            with pytest.raises(openai.NotFoundError):  # another pattern of addresses
                api.chat.completions.create(
                    model="gpt-4o",
                    messages=[{"role": "user", "content": "Write to a@b.c and d@e.f, cc d@e.f"}],
                )
    finally:
        _stop(proc)


def test_redaction_names_and_numbering() -> None:
    assert redact_option(r"email=[\w.]+@[\w.]+") == {"email": r"[\w.]+@[\w.]+"}
    assert redact_option(r"sk-\w+") == r"sk-\w+"
    assert redact_option(r"api_key\=\w+") == r"api_key\=\w+"  # an escaped = is a plain pattern
    redactor = Redactor([{"email": r"\w+@\w+\.com"}, r"sk-\w+"])
    places = Placeholders()
    assert redactor.text("a@b.com sk-123 c@d.com a@b.com", places) == (
        "<email-1> [REDACTED] <email-2> <email-1>"
    )
    assert redactor.text("c@d.com", places) == "<email-2>"  # the same numbering goes on
    assert redactor.text("c@d.com") == "<email-1>"  # a text alone is numbered alone
    assert Redactor(redactor.spec()).key == redactor.key
    assert Placeholders("<email-3> <email-1>").get("email", "new@x.com") == "<email-4>"
    with pytest.raises(ValueError, match="matches the empty string"):
        Redactor([{"x": "a*"}])


def test_text_meaning_and_shape_comparisons() -> None:
    assert similarity("Sunny in Paris.", "Sunny in Paris.") == 1.0
    close = similarity("It is sunny in Paris today.", "Today it is sunny in Paris!")
    far = similarity("It is sunny in Paris today.", "The database migration failed.")
    assert close >= 0.8 > far

    def step(content: str) -> dict[str, Any]:
        return {"reply": {"content": content, "finish_reason": "stop"}}

    shape = {"status": 200, "shape": {"id": "string", "usage.total_tokens": "integer"}}
    assert compare(step("Sunny."), shape, step("Sunny."), shape) == []
    moved = {"status": 200, "shape": {"id": "string", "usage.total_tokens": "string", "x": "null"}}
    (change,) = compare(step("Sunny."), shape, step("Sunny."), moved)
    assert change.kind == "shape"
    assert change.detail == "usage.total_tokens integer -> string, added x"
    nulled = {"status": 200, "shape": {"id": "null|string", "usage.total_tokens": "integer"}}
    assert compare(step("a"), shape, step("a"), nulled) == []  # null comes and goes
    (change,) = compare(step("Sunny in Paris."), shape, step("Snow in Oslo."), shape)
    assert change.kind == "text"
    strict = compare(step("Sunny in Paris."), shape, step("Sunny in Paris!"), shape, 1.0)
    assert [c.kind for c in strict] == ["text"]


def test_docs_example_reads_the_report(tmp_path: Path) -> None:
    report = {
        "recordings": [
            {"file": "r/a.yaml", "name": "a", "verdict": "same", "changes": []},
            {"file": "r/b.yaml", "name": "b", "verdict": "changed",
             "changes": [{"kind": "text", "detail": "content similarity 0.12"}]},
        ]
    }  # fmt: skip
    (tmp_path / "drift.json").write_text(json.dumps(report))
    code = example("drift-report")
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert run.returncode == 1
    assert run.stdout == "b: text (content similarity 0.12)\n"


def _run_drift(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    """`mockserver drift` in this process (the upstream too runs in it, on its own thread)."""
    code = main(["drift", *args])
    return code, capsys.readouterr().out.splitlines()


def test_steps_embeddings_and_a_busy_upstream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    upstream = [
        {
            "name": "busy-then-ok",
            "match": {"last_user": "busy"},
            "steps": [
                {"error": {"status": 429, "message": "Slow down.", "type": "requests"}},
                {"reply": {"content": "Done."}},
            ],
        },
        {"name": "always-busy", "match": {"last_user": "swamped"},
         "error": {"status": 503, "message": "Overloaded."}},
        {"name": "echo", "priority": -1, "reply": {"content": "You said: {{ last_user }}"}},
    ]  # fmt: skip
    out = tmp_path / "rec"
    with MockServer(upstream, options=Options(speed=0)) as live:
        rec = Recorder(upstream=live.base_url, out=out)
        with (
            MockServer([], options=Options(recorder=rec, speed=0)) as proxy,
            openai.OpenAI(base_url=proxy.base_url, api_key=OPENAI_KEY) as api,  # retries
        ):
            said = api.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "busy"}]
            )
            assert said.choices[0].message.content == "Done."
            vectors = api.embeddings.create(
                model="text-embedding-3-small", input="drift", encoding_format="float"
            )
            assert len(vectors.data[0].embedding) == 1536
        steps = yaml.safe_load(next(out.glob("chat-busy-*.yaml")).read_text())["scenarios"][0]
        assert [s.get("error", {}).get("status", 200) for s in steps["steps"]] == [429, 200]
        assert [a["status"] for a in steps["recording"]["answers"]] == [429, 200]
        code, lines = _run_drift(capsys, "--upstream", live.base_url, str(out))
        assert code == 0, lines
        assert lines[:2] == [  # the 200 now is the recording's second step: the same
            f"{steps['name']}  same",
            f"{next(out.glob('embeddings-*.yaml')).stem}  same",
        ]
    # A recording of a request the upstream now answers 503 (or 429) is not "changed": the
    # upstream is busy, try again later (and --update does not write the 503 in).
    with MockServer(upstream, options=Options(speed=0)) as live:
        for path in out.glob("chat-busy-*.yaml"):
            text = path.read_text().replace("busy", "swamped")
            path.write_text(text.replace(steps["match"]["recorded"]["digest"], "f" * 32))
        kept = {path: path.read_bytes() for path in out.iterdir()}
        code, lines = _run_drift(capsys, "--upstream", live.base_url, str(out), "--update")
        assert code == 1
        assert lines[0].endswith("failed: the upstream answered 503; retry later")
        assert lines[1].endswith("same")
        assert {path: path.read_bytes() for path in out.iterdir()} == kept


def test_differences_name_the_field_and_how() -> None:
    def request(system: str, tools: list[Any], model: str = "gpt-4o") -> Any:
        body = {
            "model": model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": "Weather in Paris?"},
            ],
            "tools": tools,
        }
        return parse_chat(json.dumps(body).encode(), {})

    was = covers(request("Be brief.", [WEATHER_TOOL]))
    assert differences(was, covers(request("Be brief.", [WEATHER_TOOL]))) == []
    edited = dict(WEATHER_TOOL, function={**WEATHER_TOOL["function"], "description": "Now."})
    assert differences(was, covers(request("Be very brief.", [edited, TIME_TOOL]))) == [
        "messages: message 1 (system) edited",
        "tools: added 'get_time', 'get_weather' changed",
    ]
    assert differences(was, covers(request("Be brief.", [], "o3"))) == [
        "model: 'gpt-4o' -> 'o3'",
        "tools: removed 'get_weather'",
    ]


def test_an_answer_is_kept_as_status_shape_and_event_types() -> None:
    def event(name: str, data: dict[str, Any]) -> Event:
        return Event(0.0, name, json.dumps(data))

    events = [
        event("message_start", {"type": "message_start", "message": {"id": "m", "usage": {}}}),
        event("ping", {"type": "ping"}),  # sent whenever the upstream likes: not a change
        event("content_block_delta", {"type": "content_block_delta", "delta": {"text": "a"}}),
        event("content_block_delta", {"type": "content_block_delta", "delta": {"text": "b"}}),
        event("ping", {"type": "ping"}),
        event("message_stop", {"type": "message_stop"}),
    ]
    kept = answer_of(200, b"", events, stream=True)
    assert kept["events"] == ["message_start", "content_block_delta", "message_stop"]
    assert kept["shape"]["content_block_delta delta.text"] == "string"
    assert kept["shape"]["message_start message.usage"] == "object"
    assert not any(path.startswith("ping") for path in kept["shape"])
    body = json.dumps({"id": "x", "choices": [{"message": {"content": None}}, {}]}).encode()
    plain = answer_of(200, body, [], stream=False)
    assert plain == {
        "status": 200,
        "shape": {
            "id": "string",
            "choices": "array",
            "choices[]": "object",
            "choices[].message": "object",
            "choices[].message.content": "null",
        },
    }
    assert answer_of(502, b"<html>Bad gateway</html>", [], stream=False)["shape"] == {}
