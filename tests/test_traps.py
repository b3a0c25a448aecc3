"""Traps a new user fell into: who gets credited for a request, what a recording is, which
numbers people read, ids that must not repeat."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from mockserver import MockServer
from mockserver.cli import main
from mockserver.scenarios.loader import DEFAULTS_FILE, load_defaults, load_text
from mockserver.state.live import Options


def test_embeddings_are_not_credited_to_a_text_scenario() -> None:
    """With the demo set, ``embeddings.create("hello")`` matched ``greeting`` (a text reply)
    and any other input the catch-all ``default``: neither can answer with vectors."""
    with (
        MockServer([DEFAULTS_FILE], options=Options(speed=0)) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as api,
    ):
        hello = api.embeddings.create(model="text-embedding-3-small", input="hello")
        other = api.embeddings.create(model="text-embedding-3-small", input="stew recipes")
        chat = api.chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "hello"}]
        )
        assert len(hello.data[0].embedding) == 1536
        assert len(other.data[0].embedding) == 1536
        assert chat.choices[0].message.content.startswith("Hello! I am mockserver")
        assert [e.scenario for e in server.journal] == ["generated", "generated", "greeting"]
        server.assert_called("greeting", times=1)  # the chat request only
        assert server.requests("default") == []


def test_a_scenario_answers_the_protocols_its_replies_can() -> None:
    scenarios = load_text(
        """
- name: text
  reply: {content: hi}
- name: vectors
  reply: {embedding: [0.5, 0.5]}
- name: styled
  reply: {embedding_style: random}
- name: both
  reply: {content: hi, embedding: [1.0]}
- name: error
  error: {status: 503}
- name: mixed
  steps:
    - error: {status: 429}
    - reply: {content: hi}
"""
    )
    apis = {s.name: s.apis for s in scenarios}
    text = frozenset({"chat", "responses", "messages"})
    assert text <= apis["text"]
    assert "embeddings" not in apis["text"]
    assert apis["vectors"] == apis["styled"] == frozenset({"embeddings", "gemini_embeddings"})
    assert text | {"embeddings"} <= apis["both"]
    assert apis["error"] == apis["both"]
    assert apis["mixed"] == apis["text"]


def test_a_vectors_scenario_does_not_answer_chat_and_the_miss_says_why() -> None:
    with (
        MockServer(
            [{"name": "vec", "match": {"last_user": "hi"}, "reply": {"embedding": [1.0, 0.0]}}],
            options=Options(speed=0),
        ) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as api,
    ):
        vectors = api.embeddings.create(model="m", input="hi", encoding_format="float")
        assert vectors.data[0].embedding == [1.0, 0.0]
        with pytest.raises(openai.NotFoundError) as missed:
            api.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert "'vec'" in str(missed.value)
    assert "its replies are not text, so it does not answer chat requests" in str(missed.value)


def test_the_default_reply_does_not_answer_embeddings() -> None:
    """``--unmatched default``: its reply is text; embeddings get generated vectors."""
    fallback = next(s for s in load_defaults() if s.name == "default")
    options = Options(speed=0, fallback=fallback)
    with (
        MockServer([], options=options) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as api,
    ):
        api.embeddings.create(model="text-embedding-3-small", input="hello")
        api.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert [e.scenario for e in server.journal] == ["generated", "default"]


def test_a_recording_replays_verbatim_as_a_property_of_its_steps(tmp_path: Path) -> None:
    recorded, written = load_text(
        """
- name: rec
  match: {recorded: 0123456789abcdef01234567}
  steps:
    - reply: {content: one two three}
    - error: {status: 429}
- name: hand
  reply: {content: one two three}
