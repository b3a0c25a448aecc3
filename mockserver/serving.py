"""The HTTP server around the application: one runner for every front (CLI, ``MockServer``).

It adds what aiohttp leaves to the application: requests too malformed to reach a handler
(bad framing, oversized or too many headers) get an OpenAI error object instead of aiohttp's
plain text, and are not logged as server faults; connections that never finish their headers
are closed after the idle timeout (slowloris). And the shortcuts through aiohttp's layer on a
request's path, each held byte for byte to what aiohttp gives by ``tests/test_routing.py``:
the protocols' routes found by a dict lookup (``Routes``), replies with their headers made
once, written whole where nothing could change them (``ReadyResponse``).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import re
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_urldispatcher import PrefixedSubAppResource, UrlMappingMatchInfo
from multidict import CIMultiDict

from .core.bounded import keep
from .core.errors import APIError
from .protocols import JSON
from .state.live import STATE

log = logging.getLogger("mockserver")


class _Protocol(RequestHandler):
    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        log.debug("mockserver: malformed HTTP request from %s: %s", request.remote, message)
        if request.writer.output_size > 0:
            raise ConnectionError("a reply was already under way")
        too_large = isinstance(exc, LineTooLong) or "Too many headers" in (message or "")
        first_line = (message or "").strip().splitlines()[0] if message else "bad framing"
        err = APIError(
            431 if too_large else status,
            f"Malformed HTTP request: {first_line[:200]}",
            code="request_header_fields_too_large" if too_large else "invalid_http_request",
        )
        response = web.Response(status=err.status, body=err.body_bytes(), content_type=JSON)
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


class ReadyResponse(web.Response):
    """A ``web.Response`` whose headers are final: ``body`` with ``headers``, sent as they are.

    ``web.Response(body=..., headers=...)`` reads its keywords, copies the headers into a new
    ``CIMultiDict``, checks the content type and sets the status and body through properties,
    for every reply. A ``ReadyResponse`` sets only what differs between replies (its headers,
    body and state); what a blank ``Response`` holds besides (status 200, no compression) is
    on the class, copied from one (``_BLANK``).

    Given ``wire`` (its status line and headers as aiohttp would write them: ``wire_head``
    and the request's ids), a reply to a request ``Routes`` dispatched itself, over a kept-alive
    HTTP/1.1 connection, is written whole: those bytes, the three headers aiohttp adds
    (``Content-Length``, ``Date``, ``Server``) and the body, in one write. aiohttp's
    ``prepare`` and ``write_eof`` (~57k instructions a reply, more than a new chat request's
    matching, seed, tokens and fill together) would give the same bytes: such a
    request runs no middleware and no ``on_response_prepare`` signal that could change them
    (``Direct``). Any other request is prepared and written by aiohttp as any ``Response``."""

    _wire: bytes | None = None

    def __init__(self, body: bytes, headers: CIMultiDict[str], wire: bytes | None = None) -> None:
        if not _FITS:
            super().__init__(body=body, headers=headers)
            return
        self._state = {}
        self._headers = headers
        self._body = body
        self._wire = wire

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        wire = self._wire
        if (
            wire is None
            or self._payload_writer is not None
            or self._eof_sent
            or self._keep_alive is not None  # ``force_close``: aiohttp says so and closes
            or type(getattr(request, "_match_info", None)) is not Direct  # a web.Request's
            or request.version != HttpVersion11
            or not request.keep_alive
        ):
            return await super().prepare(request)
        body = self._body
        assert isinstance(body, bytes)
        writer = self._payload_writer = request.writer  # prepared, as aiohttp marks it
        self._keep_alive = True
        await writer.write_eof(b"".join((wire, b"Content-Length: %d\r\nDate: " % len(body),
                                         _date(), _SERVER, body)))  # fmt: skip
        self._eof_sent = True  # what ``write_eof`` sets: aiohttp's call to it returns at once
        self._body_length = writer.output_size
        self._payload_writer = None
        return writer


_BLANK: dict[str, Any] = getattr(web.Response(body=b""), "__dict__", {})
"""A ``web.Response``'s attributes once made: what a ``ReadyResponse`` holds on its class
(none, and no ``ReadyResponse`` shortcut, should a later aiohttp give it slots)."""
_OWN = frozenset({"_state", "_headers", "_body"})
"""The attributes each ``ReadyResponse`` gets its own of; the others are immutable values."""
_FITS = _BLANK.keys() >= _OWN and all(
    v is None or type(v) in (bool, int, float, str, bytes)
    for k, v in _BLANK.items()
    if k not in _OWN
)
"""Whether this aiohttp's ``Response`` is what ``ReadyResponse`` expects (``tests/test_routing.py``
checks it is); if not, a ``ReadyResponse`` is made as any ``web.Response`` is."""
for _name, _value in _BLANK.items():
    if _FITS and _name not in _OWN:
        setattr(ReadyResponse, _name, _value)

_ADDED = frozenset({"content-length", "date", "server", "connection", "transfer-encoding"})
"""Headers aiohttp adds or decides when it prepares a reply: a reply that sets one itself is
left to aiohttp (``wire_head``)."""
_SERVER = b"\r\nServer: " + SERVER_SOFTWARE.encode() + b"\r\n\r\n"
_DATES: list[Any] = [None, b""]


def _date() -> bytes:
    """aiohttp's ``Date`` (its text made once a second), as bytes made once a second."""
    text = rfc822_formatted_time()
    if text is not _DATES[0]:
        _DATES[:] = [text, text.encode()]
    return cast(bytes, _DATES[1])


