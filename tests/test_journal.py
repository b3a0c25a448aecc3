"""The compact journal entry: whatever reads it sees what the request path built.

A journal entry keeps the request's bytes, its headers as aiohttp read them and scalars; its
body, neutral request and reply summary are built when first read. Each property test sends real
requests over real sockets (every protocol, plain and streamed, memo hits, errors, unmatched,
faults, rate limits, rejected bodies) and reads every entry through every reader: the
``Entry`` objects the pytest plugin hands out, ``/_mock/journal``, the inspector's entry, its
scenario and its live feed, explain, the log line, and a shared journal (``SharedStore``, the
path ``--workers`` and Redis take). Each must equal what the request path held before the
journal compacted the entry (a snapshot taken then), and the parsed request must equal what
parsing the bytes sent gives.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from mockserver import MockServer, Options
from mockserver.core.request import Request
from mockserver.core.secrets import redact_headers
from mockserver.inspector.views import explain_parsed, scenario_for, summary
from mockserver.pipeline import log_entry
from mockserver.protocols import Target
from mockserver.state.journal import Entry, Kept, found_empty
from mockserver.state.shared import LocalBackend, SharedStore
from mockserver.state.store import LocalStore

from .conftest import Clock
from .test_shared import Events

SCENARIOS = """
scenarios:
  - name: tools
    match: {last_user: {contains: weather}}
    reply:
      content: "Looking it up."
      tool_calls:
        - {name: get_weather, arguments: {city: Paris}}
  - name: broken
    match: {last_user: {contains: broken}}
    error: {status: 503, message: "Overloaded."}
  - name: flaky
    match: {last_user: {contains: flaky}}
    fault: {kind: malformed}
    reply: {content: "Half of this arrives."}
  - name: cut
    match: {last_user: {contains: cut}}
    fault: {kind: stream_error, after_chunks: 1}
    reply: {content: "A few words, then an error."}
  - name: limited
    match: {last_user: {contains: limited}}
    rate_limit: {requests: 1, per: 60}
    reply: {content: "Once a minute."}
  - name: echo
    match: {last_user: {contains: echo}}
    reply: {content: "You said {{ last_user }}."}
  - name: hello
    match: {last_user: {contains: hello}}
    reply: {content: "Hello there."}
"""

APIS = ("chat", "responses", "messages", "gemini", "embeddings")
WORDS = ("hello", "weather", "broken", "flaky", "cut", "limited", "echo", "nothing")
KINDS = ("ok", "ok", "repeat", "followup", "no-auth", "bad-json")
KEY = "sk-journal-secret-0123456789"
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


class Sent:
    """One request as the test sent it: enough to parse it again as the server did."""

    def __init__(self, api: str, response: httpx.Response) -> None:
        self.api = api
        self.raw = response.request.content
        self.path = response.request.url.path
        self.query = dict(response.request.url.params)
        self.headers = CIMultiDictProxy(
            CIMultiDict((k.decode(), v.decode()) for k, v in response.request.headers.raw)
        )
        self.status = response.status_code
        self.response = response


def build(api: str, text: str, stream: bool, previous: str | None) -> tuple[str, dict[str, Any]]:
    """The path and body of a request of ``api`` saying ``text``."""
    if api == "chat":
        body: dict[str, Any] = {"model": "gpt-4o", "stream": stream, "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]}  # fmt: skip
        if "weather" in text:
            body["tools"] = [WEATHER_TOOL]
        return "/v1/chat/completions", body
    if api == "responses":
        body = {"model": "gpt-4o", "input": text, "instructions": "Be brief.", "stream": stream}
        if previous is not None:
            body["previous_response_id"] = previous
        return "/v1/responses", body
    if api == "messages":
        return "/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream,
                                "messages": [{"role": "user", "content": text}]}  # fmt: skip
    if api == "gemini":
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"/v1beta/models/gemini-2.5-flash:{method}", {
            "contents": [{"role": "user", "parts": [{"text": text}]}]
        }
    return "/v1/embeddings", {"model": "text-embedding-3-small", "input": text}


def credentials(api: str) -> dict[str, str]:
    if api == "messages":
        return {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    if api == "gemini":
        return {"x-goog-api-key": KEY}
    return {"Authorization": f"Bearer {KEY}"}


Call = tuple[str, bool, str, str, str]

calls = st.lists(
    st.tuples(
        st.sampled_from(APIS),
        st.booleans(),
        st.sampled_from(WORDS),
        st.text(st.sampled_from(list('ab é€"\\{}:\n')), max_size=12),
        st.sampled_from(KINDS),
    ),
    min_size=1,
    max_size=5,
)


def send(client: httpx.Client, url: str, call: Call) -> list[Sent]:
    """One call of the strategy: one request, or a few (a repeat, a follow-up)."""
    api, stream, word, extra, kind = call
    stream = stream and api != "embeddings"
    text = f"{word} {extra}"
    headers = {"X-Trace": "t-1", **({} if kind == "no-auth" else credentials(api))}
    path, body = build(api, text, stream, None)
    if kind == "bad-json":
        got = client.post(url + path, content=b'{"oops": ' + text.encode(), headers=headers)
        return [Sent(api, got)]
    sent = [Sent(api, client.post(url + path, json=body, headers=headers))]
    if kind == "repeat":  # the second is remembered, the third a memo hit
        sent += [Sent(api, client.post(url + path, json=body, headers=headers)) for _ in "ab"]
    if kind == "followup" and api == "responses":
        first = sent[0].response
        previous = "resp_unknown"  # a 400 when the first left nothing to follow
        if first.status_code == 200 and not stream and word != "flaky":
            previous = first.json()["id"]
        path, body = build(api, f"hello again {extra}", False, previous)
        sent.append(Sent(api, client.post(url + path, json=body, headers=headers)))
    return sent


class Recorder(logging.Handler):
    """The log lines' structured fields, as a JSON log formatter gets them."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "mock"):
            self.fields.append(dict(record.mock))


