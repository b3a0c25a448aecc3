"""The inspector's data routes through aiohttp on real sockets, with the ``openai`` SDK sending.

``/_mock/events``: backlog then live, in recording order; resume by ``Last-Event-ID`` without
losing or doubling; a slow viewer is dropped, never waited for; shutdown is not held up.
``/_mock/explain``: the answer and every other scenario's why, with no state moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mockserver import Options, create_app, load_data, load_text
from mockserver.inspector import views as inspector
from mockserver.protocols.chat import parse_chat
from mockserver.scenarios.matching import ScenarioSet
from mockserver.serving import make_runner
from mockserver.state.journal import Entry
from mockserver.state.live import STATE, State

SCENARIOS: list[dict[str, Any]] = [
    {
        "name": "weather",
        "match": {"last_user": {"contains": "weather"}},
        "reply": {"content": "Sunny."},
    },
    {
        "name": "counting",
        "match": {"last_user": {"contains": "count"}},
        "steps": [{"reply": {"content": "one"}}, {"reply": {"content": "two"}}],
        "after_last": "stop",
    },
    {
        "name": "greeting",
        "match": {"model": "gpt-4*", "last_user": {"regex": "^hello"}},
        "reply": {"content": "Hello!"},
    },
    {
        "name": "slow",
        "match": {"last_user": "slow"},
        "delay": 1,
        "reply": {"content": "Finally."},
    },
]
ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@dataclass
class Event:
    type: str
    data: Any
    id: int | None


class Events:
    """A reader of one ``/_mock/events`` response, event by event (comments skipped)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.buffer = b""

    async def next(self) -> Event | None:
        """The next event, or None at the end of the stream."""
        async with asyncio.timeout(5):
            while b"\n\n" not in self.buffer:
                chunk = await self.response.content.readany()
                if not chunk:
                    return None
                self.buffer += chunk
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        fields: dict[str, str] = {}
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if not fields:
            return await self.next()
        raw_id = fields.get("id")
        return Event(fields["event"], json.loads(fields["data"]), int(raw_id) if raw_id else None)

    async def take(self, count: int) -> list[Event]:
        out: list[Event] = []
        for _ in range(count):
            event = await self.next()
            assert event is not None, f"the stream ended after {out}"
            out.append(event)
        return out