"""
    )
    assert [s.verbatim for s in recorded.steps] == [True, True]
    assert [s.verbatim for s in written.steps] == [False]


def _ids(options: Options) -> tuple[list[str], list[str]]:
    """The x-request-ids and the body ids of five identical requests (and one 404)."""
    with (
        MockServer([{"reply": {"content": "hi"}}], options=options) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as api,
    ):
        heads, bodies = [], []
        for _ in range(5):
            raw = api.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
            heads.append(raw.headers["x-request-id"])
            bodies.append(raw.parse().id)
        with pytest.raises(openai.NotFoundError) as missing:
            api.get("/nothing", cast_to=object)
        heads.append(missing.value.response.headers["x-request-id"])
    return heads, bodies


def test_request_ids_are_unique_across_servers_and_runs_body_ids_are_not() -> None:
    first, first_bodies = _ids(Options(speed=0))
    second, second_bodies = _ids(Options(speed=0))
    assert len(set(first + second)) == 12  # every server's fifth request had the same id
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", x) for x in first + second)
    assert first_bodies == second_bodies  # deterministic: same input, same body
    assert _ids(Options(speed=0, run=7)) == _ids(Options(speed=0, run=7))  # when asked to be


def test_steps_are_numbered_from_one_in_the_log() -> None:
    """The log said nothing for the first step and ``step=1`` for the second; the inspector
    says "step 1" and "step 2"."""
    steps = {"name": "seq", "steps": [{"reply": {"content": "a"}}, {"reply": {"content": "b"}}]}
    log = logging.getLogger("mockserver")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign,assignment]
    saved = log.level
    log.addHandler(handler)  # its own handler: what other tests left on the root does not count
    log.setLevel(logging.INFO)
    try:
        with (
            MockServer([steps], options=Options(speed=0, quiet=False)) as server,
            openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as api,
        ):
            for _ in range(2):
                api.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            assert [e.step for e in server.journal] == [0, 1]  # the journal keeps an index
    finally:
        log.removeHandler(handler)
        log.setLevel(saved)
    said = [r.getMessage() for r in records if r.getMessage().startswith("POST")]
    assert [x.split()[3:5] for x in said] == [
        ["scenario=seq", "step=1"],
        ["scenario=seq", "step=2"],
    ]


def test_as_scenario_of_an_unmatched_request_is_a_reply_to_fill_in() -> None:
    """It wrote the mock's own 404 as the reply."""
    with (
        MockServer([{"match": {"last_user": "other"}, "reply": {"content": "x"}}]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as api,
    ):
        with pytest.raises(openai.NotFoundError):
            api.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Book a table"}]
            )
        text = httpx.get(f"{server.url}/_mock/journal/1/scenario").text
        (scenario,) = load_text(text)
        server.add(scenario)
        again = api.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Book a table"}]
        )
    data = yaml.safe_load(text)["scenarios"][0]
    assert data["match"] == {"model": "gpt-4o", "last_user": "Book a table"}
    assert data["reply"] == {"content": "TODO: what the mock should answer"}
    assert "error" not in data
    assert again.choices[0].message.content == "TODO: what the mock should answer"


def test_every_condition_reads_as_words() -> None:
    """``ApiIs(api='chat')`` showed in the scenarios view and /_mock/scenarios/detail."""
    spec = {
        "name": "all",
        "match": {
            "api": "chat", "model": "gpt-4*", "last_user": {"contains": "hi"},
            "system": {"regex": "^You"}, "last_role": "user", "tools": ["f"],
            "tool_choice": "auto", "stream": False, "response_format": "json_object",
            "headers": {"x-team": "a"}, "body": {"temperature": 0},
            "recorded": "0123456789abcdef01234567",
        },
        "reply": {"content": "x"},
    }  # fmt: skip
    with MockServer([spec]) as server:
        detail = httpx.get(f"{server.url}/_mock/scenarios/detail").json()
    (shown,) = detail["scenarios"]
    assert shown["conditions"] == [
        "api 'chat'",
        "model 'gpt-4*'",
        "last_user contains 'hi'",
        "system regex '^You'",
        "last_role 'user'",
        "tools ['f']",
        "tool_choice 'auto'",
        "stream False",
        "response_format 'json_object'",
        "header x-team exact 'a'",
        "body.temperature 0",
        "recorded request 0123456789ab (model, messages, tools, tool_choice, "
        "response_format, n, stream)",
    ]


def test_validate_reports_every_problem_of_one_string(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It stopped at the first: ``{{ match.order }} ... {{ modle }}`` reported only modle."""
    path = tmp_path / "s.yaml"
    path.write_text(
        "- name: a\n"
        "  match: {last_user: {contains: order}}\n"
        "  reply:\n"
        "    content: 'Order {{ match.order }} for {{ modle }} by {{ fake.nam }} {{ oops'\n"
    )
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[-1] == "4 problem(s)", err
    assert "'{{ match.order }}' would always be empty" in err
    assert "unknown placeholder '{{ modle }}'" in err
    assert "unknown fake data 'nam'" in err
    assert "'{{ oops' is not a placeholder" in err
    assert all(x.startswith(f"{path}:4: [0].reply.content: ") for x in lines[:-1]), err


def test_lint_knows_which_protocols_a_scenario_answers(tmp_path: Path) -> None:
    from mockserver.scenarios.lint import warnings

    found = warnings(
        load_text(
            """
- {name: all, reply: {content: a}}
- {name: vec, match: {api: embeddings}, reply: {embedding: [1.0]}}
- {name: text-for-vectors, match: {api: embeddings}, reply: {content: b}}
- {name: hidden, match: {model: x}, reply: {content: c}}
"""
        )
    )
    said = [p.message for p in found]
    assert len(said) == 2, said
    assert said[0].startswith("warning: scenario 'hidden' can never answer: 'all'")
    assert said[1] == (
        "warning: scenario 'text-for-vectors' can never answer: it matches only embeddings "
        "requests, and its replies are not vectors"
    )


def test_the_inspector_explains_embeddings_as_the_server_answers_them() -> None:
    with MockServer([DEFAULTS_FILE]) as server:
        body = {"model": "text-embedding-3-small", "input": "hello"}
        said = httpx.post(
            f"{server.url}/_mock/explain", json={"api": "embeddings", "body": body}
        ).json()
    assert said["answer"]["scenario"] == "generated"
    why = {v["name"]: v["failed"] for v in said["scenarios"]}
    assert why["greeting"] == [
        "its replies are not vectors, so it does not answer embeddings requests"
    ]
