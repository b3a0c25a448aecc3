"""The protocols' routes served without aiohttp's router (``serving.Routes``), and replies sent
with headers made once (``serving.ReadyResponse``): the same bytes as the router and the
general path give.

Two servers answer every request here: one as every front serves (``make_runner``: the
protocols' POSTs found by a dict lookup) and its twin served by aiohttp's router alone. Their
replies, status line, headers and body, must match byte for byte (the ``Date`` aside): for
every protocol route under every prefix, and for what the router keeps (other methods, an
``Expect`` header, unknown paths, escapes, odd model names). The tests on aiohttp's internals
fail if a new aiohttp changes what the shortcut relies on.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

import mockserver.pipeline
import mockserver.server
import mockserver.serving
from mockserver import MockServer, Options
from mockserver.app import create_app, protocols
from mockserver.protocols.chat import Chat
from mockserver.protocols.messages import Messages
from mockserver.scenarios.scenario import Step
from mockserver.serving import PROTOCOL_ROUTES, Direct, ReadyResponse
from mockserver.state.live import STATE

from .conftest import Clock

SCENARIOS: list[dict[str, Any]] = [
    {"name": "headed", "match": {"last_user": {"contains": "headed"}},
     "reply": {"content": "With headers."}, "headers": {"x-trace": "t1", "X-Request-Id": "mine"}},
    {"name": "own-id", "match": {"last_user": {"contains": "own id"}},
     "reply": {"content": "Its own id."}, "headers": {"x-request-id": "fixed"}},
    {"name": "hello", "reply": {"content": "Hello there, friend."}},
]  # fmt: skip
TEXT = "Say hello"
BODIES: dict[str, dict[str, Any]] = {
    "chat": {"model": "gpt-4", "messages": [{"role": "user", "content": TEXT}]},
    "responses": {"model": "gpt-4", "input": TEXT},
    "messages": {"model": "claude-sonnet-4-5", "max_tokens": 64,
                 "messages": [{"role": "user", "content": TEXT}]},
    "embeddings": {"model": "text-embedding-3-small", "input": TEXT},
    "gemini": {"contents": [{"role": "user", "parts": [{"text": TEXT}]}]},
    "gemini_embeddings": {"content": {"parts": [{"text": TEXT}]},
                          "requests": [{"content": {"parts": [{"text": TEXT}]}}]},
}  # fmt: skip
STREAMED = {"chat", "responses", "messages"}
AUTH = b"Authorization: Bearer k\r\nx-api-key: k\r\nx-goog-api-key: k\r\n"
MODEL = "gemini-2.5-flash"


def _options() -> Options:
    # The same in both twins: fixed request ids and clock, no pacing, a small body limit.
    return Options(run=7, clock=Clock(), speed=0, max_body=4096)


class Twins:
    """A server as every front serves, and its twin served by the router alone."""

    def __init__(self) -> None:
        self.fast = MockServer(SCENARIOS, options=_options())
        self.routed = MockServer(SCENARIOS, options=_options())

    def __enter__(self) -> Twins:
        self.fast.start()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(mockserver.server, "create_app", _routed)
            self.routed.start()
        self.resolved: list[str] = []
        fast_app = self.fast._app
        assert fast_app is not None
        resolve = fast_app.router.resolve

        async def counted(request: web.Request) -> Any:
            self.resolved.append(request.raw_path)
            return await resolve(request)

        fast_app.router.resolve = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        self.fast.stop()
        self.routed.stop()

    def both(self, request: bytes) -> tuple[bytes, bytes]:
        """The two replies to ``request``, each on a new connection, the ``Date`` aside."""
        return _exchange(self.fast.port, request), _exchange(self.routed.port, request)


def _routed(*args: Any, **kwargs: Any) -> web.Application:
    app = create_app(*args, **kwargs)
    del app[PROTOCOL_ROUTES]
    return app


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return re.sub(rb"\r\nDate: [^\r]*", b"", b"".join(chunks))


def _request(
    method: str, target: str, body: bytes = b"", extra: bytes = b"", kept: bool = False,
    version: str = "1.1",
) -> bytes:  # fmt: skip
    """One request; ``kept``: on a connection kept alive (the next request closes it)."""
    connection = "keep-alive" if kept else "close"
    line = f"{method} {target} HTTP/{version}\r\nHost: localhost\r\nConnection: {connection}\r\n"
    head = line.encode()
    sized = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
    return head + AUTH + extra + sized + b"\r\n" + body


@pytest.fixture(scope="module")
def twins() -> Iterator[Twins]:
    with Twins() as served:
        yield served


def _targets() -> list[tuple[str, str]]:
    """Every protocol route under every prefix, with the protocol that serves it."""
    out = []
    for protocol in protocols(Options()):
        for route in protocol.routes:
            for prefix in protocol.prefixes:
                out.append((protocol.name, prefix + route.replace("{model}", MODEL)))
    return out


@pytest.mark.parametrize(("api", "target"), _targets())
def test_every_protocol_route_answers_as_through_the_router(
    twins: Twins, api: str, target: str
) -> None:
    fields = BODIES.get(api, {})
    for streamed in (False, True) if api in STREAMED else (False,):
        for text in (TEXT, "headed", "own id"):
            body = json.dumps({**fields, "stream": streamed}).replace(TEXT, text).encode()
            twins.resolved.clear()
            fast, routed = twins.both(_request("POST", target, body))
            assert fast == routed
            # kept alive, the connection's replies are written whole (``ReadyResponse``): two
            # such, one over HTTP/1.0, then the one that closes it
            kept = _request("POST", target, body, kept=True)
            old = _request("POST", target, body, kept=True, version="1.0")
            with _whole_writes() as whole:
                both = twins.both(kept + kept + old + _request("POST", target, body))
            assert both[0] == both[1]
            if api in STREAMED and text == TEXT:
                assert whole[0] == 2  # the kept two: written whole
            assert both[0].count(b"HTTP/1.1 200 OK\r\n") == 3 or api not in BODIES
            assert twins.resolved == []  # served by the lookup, not by the router
            if api in BODIES:
                assert fast.startswith(b"HTTP/1.1 200 OK\r\n"), fast[:300]


def test_the_replies_carry_the_headers_the_steps_set(twins: Twins) -> None:
    body = json.dumps(BODIES["chat"]).encode()
    headed, _ = twins.both(
        _request("POST", "/v1/chat/completions", body.replace(b"Say", b"headed"))
    )
    assert b"\r\nx-trace: t1\r\nX-Request-Id: mine\r\nContent-Type: application/json\r\n" in headed
    assert re.search(rb"\r\nx-request-id: req_[0-9a-f]{32}\r\n", headed)  # the step's and ours
    own, _ = twins.both(_request("POST", "/v1/chat/completions", body.replace(b"Say", b"own id")))
    assert re.search(rb"\r\nx-request-id: req_[0-9a-f]{32}\r\nContent-Type", own)  # in its place
    assert b"fixed" not in own


FALLBACKS = [
    ("GET", "/v1/chat/completions"),  # 405, naming POST
    ("PUT", "/v1/messages"),
    ("HEAD", "/v1/responses"),
    ("POST", "/v1/chat/completions/"),
    ("POST", "/v1/chat%2Fcompletions"),
    ("POST", "/v1/chat/%63ompletions"),  # the router decodes it: a chat request
    ("POST", "/v1//chat/completions"),
    ("POST", "/v1/chat/completions?api-version=2024-10-21"),
    ("POST", "/v1/chat/completions#part"),
    ("POST", "/v1/nothing/here"),
    ("POST", f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"),
    ("POST", "/v1beta/models/:generateContent"),
    ("POST", "/v1beta/models/a%3Ab:generateContent"),
    ("POST", "/v1beta/models/a{b}:generateContent"),
    ("POST", "/v1beta/models/x:generateContent:countTokens"),
    ("POST", "/v1beta/models/x:unknownMethod"),
    ("POST", "/v1beta/models/a/b:generateContent"),
    ("GET", f"/v1beta/models/{MODEL}:generateContent"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/gpt-4"),
]


@pytest.mark.parametrize(("method", "target"), FALLBACKS)
def test_what_the_lookup_leaves_to_the_router_answers_as_before(
    twins: Twins, method: str, target: str
) -> None:
    body = json.dumps({**BODIES["chat"], **BODIES["gemini"]}).encode()
    fast, routed = twins.both(_request(method, target, body))
    assert fast == routed


def test_expect_100_continue_is_answered_by_the_router(twins: Twins) -> None:
    body = json.dumps(BODIES["chat"]).encode()
    twins.resolved.clear()
    fast, routed = twins.both(
        _request("POST", "/v1/chat/completions", body, b"Expect: 100-continue\r\n")
    )
    assert fast == routed
    assert fast.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert twins.resolved == ["/v1/chat/completions"]


def test_a_body_over_the_limit_is_a_413_as_before(twins: Twins) -> None:
    body = json.dumps({**BODIES["chat"], "pad": "x" * 5000}).encode()
    fast, routed = twins.both(_request("POST", "/v1/chat/completions", body))
    assert fast == routed
    assert fast.startswith(b"HTTP/1.1 413 ")


segments = st.text(st.sampled_from("ab:%2F{}/.?#-_é"), max_size=12)
prefixes = st.sampled_from(["", "/v1", "/v1beta", "/v2", "/v1/models", "/v1beta/models"])
routes = st.sampled_from(
    [t for _, t in _targets()] + ["/chat/completions", "/models/", ":generateContent"]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
    target=st.one_of(
        routes,
        st.builds(lambda p, s, r: p + "/" + s + r, prefixes, segments, routes),
        st.builds(lambda r, s: r + s, routes, segments),
        st.builds(lambda p, m, s: f"{p}/models/{m}{s}", st.sampled_from(["/v1beta", "/v1"]),
                  segments, st.sampled_from([":generateContent", ":countTokens", ":embedContent",
                                             ":streamGenerateContent", ""])),
    ),
)  # fmt: skip
def test_any_target_answers_as_through_the_router(twins: Twins, method: str, target: str) -> None:
    if not target.startswith("/"):
        target = "/" + target
    body = json.dumps({**BODIES["chat"], **BODIES["gemini"]}).encode()
    fast, routed = twins.both(_request(method, target, body))
    assert fast == routed


def _served_with(change: Callable[[web.Application], None], *posts: tuple[str, str]) -> list[bytes]:
    """The replies to ``posts`` (target, API) from a ``MockServer`` whose app ``change`` saw
    before it was served."""

    def made(*args: Any, **kwargs: Any) -> web.Application:
        app = create_app(*args, **kwargs)
        change(app)
        return app

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mockserver.server, "create_app", made)
        server = MockServer(SCENARIOS, options=_options()).start()
    try:
        out = []
        for target, api in posts:  # one reply kept alive, then one closing the connection
            body = json.dumps(BODIES[api]).encode()
            kept, last = _request("POST", target, body, kept=True), _request("POST", target, body)
            out += _exchange(server.port, kept + last).split(b"HTTP/1.1 ")[1:]
        return out
    finally:
        server.stop()


def test_hooks_and_match_info_work_on_the_protocol_routes() -> None:
    """``on_response_prepare`` runs, and ``request.app`` and ``request.match_info`` are the
    router's, for a request the lookup serves (a Gemini route names its model)."""
    seen: list[tuple[str, dict[str, str], bool]] = []
    apps: list[web.Application] = []

    async def hook(request: web.Request, response: web.StreamResponse) -> None:
        seen.append((request.path, dict(request.match_info), request.app is apps[0]))
        response.headers["x-hooked"] = "1"

    def change(app: web.Application) -> None:
        apps.append(app)
        app.on_response_prepare.append(hook)

    gemini = f"/v1beta/models/{MODEL}:generateContent"
    for reply in _served_with(change, ("/v1/chat/completions", "chat"), (gemini, "gemini")):
        assert b"\r\nx-hooked: 1\r\n" in reply
    chat: tuple[str, dict[str, str], bool] = ("/v1/chat/completions", {}, True)
    named = (gemini, {"model": MODEL}, True)
    assert seen == [chat, chat, named, named]  # kept alive too: not written past the hook