class Gate:
    """An ``Options.sleep`` that waits until the test opens it: scripted delays without time."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.entered = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.entered.set()
        await self.open.wait()


@pytest.fixture
async def mock(aiohttp_client: ClientFactory) -> TestClient[web.Request, web.Application]:
    return await aiohttp_client(create_app(load_data(SCENARIOS), Options(quiet=True)))


def sdk(client: TestClient[web.Request, web.Application]) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=str(client.make_url("/v1")), api_key="sk-secret-key", max_retries=0
    )


async def chat(client: TestClient[web.Request, web.Application], text: str, **extra: Any) -> Any:
    async with sdk(client) as api:
        return await api.chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": text}], **extra
        )


async def connect(
    client: TestClient[web.Request, web.Application], last: int | None = None
) -> Events:
    headers = {} if last is None else {"Last-Event-ID": str(last)}
    response = await client.get("/_mock/events", headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    return Events(response)


def state_of(client: TestClient[web.Request, web.Application]) -> State:
    return client.app[STATE]


# --- /_mock/events ----------------------------------------------------------------------------


async def test_backlog_then_live_in_order(mock: TestClient[web.Request, web.Application]) -> None:
    await chat(mock, "weather?")
    await chat(mock, "hello")
    events = await connect(mock)
    hello, first, second = await events.take(3)
    assert hello.type == "hello"
    assert hello.id is None
    assert hello.data["recorded"] == 2
    assert hello.data["resumed"] is False
    assert [(e.type, e.id, e.data["scenario"]) for e in (first, second)] == [
        ("entry", 1, "weather"),
        ("entry", 2, "greeting"),
    ]
    assert first.data["last_user"] == "weather?"
    assert first.data["model"] == "gpt-4"
    assert first.data["status"] == 200
    assert first.data["api"] == "chat"
    for _ in range(3):
        with contextlib.suppress(openai.NotFoundError):
            await chat(mock, "count")
    live = await events.take(3)
    assert [(e.id, e.data["scenario"], e.data["step"], e.data["status"]) for e in live] == [
        (3, "counting", 0, 200),
        (4, "counting", 1, 200),
        (5, None, None, 404),  # used up with after_last: stop, and nothing else matches
    ]
    assert live[2].data["unmatched"] is True


async def test_resume_by_last_event_id_loses_and_doubles_nothing(
    mock: TestClient[web.Request, web.Application],
) -> None:
    await chat(mock, "weather 1")
    events = await connect(mock)
    await events.take(2)
    await chat(mock, "weather 2")
    (second,) = await events.take(1)
    events.response.close()
    await chat(mock, "weather 3")  # while the viewer is away
    await chat(mock, "weather 4")
    resumed = await connect(mock, last=second.id)
    hello, *rest = await resumed.take(3)
    assert hello.data["resumed"] is True
    assert [e.data["last_user"] for e in rest] == ["weather 3", "weather 4"]
    await chat(mock, "weather 5")
    (live,) = await resumed.take(1)
    assert (live.id, live.data["last_user"]) == (5, "weather 5")


async def test_positions_follow_recording_so_a_late_entry_is_not_lost(
    aiohttp_client: ClientFactory,
) -> None:
    """A slow request arrives first (lower seq) but is recorded last: a viewer that saw the
    fast one and resumes must still get the slow one."""
    gate = Gate()
    client = await aiohttp_client(create_app(load_data(SCENARIOS), Options(sleep=gate)))
    events = await connect(client)
    await events.take(1)
    slow = asyncio.create_task(chat(client, "slow"))
    await gate.entered.wait()  # the slow request has its seq and waits on its delay
    await chat(client, "weather")
    (fast,) = await events.take(1)
    assert fast.id == 1
    events.response.close()
    gate.open.set()
    await slow
    resumed = await connect(client, last=fast.id)
    _, late = await resumed.take(2)
    assert (late.id, late.data["scenario"]) == (2, "slow")
    assert late.data["seq"] < fast.data["seq"]


async def test_a_clear_is_pushed_and_a_missed_clear_restarts_the_view(
    mock: TestClient[web.Request, web.Application],
) -> None:
    await chat(mock, "weather")
    events = await connect(mock)
    await events.take(2)
    response = await mock.post("/_mock/reset", params={"what": "journal"})
    assert response.status == 200
    (cleared,) = await events.take(1)
    assert (cleared.type, cleared.id) == ("cleared", 1)
    events.response.close()
    await chat(mock, "weather, then cleared")  # while the viewer is away
    await mock.delete("/_mock/journal")
    await chat(mock, "weather again")
    resumed = await connect(mock, last=cleared.id)
    _, restart, entry = await resumed.take(3)
    assert restart.type == "cleared"
    assert (entry.type, entry.id, entry.data["last_user"]) == ("entry", 3, "weather again")
    # A viewer from before a restart (an id this server never gave) also starts over.
    stale = await connect(mock, last=999)
    kinds = [e.type for e in await stale.take(3)]
    assert kinds == ["hello", "cleared", "entry"]


async def test_a_slow_viewer_is_dropped_not_waited_for(
    mock: TestClient[web.Request, web.Application], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inspector, "BUFFER", 4)
    journal = state_of(mock).journal
    events = await connect(mock)
    await events.take(1)
    started = time.perf_counter()
    for n in range(10):  # back to back, no await: the viewer cannot drain in between
        entry = Entry(journal.next_seq(), 0.0, "POST", "/v1/chat/completions", f"r{n}", {})
        journal.record(entry)
    assert time.perf_counter() - started < 0.05
    assert journal._subscribers.active == set(), "the full subscriber is dropped at once"
    got = []
    while (event := await events.next()) is not None:
        got.append(event)
    assert [e.id for e in got if e.type == "entry"] == [1, 2, 3, 4]
    assert got[-1].type == "overflow"
    assert "fell more than 4 entries behind" in got[-1].data["message"]
    resumed = await connect(mock, last=4)
    rest = await resumed.take(7)
    assert [e.id for e in rest[1:]] == [5, 6, 7, 8, 9, 10]


async def until(check: Callable[[], bool]) -> None:
    """Poll ``check``, for server state that has no event to wait on."""
    async with asyncio.timeout(5):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


async def test_a_stuck_viewer_is_cut_after_the_write_timeout(
    mock: TestClient[web.Request, web.Application], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A viewer that stops reading: once the socket is full, its write times out and the
    server cuts it; recording never waited on it."""
    monkeypatch.setattr(inspector, "WRITE_TIMEOUT", 0.2)
    monkeypatch.setattr(inspector, "BUFFER", 1_000_000)  # so only the timeout can cut it
    journal = state_of(mock).journal
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, never read
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (mock.host, mock.port))
    await loop.sock_sendall(sock, b"GET /_mock/events HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: bool(journal._subscribers.active))
    big = "/" + "x" * 65536  # each event carries 64 KiB: the socket fills within a few
    slowest = 0.0
    async with asyncio.timeout(10):
        while journal._subscribers.active:
            started = time.perf_counter()
            for n in range(8):
                journal.record(Entry(journal.next_seq(), 0.0, "POST", big, f"r{n}", {}))
            slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.01)
    await until(lambda: not mock.app[inspector.STREAMS])
    assert slowest < 0.05, "recording waited on the stuck viewer"
    sock.close()


