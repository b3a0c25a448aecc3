"""A compiled reply gives, for every request, exactly the bytes the general writer gives.

A template-free reply is compiled once per rendered reply and request shape (the second request
that needs it), then filled in for every later request: each test compiles with one request and
checks others, with other ids, clocks, models, prompts and echoed parameters, against the
protocol's own writer, plain and streamed, for every chat-family protocol.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mockserver.pipeline
from mockserver import MockServer, Options
from mockserver.core.profiles import Settings
from mockserver.pipeline import request_id
from mockserver.protocols import Answer, Protocol, Stored, Target
from mockserver.protocols.chat import Chat
from mockserver.protocols.compiled import Stream, compiled_body, compiled_stream, values
from mockserver.protocols.gemini import Gemini
from mockserver.protocols.messages import Messages
from mockserver.protocols.responses import Responses
from mockserver.scenarios.loader import load_data
from mockserver.scenarios.render import Envelope, Renderer, digest, reply_seed, usage
from mockserver.scenarios.scenario import Scenario

from .conftest import Clock

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30).filter(
    lambda t: "{{" not in t  # a placeholder, or the loader's error for a garbled one
)
names = st.from_regex(r"[a-z_]{1,8}", fullmatch=True)
tool_calls = st.lists(
    st.fixed_dictionaries(
        {"name": names, "arguments": st.dictionaries(names, texts, max_size=2)},
        optional={"id": st.from_regex(r"call_[a-z0-9]{1,6}", fullmatch=True)},
    ),
    min_size=1,
    max_size=2,
)
replies = st.fixed_dictionaries(
    {},
    optional={
        "content": texts,
        "reasoning": texts,
        "refusal": texts.filter(bool),
        "tool_calls": tool_calls,
        "finish_reason": st.sampled_from(["stop", "length", "content_filter", "tool_calls"]),
        "model": texts.filter(bool),
        "usage": st.fixed_dictionaries(
            {},
            optional={
                "prompt_tokens": st.integers(0, 10**6),
                "completion_tokens": st.integers(0, 10**6),
                "reasoning_tokens": st.integers(0, 100),
                "cached_tokens": st.integers(0, 100),
            },
        ),
    },
)
cadences = st.fixed_dictionaries({"chunk": st.sampled_from(["token", "word", "char", 1, 5, 20])})
PROTOCOLS: dict[str, Protocol] = {
    "chat": Chat(),
    "responses": Responses(),
    "responses-chat-usage": Responses("chat"),
    "messages": Messages(),
    "gemini": Gemini(),
}
echo_params = st.fixed_dictionaries(
    {},
    optional={
        "instructions": texts,
        "temperature": st.floats(0, 2),
        "max_output_tokens": st.integers(1, 4096),
        "metadata": st.dictionaries(names, texts, max_size=2),
        "parallel_tool_calls": st.booleans(),
        "store": st.booleans(),
        "user": texts,
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "text": st.just({"format": {"type": "json_object"}}),
        "reasoning": st.fixed_dictionaries({}, optional={"effort": st.sampled_from(["low"])}),
    },
)


@st.composite
def requests(draw: st.DrawFn, api: str, stream: bool) -> tuple[bytes, Target]:
    """A request of ``api``: its own prompt and model, and the parameters the reply repeats."""
    model, prompt = draw(texts.filter(bool)), draw(texts.filter(bool))
    if api == "chat":
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}],
                                "stream": stream, "n": draw(st.integers(1, 3))}  # fmt: skip
        if stream and draw(st.booleans()):
            body["stream_options"] = {"include_usage": True}
        return json.dumps(body).encode(), Target("/v1/chat/completions")
    if api.startswith("responses"):
        body = {"model": model, "input": prompt, "stream": stream, **draw(echo_params)}
        return json.dumps(body).encode(), Target("/v1/responses")
    if api == "messages":
        body = {"model": model, "max_tokens": 4096, "stream": stream,
                "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
        return json.dumps(body).encode(), Target("/v1/messages")
    method = "streamGenerateContent" if stream else "generateContent"
    config: dict[str, Any] = {"candidateCount": draw(st.integers(1, 2))}
    if draw(st.booleans()):
        config["thinkingConfig"] = {"includeThoughts": True}
    body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": config}  # fmt: skip
    query = {"alt": "sse"} if stream and draw(st.booleans()) else {}
    name = draw(st.from_regex(r"gemini-[a-z0-9.]{1,8}", fullmatch=True))
    return json.dumps(body).encode(), Target(f"/v1beta/models/{name}:{method}", query)


def plain_request(api: str, stream: bool, i: int) -> tuple[bytes, Target]:
    """The ``i``-th of a run of requests that differ only in their prompt and model."""
    turn = [{"role": "user", "content": f"Question {i}?"}]
    if api == "gemini":
        method = "streamGenerateContent" if stream else "generateContent"
        body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": f"Q {i}"}]}]}
        return json.dumps(body).encode(), Target(f"/v1beta/models/gemini-{i}:{method}")
    body = {"model": f"model-{i}", "stream": stream}
    if api == "responses":
        return json.dumps({**body, "input": turn}).encode(), Target("/v1/responses")
    body["messages"] = turn
    if api == "messages":
        return json.dumps({**body, "max_tokens": 64}).encode(), Target("/v1/messages")
    return json.dumps(body).encode(), Target("/v1/chat/completions")


def answer_to(protocol: Protocol, raw: bytes, target: Target, scenario: Scenario,
              renderer: Renderer, created: int) -> Answer:  # fmt: skip
    """The answer the pipeline makes of ``raw`` for ``scenario``."""
    step = scenario.steps[0]
    assert step.reply is not None
    req = protocol.parse(raw, {}, lambda _: None, target)
    seed = digest(scenario.seed, raw, 0)
    rendered = renderer.render(step.reply, req, Settings(), step.cadence, {}, int(seed[:8], 16))
    env = Envelope(protocol.id_prefix + seed, created, step.reply.model or req.model,
                   "fp_test", seed[:16])  # fmt: skip
    used = usage(req, rendered, step.reply.usage)
    return Answer(req, rendered, used, env, step.reply, scenario.seed, "req_1", float(created))


def check(protocol: Protocol, answer: Answer) -> bool:
    """The compiled reply's bytes are the general writer's; whether there was one."""
    filled = values(protocol, answer)
    if not answer.request.stream:
        body = compiled_body(protocol, answer)
        if body is not None:
            assert body.fill(filled) == protocol.body(answer)
        return body is not None
    stream = compiled_stream(protocol, answer)
    if stream is None:
        return False
    frames = list(protocol.frames(answer))
    end = protocol.end(answer, len(frames))
    assert stream.filled(filled) == frames
    assert stream.end.fill(filled) == end
    assert stream.whole.fill(filled) == b"".join(f.data for f in frames) + end
    return True


@settings(max_examples=300, deadline=None)
@given(
    api=st.sampled_from(list(PROTOCOLS)),
    stream=st.booleans(),
    reply=replies,
    cadence=cadences,
    data=st.data(),
)
def test_a_compiled_reply_is_the_general_writers_bytes_for_every_request(
    api: str, stream: bool, reply: dict[str, Any], cadence: dict[str, Any], data: st.DataObject
) -> None:
    protocol = PROTOCOLS[api]
    scenario = load_data([{"reply": reply, "cadence": cadence}])[0]
    renderer = Renderer()
    compiled = []
    for created in data.draw(st.lists(st.integers(0, 2**40), min_size=2, max_size=4)):
        raw, target = data.draw(requests(api.removesuffix("-chat-usage"), stream))
        compiled.append(check(protocol, answer_to(protocol, raw, target, scenario, renderer,
                                                  created)))  # fmt: skip
    assert not compiled[0]  # the first of a shape is written by the general writer


@pytest.mark.parametrize("api", list(PROTOCOLS))
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "reply",
    [
        {"content": "Hello, 100% sure {not} a %s format."},
        {"content": "Thinking done.", "reasoning": "First, think."},
        {"content": "", "tool_calls": [{"name": "f", "arguments": {"x": 1}}]},
        {"content": "Cut.", "finish_reason": "length", "usage": {"prompt_tokens": 7}},
        {"refusal": "No."},
    ],
)
def test_template_free_replies_are_compiled(api: str, stream: bool, reply: dict[str, Any]) -> None:
    """The replies load tests use, reasoning and generated call ids included, take the
    compiled path (and give the general writer's bytes)."""
    protocol = PROTOCOLS[api]
    renderer = Renderer()
    scenario = load_data([{"reply": reply}])[0]
    base = api.removesuffix("-chat-usage")
    for i in range(3):
        raw, target = plain_request(base, stream, i)
        answer = answer_to(protocol, raw, target, scenario, renderer, 1000 + i)
        assert check(protocol, answer) == (i > 0)  # compiled the second time it is needed


def test_a_request_for_logprobs_and_a_templated_reply_take_the_general_path() -> None:
    chat = PROTOCOLS["chat"]
    renderer = Renderer()
    raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                      "logprobs": True}).encode()  # fmt: skip
    target = Target("/v1/chat/completions")
    templated = {"reply": {"content": "You said {{ last_user }}"}}
    plain = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    static, dynamic = load_data([{"reply": {"content": "x"}}, templated])
    for _ in range(3):
        assert not check(chat, answer_to(chat, raw, target, static, renderer, 1))
        assert not check(chat, answer_to(chat, plain, target, dynamic, renderer, 1))