class Observed:
    """A server whose store snapshots each entry as the request path left it, just before it
    keeps (and compacts) it."""

    def __init__(self, server: MockServer) -> None:
        self.server = server
        self.snapshots: list[tuple[dict[str, Any], Request | None]] = []
        store = server.state.store
        assert isinstance(store, LocalStore)
        keep = store.record

        async def record(entry: Entry) -> None:
            # Read from a copy: the entry itself keeps what it had not built yet.
            self.snapshots.append((copy.deepcopy(copy.copy(entry).to_dict()), entry._request))
            await keep(entry)

        store.record = record  # type: ignore[method-assign]
        self.log = Recorder()

    def eager(self, i: int) -> Entry:
        """Entry ``i`` as the request path held it (its parsed request, not bytes)."""
        data, request = self.snapshots[i]
        return Entry.from_dict(data, request)


@pytest.fixture(scope="module")
def observed() -> Iterator[Observed]:
    options = Options(clock=Clock(), speed=0, quiet=False)
    with MockServer([SCENARIOS], options=options) as server:
        watched = Observed(server)
        logger = logging.getLogger("mockserver")
        logger.addHandler(watched.log)
        level = logger.level
        logger.setLevel(logging.INFO)
        try:
            yield watched
        finally:
            logger.removeHandler(watched.log)
            logger.setLevel(level)


@pytest.fixture(scope="module")
def shared() -> Iterator[MockServer]:
    options = Options(clock=Clock(), speed=0)
    with MockServer([SCENARIOS], options=options, store=SharedStore(LocalBackend())) as server:
        yield server


def roundtrip(data: Any) -> Any:
    """What a reader of the JSON routes gets."""
    return json.loads(json.dumps(data, default=str))


def neutral(request: Request) -> dict[str, Any]:
    """Everything a reader can see of a ``Request`` (its lazy figures computed)."""
    return {
        "api": request.api,
        "body": request.body,
        "model": request.model,
        "messages": request.messages,
        "stream": request.stream,
        "include_usage": request.include_usage,
        "n": request.n,
        "headers": list(request.headers.items()),
        "tools": request.tools,
        "tool_choice": request.tool_choice,
        "response_format": request.response_format,
        "params": dict(request.params),
        "context": request.context,
        "inputs": request.inputs,
        "files": request.files,
        "wire": dict(request.wire),
        "prompt_tokens": request.prompt_tokens,
        "last_user": request.last_user,
        "system": request.system,
        "tool_result": request.tool_result,
        "tool_names": request.tool_names,
    }


def check_entry(watched: Observed, i: int, entry: Entry, sent: Sent) -> None:
    """The entry the journal kept, read as the plugin's users read it."""
    data, eager_request = watched.snapshots[i]
    assert entry.to_dict() == data
    assert entry.headers == redact_headers(sent.headers)
    assert KEY not in json.dumps(entry.headers)
    assert entry.headers["X-Trace"] == "t-1"
    if eager_request is None:
        assert entry.request is None
        assert entry.last_user == ""
        assert entry.tool_names == []
        assert not entry.stream
        if sent.raw.startswith(b'{"oops"'):
            assert entry.body == sent.raw.decode()
        elif sent.status in (401, 403):
            assert entry.body == json.loads(sent.raw)
        return
    assert entry.request is not None
    assert neutral(entry.request) == neutral(eager_request)
    protocol = watched.server.state.protocols[sent.api]
    if not eager_request.context:  # else it was parsed with a stored response's turns
        again = protocol.parse(sent.raw, sent.headers, found_empty, Target(sent.path, sent.query))
        assert neutral(entry.request) == neutral(again)
    assert entry.body == eager_request.body
    assert entry.messages == eager_request.messages
    assert entry.last_user == eager_request.last_user
    assert entry.tool_names == eager_request.tool_names
    assert entry.stream == eager_request.stream