async def test_open_pages_do_not_hold_up_shutdown() -> None:
    app = create_app(load_data(SCENARIOS), Options(shutdown_timeout=5))
    runner = make_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:
        responses = [await session.get(f"http://127.0.0.1:{port}/_mock/events") for _ in range(3)]
        for response in responses:
            assert (await Events(response).take(1))[0].type == "hello"
        started = time.perf_counter()
        await runner.cleanup()
        assert time.perf_counter() - started < 1.0, "shutdown waited for the open streams"
        for response in responses:
            assert await Events(response).next() is None
    assert app[inspector.STREAMS] == {}


# --- /_mock/explain ---------------------------------------------------------------------------


async def explain(client: TestClient[web.Request, web.Application], payload: Any) -> Any:
    response = await client.post("/_mock/explain", json=payload)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_explain_names_the_answer_and_every_other_why(
    mock: TestClient[web.Request, web.Application],
) -> None:
    body = {"model": "gpt-4", "messages": [{"role": "user", "content": "hello, weather?"}]}
    out = await explain(mock, body)  # a bare chat body
    assert out["answer"] == {"scenario": "weather", "where": "<inline>", "step": 0, "steps": 1}
    verdicts = {v["name"]: v for v in out["scenarios"]}
    assert verdicts["weather"]["verdict"] == "answers"
    assert verdicts["greeting"]["verdict"] == "shadowed"  # matches, but weather is tried first
    assert verdicts["counting"]["failed"] == ["last_user contains 'count', got 'hello, weather?'"]
    enveloped = await explain(mock, {"api": "chat", "body": {**body, "model": "o3"}})
    greeting = {v["name"]: v for v in enveloped["scenarios"]}["greeting"]
    assert greeting["verdict"] == "fails"
    assert greeting["failed"] == ["model 'gpt-4*', got 'o3'"]


async def hits(client: TestClient[web.Request, web.Application]) -> dict[str, int]:
    data = await (await client.get("/_mock/scenarios/detail")).json()
    return {s["name"]: s["hits"] for s in data["scenarios"]}


async def test_explain_moves_no_sequence_and_counts_no_hit(
    mock: TestClient[web.Request, web.Application],
) -> None:
    body = {"model": "gpt-4", "messages": [{"role": "user", "content": "count"}]}
    for _ in range(3):
        assert (await explain(mock, body))["answer"]["step"] == 0
    assert (await hits(mock))["counting"] == 0
    assert (await chat(mock, "count")).choices[0].message.content == "one"
    assert (await explain(mock, body))["answer"]["step"] == 1
    assert (await chat(mock, "count")).choices[0].message.content == "two"
    used_up = await explain(mock, body)
    assert used_up["answer"] is None
    assert {v["name"]: v["verdict"] for v in used_up["scenarios"]}["counting"] == "used_up"
    assert "no scenario matched" in used_up["unmatched"]
    assert (await hits(mock))["counting"] == 2


