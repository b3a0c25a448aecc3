"""Misbehaving clients: malformed HTTP, slow senders, clients that vanish, a server told to stop."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mockserver import MockServer, Options

AUTH = {"Authorization": "Bearer k"}
CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}


def exchange(server: MockServer, payload: bytes) -> bytes:
    """Send raw bytes, return the response: its head and its Content-Length of body."""
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        conn.sendall(payload)
        received = b""
        while b"\r\n\r\n" not in received:
            received += conn.recv(65536)
        head, _, body = received.partition(b"\r\n\r\n")
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")).split(
                b":"
            )[1]
        )
        while len(body) < length:
            body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def status_and_error(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split()[1]), json.loads(body)["error"]


def post_head(length: int, extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        b"Content-Type: application/json\r\n" + extra + b"Content-Length: %d\r\n\r\n" % length
    )


@pytest.fixture
def server() -> Iterator[MockServer]:
    options = Options(idle_timeout=0.2, body_timeout=0.2)
    scenarios = [
        {"match": {"last_user": "slow"}, "reply": {"content": "one two three four five six"},
         "cadence": {"delay": 0.05}},
        {"reply": {"content": "ok"}},
    ]  # fmt: skip
    with MockServer(scenarios, options=options) as server:
        yield server


@pytest.fixture
def no_error_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.WARNING):
        yield
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud, [r.getMessage() for r in loud]


@pytest.mark.usefixtures("no_error_logs")
@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (post_head(2, b"X-Big: " + b"a" * 9000 + b"\r\n") + b"{}", 431, "request_header_fields_too_large"),
        (post_head(2, b"".join(b"X-%d: 1\r\n" % i for i in range(200))) + b"{}", 431, "request_header_fields_too_large"),
        (b"GARBAGE / HTTP/1.1\r\n\r\n", 400, "invalid_http_request"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, "invalid_http_request"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400, "invalid_http_request"),
    ],
    ids=["huge-header", "too-many-headers", "bad-method", "bad-length", "tls-to-plain-port"],
)  # fmt: skip
def test_malformed_http_gets_an_error_object(
    server: MockServer, payload: bytes, status: int, code: str
) -> None:
    got, error = status_and_error(exchange(server, payload))
    assert (got, error["code"]) == (status, code)
    assert str(error["message"]).startswith("Malformed HTTP request: ")
    assert (
        httpx.post(f"{server.base_url}/chat/completions", json=CHAT, headers=AUTH).status_code
        == 200
    )


@pytest.mark.usefixtures("no_error_logs")
def test_slowloris_headers_are_cut_off(server: MockServer) -> None:
    started = time.monotonic()
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Drip: 1\r\n")
        assert conn.recv(1) == b""  # closed by the server, not by our 5 s timeout
    assert time.monotonic() - started < 3


@pytest.mark.usefixtures("no_error_logs")
def test_slow_body_gets_408(server: MockServer) -> None:
    got, error = status_and_error(exchange(server, post_head(100) + b'{"model": '))
    assert (got, error["code"]) == (408, "request_timeout")
    assert server.last.status == 408


def _tasks(server: MockServer) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks())

    assert server._loop is not None
    return asyncio.run_coroutine_threadsafe(count(), server._loop).result(timeout=5)


def _settles(server: MockServer, baseline: int) -> bool:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if _tasks(server) <= baseline:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.usefixtures("no_error_logs")
def test_vanishing_clients_leave_nothing_behind(server: MockServer) -> None:
    assert (
        httpx.post(f"{server.base_url}/chat/completions", json=CHAT, headers=AUTH).status_code
        == 200
    )
    baseline = _tasks(server)
    slow = json.dumps(
        {**CHAT, "stream": True, "messages": [{"role": "user", "content": "slow"}]}
    ).encode()
    for _ in range(5):
        with socket.create_connection((server.host, server.port)) as conn:  # mid-stream
            conn.sendall(post_head(len(slow)) + slow)
            assert conn.recv(4096).startswith(b"HTTP/1.1 200")
        with socket.create_connection((server.host, server.port)) as conn:  # before reading
            conn.sendall(post_head(len(slow)) + slow)
        with socket.create_connection((server.host, server.port)) as conn:  # half a request
            conn.sendall(post_head(len(slow)) + slow[:10])
    assert _settles(server, baseline), "a handler outlived its client"
    outcomes = {e.outcome for e in server.journal[1:]}
    assert outcomes <= {"client_disconnected", "ok"}
    assert "client_disconnected" in outcomes
    # The five gone mid-stream were sent a 200 (journal and log line say so, not "-"); one
    # gone before the headers went out was sent nothing.
    left = [e.status for e in server.journal[1:] if e.outcome == "client_disconnected"]
    assert left.count(200) >= 5
    assert set(left) <= {0, 200}
    assert (
        httpx.post(f"{server.base_url}/chat/completions", json=CHAT, headers=AUTH).status_code
        == 200
    )


def test_sigterm_finishes_streams_in_flight(tmp_path: Path) -> None:
    scenario = tmp_path / "slow.yaml"
    scenario.write_text(
        "- reply: {content: 'a b c d e f g h i j k l m n o p'}\n  cadence: {delay: 0.5}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--scenarios", str(scenario)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        events = []
        with httpx.stream(
            "POST", f"{url}/chat/completions", json={**CHAT, "stream": True}, headers=AUTH
        ) as reply:
            lines = reply.iter_lines()
            events.append(next(lines))
            proc.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            events += [line for line in lines if line]
        finished = time.monotonic() - stopping
        _, err = proc.communicate(timeout=10)
        exited = time.monotonic() - stopping
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert events[-1] == "data: [DONE]"
    text = "".join(
        json.loads(e[6:])["choices"][0]["delta"].get("content") or ""
        for e in events[:-1]
        if e.startswith("data: {")
    )
    assert text == "a b c d e f g h i j k l m n o p"
    assert finished < 1.5, f"the stream took {finished:.2f}s to finish after SIGTERM (script: 8 s)"
    assert exited < 2, f"exit took {exited:.2f}s"
    assert proc.returncode == 0
    assert "Traceback" not in err


def test_admin_token_guards_the_admin_endpoints() -> None:
    with MockServer(options=Options(admin_token="s3cret")) as server:
        denied = httpx.get(f"{server.url}/_mock/journal", headers=AUTH)
        allowed = httpx.get(
            f"{server.url}/_mock/journal", headers={"Authorization": "Bearer s3cret"}
        )
        chat = httpx.post(f"{server.base_url}/chat/completions", json=CHAT, headers=AUTH)
    assert (denied.status_code, denied.json()["error"]["code"]) == (401, "invalid_admin_token")
    assert allowed.status_code == 200
    assert chat.status_code == 404  # the API itself does not need the admin token


def test_bound_wide_warns_and_turns_admin_off() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().split(":")[-1].split("/")[0]
        admin = httpx.put(
            f"http://127.0.0.1:{port}/_mock/scenarios", content="- reply: {content: pwned}\n"
        )
        chat = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=CHAT, headers=AUTH)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert (admin.status_code, admin.json()["error"]["code"]) == (403, "admin_disabled")
    assert chat.status_code == 200
    assert "--host 0.0.0.0 is reachable from other machines" in err
    assert "admin endpoints are off (no --admin-token)" in err


def test_the_journal_is_bounded_in_entries_and_bytes() -> None:
    from mockserver import Entry, Journal

    def entry(seq: int) -> Entry:
        return Entry(seq=seq, time=0.0, method="POST", path="/", request_id="", raw_headers={})

    by_count, by_bytes = Journal(size=3), Journal(size=100, max_bytes=1_000)
    for i in range(10):
        by_count.record(entry(i), 10)
        by_bytes.record(entry(i), 300)
    assert [e.seq for e in by_count] == [7, 8, 9]
    assert [e.seq for e in by_bytes] == [7, 8, 9]  # 900 bytes kept, a fourth would be 1,200
