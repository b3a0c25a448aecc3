"""Identical requests get their rendered reply again, but never where state decides the answer."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mockserver import MockServer, Options

from .conftest import Clock

AUTH = {"Authorization": "Bearer k"}
BODY = {"model": "gpt-4", "messages": [{"role": "user", "content": "same"}]}


@pytest.fixture
def server(clock: Clock) -> Iterator[MockServer]:
    with MockServer(options=Options(clock=clock)) as server:
        yield server


def post(server: MockServer, body: object = BODY, **headers: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", json=body, headers={**AUTH, **headers})


def test_the_same_request_gets_the_same_bytes_with_this_seconds_created(
    server: MockServer, clock: Clock
) -> None:
    server.add({"reply": {"content": "Hi {{ fake.name }}"}})
    first, again = post(server), post(server)
    assert first.content == again.content
    assert first.headers["x-request-id"] != again.headers["x-request-id"]  # one per request
    clock.now += 1
    later = post(server)
    assert later.json()["created"] == 1001
    assert later.json()["choices"] == first.json()["choices"]
    assert [(e.scenario, e.status, e.body) for e in server.journal] == [("inline", 200, BODY)] * 3


def test_sequences_faults_and_limits_are_never_replayed(server: MockServer) -> None:
    server.add(
        {
            "name": "seq",
            "match": {"last_user": "same"},
            "steps": [{"reply": {"content": "1"}}, {"reply": {"content": "2"}}],
        },
        {
            "name": "fault",
            "match": {"last_user": "f"},
            "reply": {"content": "x"},
            "fault": {"kind": "malformed", "nth": 2},
        },
        {
            "name": "limited",
            "match": {"last_user": "r"},
            "reply": {"content": "r"},
            "rate_limit": {"requests": 1},
        },
    )
    assert [post(server).json()["choices"][0]["message"]["content"] for _ in range(3)] == [
        "1",
        "2",
        "2",
    ]
    fault = {**BODY, "messages": [{"role": "user", "content": "f"}]}
    assert [post(server, fault).status_code for _ in range(2)] == [200, 200]
    assert server.journal[-1].outcome == "fault:malformed"
    limited = {**BODY, "messages": [{"role": "user", "content": "r"}]}
    assert [post(server, limited).status_code for _ in range(2)] == [200, 429]


def test_a_used_up_sequence_is_not_remembered_past_a_reset(server: MockServer) -> None:
    server.add(
        {
            "match": {"last_user": "same"},
            "after_last": "stop",
            "steps": [{"reply": {"content": "once"}}],
        },
        {"reply": {"content": "fallback"}},
    )
    contents = [post(server).json()["choices"][0]["message"]["content"] for _ in range(3)]
    assert contents == ["once", "fallback", "fallback"]
    httpx.post(f"{server.url}/_mock/reset?what=sequences").raise_for_status()
    assert post(server).json()["choices"][0]["message"]["content"] == "once"


def test_headers_that_conditions_read_are_part_of_the_request(server: MockServer) -> None:
    server.add(
        {"match": {"headers": {"x-tenant": "a"}}, "reply": {"content": "tenant a"}},
        {"reply": {"content": "anyone"}},
    )
    got = [
        post(server, **h).json()["choices"][0]["message"]["content"]
        for h in ({"x-tenant": "a"}, {}, {"x-tenant": "a"}, {})
    ]
    assert got == ["tenant a", "anyone", "tenant a", "anyone"]


def test_new_scenarios_forget_old_replies(server: MockServer) -> None:
    server.add({"reply": {"content": "old"}})
    assert post(server).json()["choices"][0]["message"]["content"] == "old"
    server.replace({"reply": {"content": "new"}})
    assert post(server).json()["choices"][0]["message"]["content"] == "new"


def test_memos_are_bounded_in_count_and_bytes() -> None:
    from mockserver.protocols.chat import parse_chat
    from mockserver.state.memo import Memo, Memos

    chat = parse_chat(b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}')
    memos = Memos(count=3, size=16_000)

    def memo(body: bytes) -> Memo:
        return Memo(1, body, {}, chat, "s", ())

    for i in range(5):
        memos.put((b"k%d" % i, "chat"), memo(b"x" * 100))
    assert len(memos) == 3
    assert memos.get((b"k0", "chat"), 1) is None
    assert memos.get((b"k4", "chat"), 1) is not None
    memos.put((b"big", "chat"), memo(b"x" * 1_001))  # over a sixteenth of the budget: not kept
    assert memos.get((b"big", "chat"), 1) is None
    assert memos.get((b"k4", "chat"), 2) is None  # another second: rendered again
    by_bytes = Memos(count=100, size=16_000)
    for i in range(20):
        by_bytes.put((b"m%02d" % i, "chat"), memo(b"x" * 900))  # 906 bytes each: 17 fit in 16,000
    assert len(by_bytes) == 17
    assert by_bytes.get((b"m02", "chat"), 1) is None
    assert by_bytes.get((b"m03", "chat"), 1) is not None


def test_a_remembered_request_counts_its_bytes_against_the_bound(server: MockServer) -> None:
    """The bound counts what a memo holds: the request's bytes (and its parsed copy), and the
    reply's; a long body under a short path is not counted as the path."""
    server.add({"reply": {"content": "Hi"}})
    long = {**BODY, "messages": [{"role": "user", "content": "x" * 5_000}]}
    first, again = post(server, long), post(server, long)
    assert first.content == again.content
    memos = server.state.memos
    assert len(memos) == 1
    assert memos._bytes == 2 * len(first.request.content) + len(first.content)