async def test_hits_count_replayed_replies_too(
    mock: TestClient[web.Request, web.Application],
) -> None:
    """Identical requests within a second are answered from the memo, past the matcher:
    the count must still be every request the scenario answered, as ``assert_called`` sees."""
    for _ in range(5):
        await chat(mock, "weather?")
    assert len(state_of(mock).memos) == 1, "the memo path is what this test is about"
    assert (await hits(mock))["weather"] == 5
    await mock.post("/_mock/reset", params={"what": "journal"})
    assert (await hits(mock))["weather"] == 0


async def test_explain_a_journal_entry_with_its_headers(aiohttp_client: ClientFactory) -> None:
    tenant = [{"name": "acme", "match": {"headers": {"x-tenant": "acme"}}, "reply": {}}]
    client = await aiohttp_client(create_app(load_data(tenant)))
    async with sdk(client) as api:
        await api.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Tenant": "acme"},
        )
    assert (await explain(client, {"seq": 1}))["answer"]["scenario"] == "acme"
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    without = await explain(client, {"body": body})
    assert without["scenarios"][0]["failed"] == ["header x-tenant exact 'acme', got None"]
    with_header = await explain(client, {"body": body, "headers": {"X-TENANT": "acme"}})
    assert with_header["answer"]["scenario"] == "acme"


async def test_explain_reports_a_rejected_body_and_refuses_bad_input(
    mock: TestClient[web.Request, web.Application],
) -> None:
    rejected = await explain(mock, {"body": {"model": "gpt-4", "messages": []}})
    assert rejected["rejected"]["status"] == 400
    assert rejected["rejected"]["param"] == "messages"
    for payload, status in (
        ({"api": "completions", "body": {"input": "x"}}, 400),
        ({"seq": 12345}, 404),
        ([1, 2], 400),
    ):
        response = await mock.post("/_mock/explain", json=payload)
        assert response.status == status, payload
        assert "error" in await response.json()
    assert (await mock.post("/_mock/explain", data=b"{nope")).status == 400


async def test_explain_shows_what_the_profile_adjusts(
    mock: TestClient[web.Request, web.Application],
) -> None:
    body = {"model": "gpt-4", "messages": [{"role": "user", "content": "weather"}], "top_p": 5}
    assert (await explain(mock, body))["adjusted"] == ["top_p=1"]


# --- entries, scenario YAML, scenarios ----------------------------------------------------------


async def test_an_entry_in_full_with_why_it_matched_nothing(
    mock: TestClient[web.Request, web.Application],
) -> None:
    with pytest.raises(openai.NotFoundError):
        await chat(mock, "tell me a joke")
    response = await mock.get("/_mock/journal/1")
    entry = await response.json()
    assert entry["headers"]["Authorization"] == "Bearer ***"
    assert "sk-secret-key" not in await response.text()
    assert entry["body"]["messages"][0]["content"] == "tell me a joke"
    assert entry["reply"]["error"]["code"] == "scenario_not_found"
    assert entry["api"] == "chat"
    nearest = {n["name"]: n["failed"] for n in entry["nearest"]}
    assert nearest["weather"] == ["last_user contains 'weather', got 'tell me a joke'"]
    assert (await mock.get("/_mock/journal/99")).status == 404
    assert (await mock.get("/_mock/journal/x1")).status == 400


async def test_an_entry_becomes_scenario_yaml_that_matches_it(
    mock: TestClient[web.Request, web.Application],
) -> None:
    async with sdk(mock) as api:
        with pytest.raises(openai.NotFoundError):
            await api.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": 'Plan: "Paris"\nthen: Tokyo #1'}],
                tools=[{"type": "function", "function": {"name": "book_trip"}}],
            )
    response = await mock.get("/_mock/journal/1/scenario")
    assert response.content_type == "application/yaml"
    text = await response.text()
    assert text.startswith("# From journal entry #1")
    (scenario,) = load_text(text)
    assert scenario.name == "from-request-1"
    entry = state_of(mock).journal.entries[0]
    assert entry.request is not None
    assert ScenarioSet([scenario]).resolve(entry.request).scenario is scenario
    other = parse_chat(
        json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}).encode()
    )
    assert ScenarioSet([scenario]).explain(other)[0].failed