def test_an_app_with_middlewares_keeps_the_router() -> None:
    called: list[str] = []

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        called.append(request.path)
        response: web.StreamResponse = await handler(request)
        response.headers["x-touched"] = "1"  # a reply written whole would lose it
        return response

    replies = _served_with(
        lambda app: app.middlewares.append(middleware), ("/v1/chat/completions", "chat")
    )
    assert [reply[:6] for reply in replies] == [b"200 OK"] * 2
    assert all(b"\r\nx-touched: 1\r\n" in reply for reply in replies)
    assert called == ["/v1/chat/completions"] * 2


# --- ReadyResponse: what it relies on in aiohttp, and the bytes it sends ---


def test_aiohttp_response_is_what_ready_response_copies() -> None:
    """A blank ``web.Response`` keeps its state in these attributes, all immutable values but
    the three each reply gets its own of. If this fails, aiohttp changed: ``ReadyResponse``
    falls back to ``web.Response`` (correct, slower) until it is looked at again."""
    blank = vars(web.Response(body=b""))
    assert set(blank) == {"_body", "_compressed_body", "_headers", "_reason", "_state",
                          "_status", "_zlib_executor", "_zlib_executor_size"}  # fmt: skip
    assert mockserver.serving._FITS
    made = ReadyResponse(b"{}", CIMultiDict({"Content-Type": "application/json"}))
    assert (made.status, made.reason, made.body, made.content_type) == (
        200,
        "OK",
        b"{}",
        "application/json",
    )
    assert made._state is not blank["_state"]
    assert made.headers is not blank["_headers"]