def wire_head(headers: CIMultiDict[str]) -> bytes | None:
    """A 200 reply's status line and ``headers`` as aiohttp writes them (``_serialize_headers``:
    each ``name: value`` and CRLF, UTF-8), for ``ReadyResponse`` to write whole; None where
    aiohttp would add, refuse or drop something itself: no ``Content-Type`` (it adds one), a
    header it sets (``_ADDED``), a control character but tab (3.14 refuses them, 3.13 CR, LF
    and NUL), a lone surrogate (its C serializer drops it)."""
    if "Content-Type" not in headers or not _ADDED.isdisjoint(map(str.lower, headers)):
        return None
    pairs = headers.items()
    if any(_CONTROL.search(text) for pair in pairs for text in pair):
        return None
    try:
        return "".join(["HTTP/1.1 200 OK\r\n", *(f"{k}: {v}\r\n" for k, v in pairs)]).encode()
    except UnicodeEncodeError:
        return None


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


class Direct(UrlMappingMatchInfo):
    """The match info ``Routes`` gives a request it dispatches itself, in an application with
    no ``on_response_prepare`` signal: nothing between its handler and the socket can change
    its reply (``ReadyResponse`` writes one whole)."""

    __slots__ = ()


Serve = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
"""What a ``web.Server`` calls with each request (``Application._handle``, or ``Routes``')."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Found = tuple[Handler, UrlMappingMatchInfo]


class Routes:
    """The protocols' POST routes, found by their path in a dict rather than by aiohttp's router.

    For every request the router (``Application._handle``) walks the path's parents through
    its resource index, makes a match info, adds the application to it and freezes it:
    12-17k instructions of a new chat request's ~400k. A protocol's path is fixed, or
    (Gemini's) a fixed head, a model and a fixed method. ``dispatch`` finds a POST to one of
    them with a dict lookup and hands it to its handler with the match info the router would
    have made, made once per path and shared by its requests (read-only, as the router's is
    to a handler), so ``request.app``, ``request.match_info`` and ``on_response_prepare``
    work as before. Everything else goes to the application as before: other methods, an
    ``Expect`` header (the router's expect handler answers it), a path that is not exactly a
    protocol's (percent-escapes included), and every request of an application with
    middlewares or sub-applications. ``tests/test_routing.py`` holds the two to the same
    answer for every path: the router is the specification.

    What it relies on in aiohttp (all there since 3.9, checked by those tests):
    ``web.Server.request_handler`` (read by each new connection), ``Request._match_info``
    (what ``Application._handle`` sets), ``UrlMappingMatchInfo(match_dict, route)`` with
    ``add_app`` and ``freeze``, and ``BaseRequest.raw_path`` (the target as it came).
    """

    def __init__(self) -> None:
        self._fixed: dict[str, web.AbstractRoute] = {}
        self._named: dict[str, list[tuple[str, str, web.AbstractRoute]]] = {}
        """By head (the path to the last ``/``): each route's tail, variable and route."""

    def add(self, path: str, route: web.AbstractRoute) -> None:
        """``route`` serves POSTs to ``path`` (the pattern it was added to the router with).
        A pattern with more than one variable, or a regex, is left to the router."""
        head, brace, rest = path.partition("{")
        if not brace:
            self._fixed.setdefault(path, route)  # the router, too, takes the first one added
            return
        name, _, tail = rest.partition("}")
        if head.endswith("/") and name.isidentifier() and not any(c in tail for c in "/{}%"):
            self._named.setdefault(head, []).append((tail, name, route))

    def dispatch(self, app: web.Application, fallback: Serve) -> Serve:
        """What the server calls with each request: a protocol's handler where this table
        knows the path, else ``fallback`` (the application's ``_handle``)."""
        if app.middlewares or any(
            isinstance(r, PrefixedSubAppResource) for r in app.router.resources()
        ):
            return fallback  # the router would run them, or could send these paths elsewhere
        fixed: dict[str, Found] = {
            path: (route.handler, _matched(app, route)) for path, route in self._fixed.items()
        }
        named = self._named
        known: dict[str, Found | None] = {}
        """What ``find`` found for a target (a client sends the same few): a bounded cache."""

        def find(target: str) -> Found | None:
            """A route for a target that is not a fixed path as it stands: one with a query,
            or a path naming its model."""
            try:
                return known[target]
            except KeyError:
                pass
            path, query, _ = target.partition("?")
            found = fixed.get(path) if query else None
            cut = path.rfind("/") + 1
            routes = named.get(path[:cut])
            rest = path[cut:]
            if found is None and routes is not None and not any(c in rest for c in "%{}#"):
                for tail, name, route in routes:  # else not a protocol's, or only the router's
                    if rest.endswith(tail) and len(rest) > len(tail):
                        values = {name: rest[: -len(tail) or None]}
                        found = route.handler, _matched(app, route, values)
                        break
            return keep(known, target, found, _KNOWN)

        def dispatch(request: web.Request) -> Awaitable[web.StreamResponse]:
            # A plain function: the handler's coroutine is what the server awaits.
            if request.method != "POST" or hdrs.EXPECT in request.headers:
                return fallback(request)
            target = request.raw_path
            found = fixed.get(target) or find(target)
            if found is None:
                return fallback(request)
            handler, matched = found
            request._match_info = matched
            return handler(request)

        return cast(Serve, dispatch)  # the application's requests are ``web.Request``s


_KNOWN = 4096
"""Targets ``Routes.dispatch`` remembers; all are forgotten when more come."""


def _matched(
    app: web.Application, route: web.AbstractRoute, values: dict[str, str] | None = None
) -> UrlMappingMatchInfo:
    """The match info ``Application._handle`` gives a request ``route`` serves (a ``Direct``
    one where no ``on_response_prepare`` signal could change its reply)."""
    matched = (UrlMappingMatchInfo if app.on_response_prepare else Direct)(values or {}, route)
    matched.add_app(app)
    matched.freeze()
    return matched


PROTOCOL_ROUTES = web.AppKey("protocol_routes", Routes)


class Runner(web.AppRunner):
    """``web.AppRunner`` whose connections answer malformed HTTP with OpenAI error objects,
    and whose protocol routes skip the router (``Routes``)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same state, one method changed; aiohttp has no hook for it
        routes = self.app.get(PROTOCOL_ROUTES)
        if routes is not None:
            server.request_handler = routes.dispatch(self.app, server.request_handler)
        return server


def make_runner(app: web.Application) -> Runner:
    """The runner every front uses: handlers end when their client disconnects."""
    options = app[STATE].options
    return Runner(
        app,
        access_log=None,
        handle_signals=False,
        handler_cancellation=True,
        shutdown_timeout=options.shutdown_timeout,
        keepalive_timeout=options.idle_timeout,
    )


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then stop gracefully. ``ready(port)`` once bound.

    It owns its process, so it also tunes the garbage collector (see ``_collect``) and the C
    allocator (see ``steady_malloc``)."""
    steady_malloc()
    collector = asyncio.create_task(_collect())
    runner = make_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=4096)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(runner.addresses[0][1])
    try:
        await stop.wait()
    finally:
        collector.cancel()
        await runner.cleanup()


# glibc's mallopt parameters (malloc.h) and the values ``steady_malloc`` sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 1 << 20  # above asyncio's 256 KiB socket reads
TRIM_THRESHOLD = 4 << 20


def steady_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds, so every socket read costs the same.

    asyncio reads with ``recv(256 KiB)`` into a new bytes object, then shrinks it to what came.
    glibc's mmap threshold starts at 128 KiB and rises only when a large mmapped block is
    freed, so whether a process serves each read from the heap or maps, remaps and unmaps it
    (three syscalls a request: 13% of the CPU time of a new chat request, 19% of the bare
    handler's) depends on what happened to be freed at start-up. Fixing the mmap threshold
    alone disables the dynamic rule and leaves the trim threshold at 128 KiB: then the heap's
    top is given back and taken again, two ``brk`` a request. Both fixed, a request costs one
    receive and one send. The same as ``MALLOC_MMAP_THRESHOLD_=1048576
    MALLOC_TRIM_THRESHOLD_=4194304`` in the environment (what ``make bench`` sets for every
    server). False where the C library is not glibc (nothing to do)."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


_FULL_COLLECTION_EVERY = 60.0


async def _collect() -> None:
    """Full collections on a clock instead of on allocation counts.

    With thousands of open streams, an automatic full collection walks every live object and
    stalls the loop for 20-50 ms, which shows as late chunks (measured: cadence p99 18 ms with
    it, under 5 ms without). Young generations are still collected automatically; the old one
    once a minute, so reference cycles are still freed."""
    gc.set_threshold(10_000, 50, 1_000_000_000)
    while True:
        await asyncio.sleep(_FULL_COLLECTION_EVERY)
        gc.collect()


def _stop_with(parent: int) -> None:
    """Stop this worker gracefully if its supervisor dies without telling it (SIGKILL)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="mockserver-parent-watch", daemon=True).start()


def serve_workers(
    make_app: Callable[[int], web.Application],
    host: str,
    port: int,
    workers: int,
    announce: Callable[[int], None],
    grace: float = 5.0,
    forked: Callable[[], None] | None = None,
) -> int:
    """Run ``workers`` processes, each with its own app, on one port (``SO_REUSEPORT``: the
    kernel spreads connections between them). SIGTERM or SIGINT stops them all gracefully;
    any still running ``grace`` + 5 seconds later are killed. ``forked`` runs in the
    supervisor once they are forked (where threads may start: the owner of shared state)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("--workers needs SO_REUSEPORT, which this platform lacks")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as reserved:
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserved.bind((host, port))  # holds the port (never listens, so gets no connections)
        port = reserved.getsockname()[1]
        context = multiprocessing.get_context("fork")
        started: multiprocessing.Queue[int] = context.Queue()

        parent = os.getpid()

        def child(index: int) -> None:
            _stop_with(parent)
            app = make_app(index)
            asyncio.run(serve(app, host, port, reuse_port=True, ready=started.put))

        procs = [context.Process(target=child, args=(i,), daemon=True) for i in range(workers)]
        for proc in procs:
            proc.start()
        if forked is not None:
            forked()
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True
            for proc in procs:
                if proc.is_alive():
                    os.kill(proc.pid, signal.SIGTERM)  # type: ignore[arg-type]

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)
        try:
            for _ in procs:
                started.get(timeout=30)
        except queue.Empty:
            stop()
            log.error("mockserver: a worker did not start")
            return 1
        announce(port)
        deadline = None
        while any(p.is_alive() for p in procs):
            multiprocessing.connection.wait([p.sentinel for p in procs if p.is_alive()], 0.5)
            if not stopping and any(p.exitcode is not None for p in procs):
                log.error("mockserver: a worker exited; stopping the others")
                stop()
            if stopping and deadline is None:
                deadline = time.monotonic() + grace + 5
            if deadline is not None and time.monotonic() > deadline:
                log.error("mockserver: workers still running after %.0fs; killing them", grace + 5)
                for proc in procs:
                    proc.kill()
                deadline = float("inf")
        return 0 if stopping and all(p.exitcode == 0 for p in procs) else 1