async def test_an_invalid_request_has_no_scenario(
    mock: TestClient[web.Request, web.Application],
) -> None:
    response = await mock.post(
        "/v1/chat/completions", json={"model": "gpt-4"}, headers={"Authorization": "Bearer k"}
    )
    assert response.status == 400
    response = await mock.get("/_mock/journal/1/scenario")
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "entry_not_valid"


async def test_scenarios_with_hits_positions_and_reload_problems(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "scenarios:\n"
        "  - name: counting\n"
        "    match: {last_user: {contains: count}, model: gpt-4}\n"
        "    steps: [{reply: {content: one}}, {reply: {content: two}}, {reply: {content: three}}]\n"
    )
    options = Options(watch=(str(path),), reload_interval=3600)
    client = await aiohttp_client(create_app(load_data(SCENARIOS[:1]), options))
    state = state_of(client)
    state.replace(load_text(path.read_text(), str(path)))
    await chat(client, "count sheep")
    await chat(client, "count sheep")
    data = await (await client.get("/_mock/scenarios/detail")).json()
    (counting,) = data["scenarios"]
    assert counting["where"] == f"{path}:2"
    assert counting["conditions"] == ["last_user contains 'count'", "model 'gpt-4'"]
    assert (counting["hits"], counting["steps"], counting["conversations"]) == (2, 3, 1)
    assert counting["positions"] == [{"conversation": "count sheep", "used": 2, "of": 3}]
    assert data["reload_problems"] == []
    assert data["watching"] is True
    path.write_text("scenarios:\n  - name: broken\n    reply: {contnet: x}\n")
    assert state.watcher is not None
    await state.watcher.learn_includes()
    path.write_text("scenarios:\n  - name: broken\n    reply: {contnet: oops}\n")
    assert await state.watcher.check() is False
    data = await (await client.get("/_mock/scenarios/detail")).json()
    assert "contnet" in data["reload_problems"][0]
    assert [s["name"] for s in data["scenarios"]] == ["counting"]


# --- the page and the admin rules ---------------------------------------------------------------


async def test_the_page_is_a_static_shell_with_a_strict_policy(
    mock: TestClient[web.Request, web.Application],
) -> None:
    page = await mock.get("/_mock/ui")
    assert page.status == 200
    assert page.content_type == "text/html"
    html = await page.text()
    assert '<script src="/_mock/ui/inspector.js"' in html
    assert "http://" not in html
    assert "https://" not in html
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    for name, kind in (("inspector.js", "text/javascript"), ("inspector.css", "text/css")):
        asset = await mock.get(f"/_mock/ui/{name}")
        assert (asset.status, asset.content_type) == (200, kind)
        assert "https://" not in await asset.text()
    for missing in ("nope.js", "..%2Finspector.py", "index.py"):
        assert (await mock.get(f"/_mock/ui/{missing}")).status == 404


async def test_the_admin_rules_hold(aiohttp_client: ClientFactory) -> None:
    guarded = await aiohttp_client(create_app([], Options(admin_token="tok")))
    assert (await guarded.get("/_mock/ui")).status == 200  # the shell: no data, no token
    for method, path in (("GET", "/_mock/events"), ("POST", "/_mock/explain"),
                         ("GET", "/_mock/scenarios/detail"), ("GET", "/_mock/journal/1")):  # fmt: skip
        response = await guarded.request(method, path, json={})
        assert response.status == 401, path
        assert (await response.json())["error"]["code"] == "invalid_admin_token"
    events = await guarded.get("/_mock/events", headers={"Authorization": "Bearer tok"})
    assert events.status == 200
    events.close()
    off = await aiohttp_client(create_app([], Options(admin_enabled=False)))
    assert (await off.get("/_mock/ui")).status == 403
    assert (await off.get("/_mock/ui/inspector.js")).status == 403
    assert (await off.get("/_mock/events")).status == 403