# --- through the server: the compiled and the general path answer alike ----------------------

AUTH = {"Authorization": "Bearer k", "x-api-key": "k", "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockServer(options=Options(clock=Clock(), speed=0)) as server:
        yield server


PATHS = {"chat": "/chat/completions", "responses": "/responses", "messages": "/messages"}


def poster(server: MockServer, api: str, target: Target) -> Callable[[bytes], httpx.Response]:
    """What sends a body of ``api`` to ``server``, at the URL ``target`` names (Gemini's)."""
    url = f"{server.base_url.removesuffix('/v1')}{target.path}"
    if api != "gemini":
        url = f"{server.base_url}{PATHS[api]}"

    def post(body: bytes) -> httpx.Response:
        return httpx.post(url, content=body, params=dict(target.query),
                          headers={**AUTH, "x-goog-api-key": "k"})  # fmt: skip

    return post


async def _no_wait(seconds: float) -> None:
    """The scripted pauses, taken at once: the bytes are what is compared."""


@pytest.mark.parametrize("api", ["chat", "responses", "messages", "gemini"])
def test_a_paced_stream_is_the_general_writers_frames(
    api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream with pauses between its frames goes out frame by frame, each filled in from
    its compiled form: the same bytes as the general writer's."""
    scenario = {"reply": {"content": "Paced, 100% alike.", "reasoning": "Think first.",
                          "tool_calls": [{"name": "f", "arguments": {"x": 1}}]},
                "cadence": {"chunk": 5, "delay": 0.5, "jitter": 0.1}}  # fmt: skip
    options = Options(clock=Clock(), speed=1, sleep=_no_wait)
    with MockServer([scenario], options=options) as server:
        raws = [plain_request(api, True, i) for i in range(3)]

        def post(raw: bytes, target: Target) -> httpx.Response:
            url = f"{server.base_url}{PATHS.get(api, '')}"
            if api == "gemini":
                url = f"{server.base_url.removesuffix('/v1')}{target.path}"
            return httpx.post(url, content=raw, headers={**AUTH, "x-goog-api-key": "k"})

        post(*raws[0])  # the first of its shape: written by the general writer, then compiled
        filled: list[int] = []
        fill = Stream.filled

        def counted(stream: Stream, values: Any) -> Any:
            filled.append(1)
            return fill(stream, values)

        with monkeypatch.context() as spy:
            spy.setattr(Stream, "filled", counted)
            compiled = [post(*r) for r in raws[1:]]
        assert len(filled) == 2  # both went out frame by frame from the compiled stream
        with monkeypatch.context() as off:
            off.setattr(mockserver.pipeline, "compiled_stream", lambda *_: None)
            general = [post(*r) for r in raws[1:]]
        assert [r.content for r in compiled] == [r.content for r in general]
        assert all(r.status_code == 200 for r in compiled)
        delays = [e.extra.get("delays") for e in server.journal]
        assert delays[1:3] == delays[3:5]  # on the same schedule
        assert delays[1]  # paced


# --- the step's fast path: a kept compiled reply answers and journals as the general path ----

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]], bool]] = {
    # name: (the step's other keys, the request's other fields by API, whether the fast path
    # answers)
    "plain": ({}, {}, True),
    "template": ({"reply": {"content": "You said {{ last_user }}."}}, {}, False),
    "fault": ({"fault": {"kind": "malformed"}}, {}, False),
    "fault that never fires": ({"fault": {"kind": "malformed", "probability": 0}}, {}, True),
    "first delay": ({"cadence": {"chunk": 3, "first_delay": 0.25}}, {}, True),
    "jittered stream": ({"cadence": {"chunk": 3, "delay": 0.25, "jitter": 0.1}}, {}, True),
    "headers": ({"headers": {"x-scenario": "on"}}, {}, True),
    "adjusted": ({}, {"chat": {"temperature": 7}}, True),  # clamped (x-mock-adjusted)
    "ignored": ({}, {"responses": {"max_output_tokens": 5}}, True),  # x-mock-adjusted too
    "limit": ({}, {"chat": {"max_tokens": 3}, "messages": {"max_tokens": 3}}, True),
    "stop": ({}, {"chat": {"stop": ["e"]}}, True),
    "two choices": ({}, {"chat": {"n": 2}}, True),
}