header_names = st.sampled_from(
    ["x-request-id", "X-Request-Id", "request-id", "x-trace", "X-Trace", "Content-Type",
     "Cache-Control", "x-mock-worker", "retry-after"]
)  # fmt: skip
header_values = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=8
) | st.text(
    st.characters(exclude_categories=()), max_size=4
)  # printable ASCII mostly, or anything: tabs, controls, other scripts, lone surrogates


@contextmanager
def _whole_writes() -> Iterator[list[int]]:
    """How many replies ``ReadyResponse`` wrote whole meanwhile (each asks ``_date`` once)."""
    count = [0]
    date = mockserver.serving._date

    def counted() -> bytes:
        count[0] += 1
        return date()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mockserver.serving, "_date", counted)
        yield count


class _Serving:
    """A plain aiohttp app on a loopback port, on its own loop in a thread (as ``MockServer``)."""

    def __init__(self, app: web.Application) -> None:
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> int:
        self._thread.start()

        async def boot() -> int:
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return int(self._runner.addresses[0][1])

        return asyncio.run_coroutine_threadsafe(boot(), self._loop).result(10)

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


_SENDING: list[Callable[[], web.StreamResponse]] = []
"""What the plain app's one route answers with, set by each example."""


async def _send(request: web.Request) -> web.StreamResponse:
    # as ``Routes`` marks what it dispatches itself: a ``ReadyResponse`` may write it whole
    direct = Direct({}, request.match_info.route)
    direct.add_app(request.app)
    direct.freeze()
    request._match_info = direct
    return _SENDING[-1]()


