"""The shared store keeps the promises of one process: the same flows, through HTTP, against
one process with its state in-process (``LocalStore``), the same through the shared strategy
(``SharedStore`` over ``LocalBackend``), and (further down) several processes sharing one
owner."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver import MockServer, Options
from mockserver.core.errors import APIError
from mockserver.scenarios.ratelimit import Budgets, RateLimit
from mockserver.state.shared import Backend, LocalBackend, SharedStore

AUTH = {"Authorization": "Bearer sk-test"}
SCENARIOS = """
scenarios:
  - name: talk
    match: {last_user: {contains: talk}}
    steps:
      - reply: {content: "step 1"}
      - reply: {content: "step 2"}
      - reply: {content: "step 3"}
  - name: budget
    match: {last_user: {contains: budget}}
    rate_limit: {requests: 3, per: 60}
    reply: {content: "within budget"}
  - name: flaky
    match: {last_user: {contains: flaky}}
    fault: {kind: malformed, nth: 2}
    reply: {content: "fine"}
  - name: plain
    reply: {content: "plain"}
"""


def chat(url: str, text: str, **headers: str) -> httpx.Response:
    body = {"model": "gpt-4", "messages": [{"role": "user", "content": text}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={**AUTH, **headers})


def content(reply: httpx.Response) -> Any:
    assert reply.status_code == 200, reply.text
    return reply.json()["choices"][0]["message"]["content"]


@pytest.fixture(params=["in-process", "local-shared"])
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    store = SharedStore(LocalBackend()) if request.param == "local-shared" else None
    with MockServer([SCENARIOS], store=store) as mock:
        yield mock.url


Urls = str | Sequence[str]


def rotate(urls: Urls) -> Callable[[], str]:
    """Each call the next of several servers (replicas that must behave as one)."""
    turn = itertools.cycle([urls] if isinstance(urls, str) else urls)
    return lambda: next(turn)


def check_conversation(urls: Urls) -> None:
    url = rotate(urls)
    assert [content(chat(url(), "talk to me")) for _ in range(4)] == [
        "step 1", "step 2", "step 3", "step 3"
    ]  # fmt: skip
    assert content(chat(url(), "talk again")) == "step 1"  # another conversation


def check_budget(urls: Urls, calls: int = 6) -> None:
    url = rotate(urls)
    statuses = [chat(url(), f"budget {i}").status_code for i in range(calls)]
    assert statuses.count(200) == 3, statuses
    assert statuses.count(429) == calls - 3


def check_nth_fault(urls: Urls, calls: int = 4) -> None:
    url = rotate(urls)
    bodies = [chat(url(), "flaky").text for _ in range(calls)]
    whole = [body.endswith("}") for body in bodies]  # the fault cuts the body in half
    assert whole == [True, False] + [True] * (calls - 2)


def check_admin(urls: Urls, calls: int = 6) -> None:
    url = rotate(urls)
    assert httpx.post(f"{url()}/_mock/reset").json() == {"reset": "all"}
    for i in range(calls):
        content(chat(url(), f"hello {i}"))
    entries = httpx.get(f"{url()}/_mock/journal").json()["entries"]
    assert [e["body"]["messages"][0]["content"] for e in entries] == [
        f"hello {i}" for i in range(calls)
    ]
    put = httpx.put(
        f"{url()}/_mock/scenarios", content="- {name: new, reply: {content: replaced}}\n"
    )
    assert [s["name"] for s in put.json()["scenarios"]] == ["new"]
    assert {content(chat(url(), f"x {i}")) for i in range(calls)} == {"replaced"}
    assert httpx.delete(f"{url()}/_mock/journal").json() == {"entries": []}


class Events:
    """``/_mock/events`` read as a client does: one streaming connection, event by event."""

    def __init__(self, url: str, last: int | None = None) -> None:
        headers = {} if last is None else {"Last-Event-ID": str(last)}
        self.client = httpx.Client(timeout=10)
        self.stream = self.client.stream("GET", f"{url}/_mock/events", headers=headers)
        self.response = self.stream.__enter__()
        if self.response.status_code != 200:
            body = self.response.read()
            self.close()
            raise AssertionError(f"/_mock/events: {self.response.status_code} {body!r}")
        self.lines = self.response.iter_lines()

    def take(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` events but keep-alives: ``{"type", "id", "data"}``."""
        out: list[dict[str, Any]] = []
        event: dict[str, Any] = {}
        for line in self.lines:
            if line.startswith("event: "):
                event["type"] = line[7:]
            elif line.startswith("id: "):
                event["id"] = int(line[4:])
            elif line.startswith("data: "):
                event["data"] = json.loads(line[6:])
            elif not line and event:
                out.append(event)
                event = {}
                if len(out) == n:
                    break
        return out

    def close(self) -> None:
        self.stream.__exit__(None, None, None)
        self.client.close()