def read_all(watched: Observed, sent: list[Sent], follow: Events, logged: int) -> None:
    """Every reader against the snapshots."""
    server = watched.server
    url = server.url
    n = len(sent)
    assert len(watched.snapshots) == n
    entries = server.journal
    assert len(entries) == n
    live = follow.take(n)
    listed = httpx.get(f"{url}/_mock/journal").json()["entries"]
    lines = watched.log.fields[logged:]
    assert len(lines) == n
    for i, (entry, one) in enumerate(zip(entries, sent, strict=True)):
        eager = watched.eager(i)
        check_entry(watched, i, entry, one)
        assert listed[i] == roundtrip(watched.snapshots[i][0])
        detail = httpx.get(f"{url}/_mock/journal/{entry.seq}").json()
        for key, value in roundtrip(watched.snapshots[i][0]).items():
            assert detail[key] == value, key
        assert detail["last_user"] == eager.last_user
        made = httpx.get(f"{url}/_mock/journal/{entry.seq}/scenario")
        if eager.request is not None:
            assert made.text == scenario_for(eager)
        assert live[i]["data"] == roundtrip(summary(live[i]["id"], eager))
        if eager.request is not None:
            explained = httpx.post(f"{url}/_mock/explain", json={"seq": entry.seq}).json()
            assert explained == roundtrip(explain_parsed(server.state, eager.api, eager.request))
        log_entry(eager)  # the line the eager entry gives, through the same handler
        assert lines[i] == watched.log.fields.pop()


SERVER_TESTS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SERVER_TESTS
@given(calls)
def test_every_reader_sees_what_the_request_path_built(
    observed: Observed, shared: MockServer, script: list[Call]
) -> None:
    url = observed.server.url
    for server in (url, shared.url):
        assert httpx.post(f"{server}/_mock/reset").status_code == 200
    observed.snapshots.clear()
    logged = len(observed.log.fields)
    follow = Events(url)
    try:
        assert [e["type"] for e in follow.take(1)] == ["hello"]
        with httpx.Client(timeout=10) as client:
            sent = [one for call in script for one in send(client, url, call)]
            again = [one for call in script for one in send(client, shared.url, call)]
        read_all(observed, sent, follow, logged)
    finally:
        follow.close()
    # The shared journal (the supervisor's, Redis'): entries as JSON text, read back.
    mine = httpx.get(f"{url}/_mock/journal").json()["entries"]
    theirs = httpx.get(f"{shared.url}/_mock/journal").json()["entries"]
    assert [s.status for s in sent] == [s.status for s in again]
    assert shared.journal == shared.journal  # read back twice: new objects, equal
    for a, b in zip(mine, theirs, strict=True):
        for varies in ("request_id", "duration_ms", "seq"):  # each server numbers its own
            a.pop(varies), b.pop(varies)
        a["headers"].pop("Host"), b["headers"].pop("Host")  # each has its own port
        assert a == b


def test_an_entry_read_twice_is_built_once(observed: Observed) -> None:
    """The parsed view is built on first read and kept: the same objects every time."""
    url = observed.server.url
    httpx.post(f"{url}/_mock/reset")
    text = f"hello {len(observed.log.fields)}"  # new: not a memo hit
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    got = httpx.post(f"{url}/v1/chat/completions", json=body, headers=credentials("chat"))
    assert got.status_code == 200
    entry = observed.server.journal[-1]
    assert entry._body is None  # compact: the bytes, not the parsed body
    assert entry._request is None
    assert entry._reply is None
    assert entry._choice is not None  # the reply as scalars, until read
    assert entry.request is entry.request
    assert entry.body is entry.request.body
    reply = entry.reply
    assert entry._choice is None
    assert reply is entry.reply
    assert reply is not None
    assert reply["content"] == got.json()["choices"][0]["message"]["content"]