@pytest.fixture(scope="module")
def plain() -> Iterator[int]:
    app = web.Application()
    app.router.add_get("/", _send)
    with _Serving(app) as port:
        yield port


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    step_headers=st.dictionaries(header_names, header_values, max_size=4),
    extra=st.dictionaries(header_names, header_values, max_size=2),
    content_type=st.sampled_from([None, "application/json", "text/event-stream"]),
    stream=st.booleans(),
    worker=st.sampled_from([None, 3]),
    anthropic=st.booleans(),
)
def test_a_ready_response_sends_the_bytes_the_merged_headers_did(
    plain: int,
    step_headers: dict[str, str],
    extra: dict[str, str],
    content_type: str | None,
    stream: bool,
    worker: int | None,
    anthropic: bool,
) -> None:
    """``Pipeline._reply`` from the headers made once (``_head``) against what every reply
    was before: ``web.Response(body=, headers={**step's, **extra, **ids})``."""
    protocol = Messages() if anthropic else Chat()
    state = create_app([], Options(worker=worker))[STATE]
    pipeline = mockserver.pipeline.Pipeline(protocol, state)
    head = pipeline._head(Step(headers=step_headers), content_type, stream)
    rid = "req_" + "ab" * 16
    body = b'{"ok": true}'
    # one kept alive (written whole where the headers allow), then one closing the connection
    get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    headers, wire = head.joined(extra)
    _SENDING.append(lambda: pipeline._reply(body, headers, rid, wire))
    with _whole_writes() as whole:
        ready = _exchange(plain, get)
    assert whole[0] == (wire is not None)  # the first, kept alive, where its headers allow
    merged_headers = {**head.fields, **extra, **protocol.headers(rid)}
    _SENDING.append(lambda: web.Response(body=body, headers=merged_headers))
    assert ready == _exchange(plain, get)
    assert (head.sent is not None) == all(n not in head.fields for n in protocol.request_id_headers)


@pytest.mark.parametrize(
    ("value", "whole"),
    [("a b", True), ("a\tb", True), ("é", True), ("a\x01b", False), ("a\x7f", False),
     ("\ud800", False), ("a\r\nb", False)],
)  # fmt: skip
def test_a_step_header_aiohttp_would_refuse_or_drop_is_left_to_aiohttp(
    plain: int, value: str, whole: bool
) -> None:
    """A control character (tab aside) or a lone surrogate in a step's header: aiohttp refuses
    or drops it, so the reply is not written whole, and the client sees what aiohttp does."""
    pipeline = mockserver.pipeline.Pipeline(Chat(), create_app([], Options())[STATE])
    head = pipeline._head(Step(headers={"x-odd": value}), "application/json")
    assert (head.wire is not None) is whole
    get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    headers, wire = head.joined({})
    _SENDING.append(lambda: pipeline._reply(b"{}", headers, "req_1", wire))
    with _whole_writes() as written:
        ready = _exchange(plain, get)
    assert written[0] == whole
    merged = {**head.fields, **Chat().headers("req_1")}
    _SENDING.append(lambda: web.Response(body=b"{}", headers=merged))
    assert ready == _exchange(plain, get)