def check_live_journal(urls: Urls, calls: int = 8) -> None:
    """A viewer on one process sees every process's requests as they come, each once, numbered
    in order; each entry opens from any process; a reset is seen live; a viewer that comes
    back resumes after the last entry it saw."""
    url = rotate(urls)
    httpx.post(f"{url()}/_mock/reset")
    viewer = Events(url())
    try:
        assert [e["type"] for e in viewer.take(1)] == ["hello"]
        workers = set()
        for i in range(calls):
            reply = chat(url(), f"live {i}")
            assert reply.status_code == 200, reply.text
            workers.add(reply.headers.get("x-mock-worker"))
        got = viewer.take(calls)
        assert [e["data"]["last_user"] for e in got] == [f"live {i}" for i in range(calls)]
        assert [e["id"] for e in got] == [e["data"]["seq"] for e in got]
        assert [e["id"] for e in got] == sorted({e["id"] for e in got})
        for event in got:
            entry = httpx.get(f"{url()}/_mock/journal/{event['id']}")
            assert entry.status_code == 200, entry.text
            assert entry.json()["last_user"] == event["data"]["last_user"]
            assert entry.json()["request_id"].startswith("req_")
        assert httpx.post(f"{url()}/_mock/reset?what=journal").status_code == 200
        (cleared,) = viewer.take(1)
        assert cleared["type"] == "cleared"
    finally:
        viewer.close()
    content(chat(url(), "after the clear"))
    back = Events(url(), last=cleared["id"])
    try:
        hello, news = back.take(2)
        assert hello["data"]["resumed"] is True
        assert (news["type"], news["data"]["last_user"]) == ("entry", "after the clear")
    finally:
        back.close()
    if not isinstance(urls, str) or "x-mock-worker" in chat(url(), "x").headers:
        assert len(workers) > 1, "every request went to one process: nothing was shown"


LONG_SYSTEM = " ".join(f"word{i % 50}" for i in range(1500))


def check_prompt_cache(urls: Urls) -> None:
    """(``--prompt-cache``) What one process's request wrote, another's reads: the second
    sending of a long prompt has cached tokens whichever process answers it."""
    url = rotate(urls)
    body = {"model": "gpt-4o", "messages": [{"role": "system", "content": LONG_SYSTEM},
                                             {"role": "user", "content": "cache me"}]}  # fmt: skip
    cached = []
    for _ in range(3):
        reply = httpx.post(f"{url()}/v1/chat/completions", json=body, headers=AUTH)
        assert reply.status_code == 200, reply.text
        cached.append(reply.json()["usage"]["prompt_tokens_details"]["cached_tokens"])
    assert cached[0] == 0
    assert cached[1] == cached[2] >= 1024


def check_previous_response(urls: Urls) -> None:
    url = rotate(urls)
    first = httpx.post(
        f"{url()}/v1/responses", json={"model": "gpt-4", "input": "talk to me, responses"},
        headers=AUTH,
    )  # fmt: skip
    assert first.status_code == 200, first.text
    rid = first.json()["id"]
    for _ in range(3):  # whichever process answers, it finds the stored response
        again = httpx.get(f"{url()}/v1/responses/{rid}", headers=AUTH)
        assert again.status_code == 200, again.text
    follow = httpx.post(
        f"{url()}/v1/responses",
        json={"model": "gpt-4", "input": "and then?", "previous_response_id": rid},
        headers=AUTH,
    )
    assert follow.status_code == 200, follow.text