def test_a_follow_up_keeps_the_turns_it_was_parsed_with(observed: Observed) -> None:
    """A request that named a stored response (``previous_response_id``) is kept parsed: the
    store may have dropped that response by the time someone reads the entry."""
    url = observed.server.url
    httpx.post(f"{url}/_mock/reset")
    headers = credentials("responses")
    path, body = build("responses", "hello first", False, None)
    first = httpx.post(url + path, json=body, headers=headers).json()
    path, body = build("responses", "hello second", False, first["id"])
    assert httpx.post(url + path, json=body, headers=headers).status_code == 200
    entry = observed.server.journal[-1]
    assert entry.request is not None
    assert [m["content"] for m in entry.messages][:2] == ["Be brief.", "hello first"]
    assert entry.messages[-1]["content"] == "hello second"
    _, eager = observed.snapshots[-1]
    assert eager is not None
    assert neutral(entry.request) == neutral(eager)


@pytest.mark.parametrize("size", [100, 20_000])
def test_a_refused_body_shows_as_it_came(observed: Observed, size: int) -> None:
    """A body refused before it parsed shows as its text, the start of a large one only (that
    one is cut when refused, not kept whole until read)."""
    url = observed.server.url
    httpx.post(f"{url}/_mock/reset")
    raw = ("x" * size).encode()
    got = httpx.post(f"{url}/v1/chat/completions", content=raw)
    assert got.status_code == 401
    entry = observed.server.journal[-1]
    if size > 16_384:
        assert entry._raw is None
        assert entry.body == "x" * 16_384 + f"... ({size} bytes)"
    else:
        assert entry._raw == raw  # kept as bytes until read
        assert entry.body == "x" * size
    assert entry.to_dict() == observed.snapshots[-1][0]


@settings(max_examples=100)
@given(st.floats(0, 10_000, allow_nan=False), st.sampled_from(APIS), st.none() | st.integers(0, 3))
def test_an_entry_built_by_position_reads_as_one_built_by_keywords(
    seconds: float, api: str, worker: int | None
) -> None:
    """The request path builds its entry by position and keeps the time taken unrounded;
    every reader sees the entry the keywords build, its duration rounded to the microsecond,
    and a shared journal's copy (``to_dict``, ``from_dict``) reads the same again."""
    headers = {"Authorization": f"Bearer {KEY}"}
    lean = Entry(7, 1000.0, "POST", "/v1/x", "req_1", headers, api, worker)
    lean.elapsed = seconds
    plain = Entry(seq=7, time=1000.0, method="POST", path="/v1/x", request_id="req_1",
                  raw_headers=headers, api=api, worker=worker,
                  duration_ms=round(seconds * 1000, 3))  # fmt: skip
    assert lean == plain
    assert lean.to_dict() == plain.to_dict()
    assert lean.duration_ms == round(seconds * 1000, 3)
    again = Entry.from_dict(lean.to_dict())
    assert again.to_dict() == lean.to_dict()


class Model:
    """``Kept`` as it was: each entry with its weight and its position, kept in pairs."""

    def __init__(self, size: int, max_bytes: int) -> None:
        self.kept: list[tuple[int, int, int]] = []  # (position, entry, weight)
        self.size, self.max_bytes, self.recorded, self.cleared_at = size, max_bytes, 0, 0

    def record(self, entry: int, weight: int) -> int:
        self.recorded += 1
        self.kept.append((self.recorded, entry, weight))
        while self.kept and (
            len(self.kept) > self.size or sum(w for _, _, w in self.kept) > self.max_bytes
        ):
            self.kept.pop(0)
        return self.recorded

    def clear(self) -> None:
        self.kept.clear()
        self.cleared_at = self.recorded


@settings(max_examples=200)
@given(
    st.integers(1, 6),
    st.integers(0, 40),
    st.lists(st.none() | st.integers(0, 15), max_size=40),
    st.integers(-2, 45),
)
def test_positions_are_read_off_the_count_as_they_were_kept(
    size: int, max_bytes: int, script: list[int | None], since: int
) -> None:
    """The journal keeps no position per entry: they are consecutive, the newest's is
    ``recorded``. Whatever is recorded, dropped and cleared, a live viewer resuming at any
    point gets the entries, positions and bounds the kept pairs gave."""
    kept, model = Kept[int](size, max_bytes), Model(size, max_bytes)
    for n, weight in enumerate(script):
        if weight is None:
            kept.clear()
            model.clear()
        else:
            assert kept.record(n, weight) == model.record(n, weight)
        assert kept.entries == [e for _, e, _ in model.kept]
        assert kept.since(since) == [(p, e) for p, e, _ in model.kept if p > since]
        first = model.kept[0][0] if model.kept else model.recorded + 1
        assert kept.first_position == first
        assert (kept.recorded, kept.cleared_at) == (model.recorded, model.cleared_at)
        assert len(kept) == len(model.kept)