def _taken(server: MockServer, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each request since went out by the fast path (``Pipeline._fill``)."""
    taken: list[bool] = []
    fill = mockserver.pipeline.Pipeline._fill

    async def spy(self: Any, *args: Any) -> Any:
        sent = await fill(self, *args)
        taken.append(sent is not None)
        return sent

    monkeypatch.setattr(mockserver.pipeline.Pipeline, "_fill", spy)
    return taken


def _seen(entry: Any) -> dict[str, Any]:
    """An entry as its readers see it, less what each request has of its own."""
    shown: dict[str, Any] = entry.to_dict()
    for varies in ("seq", "request_id", "duration_ms"):
        shown.pop(varies)
    return shown


async def _declines(*_: Any) -> None:
    """``Pipeline._fill`` declining, as it does for a paced stream: the general path answers."""


def _three_ways(server: MockServer, monkeypatch: pytest.MonkeyPatch,
                post: Callable[[bytes], httpx.Response], raw: bytes) -> list[httpx.Response]:  # fmt: skip
    """``raw`` answered by the fast path (if it takes it), by the general path with a compiled
    reply, and by the general writer; the memo cleared before each (the same body thrice)."""
    got = []
    for way in ("fast", "compiled", "general"):
        with monkeypatch.context() as off:
            if way != "fast":
                off.setattr(mockserver.pipeline.Pipeline, "_fill", _declines)
            if way == "general":
                off.setattr(mockserver.pipeline, "compiled_body", lambda *_: None)
                off.setattr(mockserver.pipeline, "compiled_stream", lambda *_: None)
            server.state.memos.clear()
            got.append(post(raw))
    return got


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    api=st.sampled_from(["chat", "responses", "messages", "gemini"]),
    stream=st.booleans(),
    reply=replies,
    variant=st.sampled_from(list(VARIANTS)),
    data=st.data(),
)
def test_a_kept_compiled_reply_answers_and_journals_as_the_general_path(
    server: MockServer,
    monkeypatch: pytest.MonkeyPatch,
    api: str,
    stream: bool,
    reply: dict[str, Any],
    variant: str,
    data: st.DataObject,
) -> None:
    """Bytes, headers, the journal entry (as ``to_dict`` and ``/_mock/journal`` show it) and
    the stored copy (Responses: its body and conversation) are the general path's, whether the
    step's compiled reply answers (tools, two choices, limits, stop sequences, adjusted
    settings, scripted delays) or the request falls back to the general path (a template, a
    fault that fires)."""
    step, extra, fast = VARIANTS[variant]
    server.replace({"reply": {**reply, **step.get("reply", {})}, "cadence": {"chunk": 20},
                    **{k: v for k, v in step.items() if k != "reply"}})  # fmt: skip
    raw, target = data.draw(requests(api, stream))
    if api in extra:
        raw = json.dumps({**json.loads(raw), **extra[api]}).encode()
    post = poster(server, api, target)
    post(raw + b" ")  # the first of its shape: written by the general writer
    post(raw + b"  ")  # the second: compiled, and kept for the step's fast path
    taken = _taken(server, monkeypatch)
    before = len(server.journal)
    kept: list[Stored] = []
    put = server.state.store.put_response

    async def keep(stored: Stored) -> None:
        kept.append(stored)
        await put(stored)

    with monkeypatch.context() as storing:
        storing.setattr(server.state.store, "put_response", keep)
        answers = _three_ways(server, monkeypatch, post, raw)
    stores = api == "responses" and json.loads(raw).get("store") is not False
    assert len(kept) == (3 if stores and variant != "fault" else 0)  # a fault's reply is not
    copies = [(s.id, s.body, s.messages) for s in kept]
    assert all(copy == copies[0] for copy in copies)
    assert taken == ([True] if fast else [])  # only the first of the three may take it
    fast_way, *general = answers
    assert fast_way.status_code == 200, fast_way.text
    ids = {"x-request-id", "request-id", "date"}
    for other in general:
        assert (fast_way.status_code, fast_way.content) == (other.status_code, other.content)
        assert {k: v for k, v in fast_way.headers.items() if k not in ids} == {
            k: v for k, v in other.headers.items() if k not in ids
        }
    entries = server.journal[before:]
    assert len(entries) == 3
    assert _seen(entries[0]) == _seen(entries[1]) == _seen(entries[2])
    listed = httpx.get(f"{server.url}/_mock/journal").json()["entries"][-3:]
    for shown in listed:
        for varies in ("seq", "request_id", "duration_ms"):
            shown.pop(varies)
    assert listed[0] == listed[1] == listed[2]


def test_prompt_caching_keeps_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``--prompt-cache`` each request's usage depends on what came before it: no reply is
    kept for the fast path, and the figures are the simulation's."""
    options = Options(clock=Clock(), speed=0, prompt_cache=True)
    with MockServer([{"reply": {"content": "Cached or not."}}], options=options) as server:
        taken = _taken(server, monkeypatch)
        system = "You are terse. " * 600  # long enough to be cached
        for i in range(4):
            body = {"model": "m", "messages": [{"role": "system", "content": system},
                                               {"role": "user", "content": f"Q {i}"}]}  # fmt: skip
            got = httpx.post(f"{server.base_url}/chat/completions", json=body, headers=AUTH)
            assert got.status_code == 200
        assert taken == []
        cached = [e.reply["usage"]["cached_tokens"] for e in server.journal if e.reply]
        assert cached[0] == 0
        assert all(c > 0 for c in cached[1:])