def test_conversation_steps_in_order(server: str) -> None:
    check_conversation(server)


def test_budget_admits_its_requests(server: str) -> None:
    check_budget(server)


def test_nth_fault_fires_once(server: str) -> None:
    check_nth_fault(server)


def test_admin_and_journal(server: str) -> None:
    check_admin(server)


def test_live_journal(server: str) -> None:
    check_live_journal(server)


def test_prompt_cache() -> None:
    for store in (None, SharedStore(LocalBackend())):
        with MockServer([SCENARIOS], options=Options(prompt_cache=True), store=store) as mock:
            check_prompt_cache(mock.url)


def test_previous_response_id(server: str) -> None:
    check_previous_response(server)


def test_reset_rewinds_shared_sequences(server: str) -> None:
    assert content(chat(server, "talk")) == "step 1"
    httpx.post(f"{server}/_mock/reset?what=sequences")
    assert content(chat(server, "talk")) == "step 1"


def test_the_shared_path_keeps_nothing_in_process() -> None:
    """With a store, positions, windows, counters and stored responses are the store's."""
    backend = LocalBackend()
    with MockServer([SCENARIOS], store=SharedStore(backend)) as mock:
        check_conversation(mock.url)
        check_budget(mock.url)
        check_nth_fault(mock.url)
        check_previous_response(mock.url)
        state = mock.state
        assert not state.scenarios._positions
        assert len(state.journal) == 0
    tables = backend.tables
    assert len(tables.positions) == 2 + 1  # two chat conversations, one Responses one
    assert list(tables.faults.values()) == [4]
    assert len(tables.windows) == 1
    assert len(tables.responses) == 2


# Several processes: ``serve --workers N``, a real supervisor, real sockets.


def start_serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--quiet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("mockserver listening on "):
        proc.kill()
        raise AssertionError(f"serve did not start: {line!r} {proc.communicate()[1]}")
    return proc, line.split()[3].removesuffix("/v1")


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, and the process must stop cleanly; its stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shared") / "scenarios.yaml"
    path.write_text(SCENARIOS)
    return path


@pytest.fixture(params=[2, 3])
def workers(request: pytest.FixtureRequest, scenario_file: Path) -> Iterator[str]:
    proc, url = start_serve("--workers", str(request.param), "--scenarios", str(scenario_file))
    try:
        yield url
    finally:
        if proc.poll() is None:
            stop(proc)


def test_workers_conversation_steps_in_order(workers: str) -> None:
    seen = {chat(workers, "hello").headers["x-mock-worker"] for _ in range(20)}
    assert len(seen) > 1  # a new connection each time: the kernel spreads them
    check_conversation(workers)


def test_workers_budget_admits_n_in_total(workers: str) -> None:
    check_budget(workers, calls=9)


def test_workers_nth_fault_fires_once(workers: str) -> None:
    check_nth_fault(workers, calls=8)


def test_workers_admin_and_journal_see_every_request(workers: str) -> None:
    check_admin(workers, calls=12)


def test_workers_live_journal_shows_every_worker(workers: str) -> None:
    check_live_journal(workers, calls=12)


def test_workers_share_the_prompt_cache(scenario_file: Path) -> None:
    proc, url = start_serve("--workers", "2", "--prompt-cache", "--scenarios", str(scenario_file))
    try:
        check_prompt_cache(url)
    finally:
        stop(proc)


def test_workers_journal_example(workers: str) -> None:
    """docs/scaling.md's script, against a served mock with workers."""
    from tests.docs import example

    exec(example("scaling-journal"), {"url": workers})


def test_workers_previous_response_id(workers: str) -> None:
    check_previous_response(workers)


def test_workers_reset_reaches_every_worker(workers: str) -> None:
    for _ in range(6):
        content(chat(workers, "talk"))
    httpx.post(f"{workers}/_mock/reset?what=sequences")
    assert content(chat(workers, "talk")) == "step 1"


