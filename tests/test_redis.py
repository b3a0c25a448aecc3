"""``--state redis://``: separate ``serve`` processes sharing one real Redis behave as one mock.

The tests start their own ``redis-server`` (``.ci/run`` installs it when missing) and fail,
never skip, when they cannot: a skipped test would hide that nothing was shown.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from hypothesis import given, settings

from mockserver.app import create_app
from mockserver.state.live import STATE
from mockserver.state.redis_store import RedisBackend

from .test_shared import (
    LIMIT,
    SCENARIOS,
    Call,
    calls,
    chat,
    check_admin,
    check_budget,
    check_conversation,
    check_live_journal,
    check_nth_fault,
    check_previous_response,
    check_prompt_cache,
    content,
    local_outcomes,
    shared_outcomes,
    start_serve,
    stop,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throwaway redis-server on a free port, no persistence."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not installed: the Redis tests need a real server "
                "(apt-get install -y redis-server; .ci/run does it)",
                pytrace=False,
            )
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    pytest.fail(f"redis-server exited with {self.proc.returncode}")
                time.sleep(0.05)
        pytest.fail("redis-server did not answer PING within 5 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def replicas(redis_server: RedisServer, tmp_path: Path) -> Iterator[list[str]]:
    """Two separate ``serve`` processes (no common parent) on one Redis."""
    path = tmp_path / "scenarios.yaml"
    path.write_text(SCENARIOS)
    procs = [start_serve("--state", redis_server.url, "--scenarios", str(path)) for _ in "ab"]
    try:
        yield [url for _, url in procs]
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                stop(proc)


def test_conversation_advances_across_replicas(replicas: list[str]) -> None:
    check_conversation(replicas)
    ids = [chat(url, "plain").headers for url in replicas]
    assert ids[0]["x-mock-worker"] != ids[1]["x-mock-worker"]
    assert ids[0]["x-request-id"] != ids[1]["x-request-id"]  # both replicas' first plain reply


def test_budget_admits_n_across_replicas(replicas: list[str]) -> None:
    check_budget(replicas, calls=8)


def test_nth_fault_fires_once_across_replicas(replicas: list[str]) -> None:
    check_nth_fault(replicas, calls=6)


def test_admin_and_journal_across_replicas(replicas: list[str]) -> None:
    check_admin(replicas, calls=8)


def test_live_journal_across_replicas(replicas: list[str]) -> None:
    check_live_journal(replicas, calls=8)


def test_previous_response_across_replicas(replicas: list[str]) -> None:
    check_previous_response(replicas)


def test_reset_clears_all(replicas: list[str], redis_server: RedisServer) -> None:
    a, b = replicas
    check_conversation(replicas)
    check_budget(replicas)
    check_nth_fault(replicas)
    check_previous_response(replicas)
    client = redis_server.client()
    # Numbers for processes as they start and for journal entries (no reset rewinds them, so
    # a viewer's last entry number stays meaningful): not mock state.
    kept = {b"mockserver:processes", b"mockserver:journal:n", b"mockserver:journal:cleared"}
    assert len(set(client.keys("mockserver:*")) - kept) >= 5
    assert httpx.post(f"{b}/_mock/reset").json() == {"reset": "all"}
    assert set(client.keys("mockserver:*")) == kept
    assert httpx.get(f"{a}/_mock/journal").json() == {"entries": []}
    check_conversation(replicas)  # from step 1 again
    check_budget(replicas)  # a fresh window
    check_nth_fault(replicas)  # counting from 1 again


def test_a_replica_that_starts_later_adopts_admin_scenarios(
    replicas: list[str], redis_server: RedisServer
) -> None:
    a, _ = replicas
    httpx.put(f"{a}/_mock/scenarios", content="- {name: sent, reply: {content: via admin}}\n")
    httpx.post(f"{a}/_mock/scenarios", content="- {name: more, reply: {content: more}}\n")
    proc, late = start_serve("--state", redis_server.url)
    try:
        listing = httpx.get(f"{late}/_mock/scenarios").json()["scenarios"]
        assert [s["name"] for s in listing] == ["sent", "more"]
        assert content(chat(late, "hi")) == "via admin"
    finally:
        stop(proc)


def test_redis_stopped_mid_run_gives_503s_until_it_is_back(
    replicas: list[str], redis_server: RedisServer
) -> None:
    a, b = replicas
    assert content(chat(a, "talk")) == "step 1"
    redis_server.stop()
    for url, text in [(a, "talk"), (b, "talk"), (a, "plain one"), (b, "budget")]:
        reply = chat(url, text)
        assert reply.status_code == 503, reply.text
        assert reply.json()["error"]["code"] == "state_store_unavailable"
    gone = httpx.get(f"{a}/_mock/journal")
    assert gone.status_code == 503
    redis_server.start()  # back, empty (no persistence): both replicas use it again
    assert [content(chat(url, "talk")) for url in (a, b)] == ["step 1", "step 2"]


def test_prompt_cache_across_replicas(redis_server: RedisServer, tmp_path: Path) -> None:
    path = tmp_path / "scenarios.yaml"
    path.write_text(SCENARIOS)
    args = ("--state", redis_server.url, "--prompt-cache", "--scenarios", str(path))
    procs = [start_serve(*args) for _ in "ab"]
    try:
        check_prompt_cache([url for _, url in procs])
        assert redis_server.client().keys("mockserver:pc:*")
        httpx.post(f"{procs[0][1]}/_mock/reset")
        assert not redis_server.client().keys("mockserver:pc:*")
    finally:
        for proc, _ in procs:
            stop(proc)


def test_redis_down_a_request_is_logged_once_with_the_status_sent(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A stateless reply needs Redis only for its journal entry: when that fails, the client
    gets the 503, and the one log line says 503 (it said 200, then 503)."""
    path = tmp_path / "scenarios.yaml"
    path.write_text(SCENARIOS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--log-format", "json",
         "--state", redis_server.url, "--scenarios", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[3].removesuffix("/v1")
    try:
        redis_server.stop()
        reply = chat(url, "plain and stateless")
        assert reply.status_code == 503, reply.text
        assert reply.json()["error"]["code"] == "state_store_unavailable"
    finally:
        err = stop(proc)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    logged = [line for line in lines if line.get("path") == "/v1/chat/completions"]
    assert [(line["status"], line.get("outcome")) for line in logged] == [(503, "error")], logged
    assert "state store is unreachable" in logged[0]["reason"]


def test_unreachable_store_refuses_to_start(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    proc = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--state", url],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"mockserver: cannot use the state store {url}" in proc.stderr
    assert "listening" not in proc.stdout


def test_workers_on_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    """``--workers 2`` with ``--state``: the workers share Redis, not the supervisor."""
    path = tmp_path / "scenarios.yaml"
    path.write_text(SCENARIOS)
    proc, url = start_serve("--workers", "2", "--state", redis_server.url, "--scenarios", str(path))
    try:
        check_conversation(url)
        check_budget(url, calls=8)
        check_admin(url, calls=8)  # it ends by emptying the journal
        workers = {chat(url, "plain").headers["x-mock-worker"] for _ in range(12)}
        assert len(workers) == 2  # numbered by Redis among every process sharing it
        assert redis_server.client().xlen("mockserver:journal") == 12
    finally:
        stop(proc)


def test_state_must_be_a_redis_url() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--state", "memcached://x:1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert (
        "--state must be a redis://, rediss:// or unix:// URL, got memcached://x:1" in proc.stderr
    )


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@settings(max_examples=40, deadline=None)
@given(script=calls)
def test_redis_script_admits_as_budgets_do(module_redis: RedisServer, script: list[Call]) -> None:
    """The Lua budget window against the in-process rule, on the same calls."""
    module_redis.client().flushdb()

    async def run() -> list[tuple[str, int, int]]:
        store = RedisBackend(module_redis.url)
        await store.start(create_app([])[STATE], lambda *_: None)
        try:
            return await shared_outcomes(store, LIMIT, script)
        finally:
            await store.close()

    assert asyncio.run(run()) == local_outcomes(LIMIT, script)