def test_reply_seed_is_the_digest_of_its_parts() -> None:
    """The reply's seed, hashed from a copy of its scenario seed's hash, is the digest ids were
    always made of: ids and seeded choices are byte for byte what they were."""

    @settings(max_examples=200, deadline=None)
    @given(st.integers(-(2**70), 2**70), st.binary(max_size=300), st.integers(0, 10**6))
    def same(seed: int, raw: bytes, step: int) -> None:
        assert reply_seed(seed, raw, step) == digest(seed, raw, step)

    same()


def test_a_request_id_is_the_scrambled_run_worker_lane_and_sequence() -> None:
    """``request_id`` adds ``seq``'s product to one made once per run, worker and lane: the
    ids are the ones the whole product made."""

    @settings(max_examples=300, deadline=None)
    @given(st.integers(0, 2**32 - 1), st.sampled_from([None, 0, 1, 7, 255]),
           st.integers(0, 1), st.integers(0, 2**64 - 1))  # fmt: skip
    def same(run: int, worker: int | None, lane: int, seq: int) -> None:
        whole = (run << 96 | (worker or 0) << 72 | lane << 64 | seq) * mockserver.pipeline._SCRAMBLE
        options = Options(run=run, worker=worker)
        assert request_id(options, seq, lane) == "req_%032x" % (
            whole & mockserver.pipeline._ID_SPACE
        )

    same()