def test_workers_concurrent_conversation_counts_every_request(scenario_file: Path) -> None:
    """Many clients at once over keep-alive connections: no position is lost or repeated."""
    proc, url = start_serve("--workers", "2", "--scenarios", str(scenario_file))
    try:
        httpx.put(
            f"{url}/_mock/scenarios",
            content="- {name: n, after_last: stop, steps: "
            + str([{"reply": {"content": str(i)}} for i in range(40)])
            + "}\n",
        ).raise_for_status()

        async def many() -> list[str]:
            async def one() -> str:
                async with httpx.AsyncClient() as client:  # its own connection
                    body = {"model": "gpt-4", "messages": [{"role": "user", "content": "go"}]}
                    reply = await client.post(f"{url}/v1/chat/completions", json=body, headers=AUTH)
                    return str(content(reply))

            return list(await asyncio.gather(*(one() for _ in range(40))))

        answers = asyncio.run(many())
        assert sorted(answers, key=int) == [str(i) for i in range(40)]
        assert chat(url, "go").status_code == 404  # all 40 steps used, by both workers
        workers = {e["worker"] for e in httpx.get(f"{url}/_mock/journal").json()["entries"]}
        assert workers == {0, 1}
    finally:
        stop(proc)


def test_workers_reload_edited_files_each(tmp_path: Path) -> None:
    """Every worker watches the files: an edit reaches all of them, and sequences start afresh
    (positions are named by the set's digest)."""
    path = tmp_path / "scenarios.yaml"
    path.write_text(SCENARIOS)
    proc, url = start_serve("--workers", "2", "--scenarios", str(path), "--reload-interval", "0.05")
    try:
        assert [content(chat(url, "talk")) for _ in range(2)] == ["step 1", "step 2"]
        path.write_text(SCENARIOS.replace("step 1", "first, edited"))
        deadline = time.monotonic() + 10
        fresh = 0
        while True:  # new conversations, on new connections, until every worker has reloaded
            answers = [content(chat(url, f"talk {fresh + i}")) for i in range(8)]
            fresh += 8
            if set(answers) == {"first, edited"}:
                break
            assert time.monotonic() < deadline, answers
            time.sleep(0.05)
        time.sleep(0.3)  # six reload intervals: the other worker has looked too
        assert [content(chat(url, "talk")) for _ in range(3)] == [
            "first, edited",
            "step 2",
            "step 3",
        ]
    finally:
        stop(proc)


# The owners' budget rule is the in-process one.

Call = tuple[int, int, float, int]  # which slot, prompt tokens, seconds later, tokens spent
calls = st.lists(
    st.tuples(
        st.integers(0, 2), st.integers(0, 40), st.sampled_from([0.0, 0.5, 7.0]),
        st.integers(0, 30),
    ),
    max_size=40,
)  # fmt: skip


def local_outcomes(limit: RateLimit, script: list[Call]) -> list[tuple[str, int, int]]:
    budgets, now, out = Budgets(), 1000.0, []
    for slot, prompt, later, spent in script:
        now += later
        try:
            ticket = budgets.admit(limit, f"key{slot}", "gpt-4", prompt, now)
        except APIError as refusal:
            out.append((refusal.type or "", -1, -1))
            continue
        ticket.spend(spent)
        out.append(("", ticket.window.requests, ticket.window.tokens))
    return out


async def shared_outcomes(
    shared: Backend, limit: RateLimit, script: list[Call]
) -> list[tuple[str, int, int]]:
    now, out = 1000.0, []
    for slot, prompt, later, spent in script:
        now += later
        window = await shared.admit(f"slot{slot}", limit, prompt, now)
        if window.refused:
            out.append((window.refused, -1, -1))
            continue
        await shared.spend(f"slot{slot}", window.start, spent)
        out.append(("", window.requests, window.tokens + spent))
    return out


LIMIT = RateLimit(requests=4, tokens=100, per=1.0)


@settings(deadline=None)  # each example runs an event loop: a loaded machine stalls some
@given(calls)
def test_tables_admit_as_budgets_do(script: list[Call]) -> None:
    assert asyncio.run(shared_outcomes(LocalBackend(), LIMIT, script)) == local_outcomes(
        LIMIT, script
    )