# --- a stored response, kept compactly, reads as the general writer's ------------------------


def said(answer: Answer) -> dict[str, Any]:
    """The reply as the conversation's last turn, as it was built for every stored response."""
    c, env = answer.rendered.choices[0], answer.env
    turn: dict[str, Any] = {"role": "assistant", "content": c.content}
    if c.tool_calls:
        turn["tool_calls"] = [
            {"id": env.call_id(scripted, 0, k), "type": "function",
             "function": {"name": name, "arguments": args}}
            for k, (scripted, name, args) in enumerate(c.tool_calls)
        ]  # fmt: skip
    return turn


@settings(max_examples=200, deadline=None)
@given(stream=st.booleans(), reply=replies, data=st.data())
def test_a_stored_response_reads_as_the_general_writers_body_and_conversation(
    stream: bool, reply: dict[str, Any], data: st.DataObject
) -> None:
    """A stored response keeps the request's turns, the reply and, for a stream, the compiled
    body's values: read (``GET``, ``previous_response_id``, another process), it is the body
    the general writer gives and the conversation the request and the reply make."""
    protocol = PROTOCOLS["responses"]
    scenario = load_data([{"reply": reply}])[0]
    renderer = Renderer()
    for created in data.draw(st.lists(st.integers(0, 2**40), min_size=3, max_size=4)):
        raw, target = data.draw(requests("responses", stream))
        answer = answer_to(protocol, raw, target, scenario, renderer, created)
        general = protocol.body(replace(answer, wire={}))
        # as the pipeline gives them: a plain reply's body, a compiled stream's values
        stored = protocol.stored(answer, raw, None if stream else general,
                                 values(protocol, answer) if stream else None)  # fmt: skip
        request = answer.request
        if request.body.get("store") is False:
            assert stored is None
            continue
        assert stored is not None
        assert stored.body == general
        assert 0 < stored.size <= len(general)  # what the store counts: the body but its values
        turns = request.messages[1:] if request.body.get("instructions") else request.messages
        assert stored.messages == (*turns, said(answer))
        assert stored.messages is stored.messages  # made once
        copy = pickle.loads(pickle.dumps(stored))  # what ``--workers`` sends
        assert type(copy) is Stored
        assert (copy.id, copy.messages, copy.body) == (stored.id, stored.messages, general)
        # as the step's fast path keeps one, plain or streamed: the compiled plain body and
        # this request's values, no body (``Pipeline._fill``)
        mold = compiled_body(protocol, answer, now=True)
        if mold is None:
            continue
        env = answer.env
        fast = protocol.kept(request, raw, answer.rendered, env.id, env.call_id_seed, None,
                             mold, values(protocol, answer))  # fmt: skip
        assert fast is not None
        assert fast._body is None  # the values, not the body
        if answer.rendered.cached:  # the request's bytes, not its parsed turns (no context)
            assert fast._turns is raw
        assert (fast.id, fast.body, fast.messages) == (stored.id, general, stored.messages)
        assert fast.size == mold.size <= len(general)


def test_a_templated_replys_stored_copy_keeps_its_turn_not_its_choice() -> None:
    """A reply rendered for one request (a template's) has a choice of its own, cut into
    stream pieces: its stored copy makes the reply's turn at once and keeps that instead."""
    protocol = PROTOCOLS["responses"]
    scenario = load_data([{"reply": {"content": "You said {{ last_user }}"}}])[0]
    raw, target = plain_request("responses", True, 0)
    answer = answer_to(protocol, raw, target, scenario, Renderer(), 1000)
    stored = protocol.stored(answer, raw, None, None)
    assert stored is not None
    assert stored._messages == (*answer.request.messages, said(answer))  # made at once
    assert stored.body == protocol.body(replace(answer, wire={}))
