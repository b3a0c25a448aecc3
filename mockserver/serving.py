"""The HTTP server around the application: one runner for every front (CLI, ``MockServer``).

It adds what aiohttp leaves to the application: requests too malformed to reach a handler
(bad framing, oversized or too many headers) get an OpenAI error object instead of aiohttp's
plain text, and are not logged as server faults; connections that never finish their headers
are closed after the idle timeout (slowloris).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from .app import STATE
from .errors import APIError

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
        response = web.Response(
            status=err.status, body=err.body_bytes(), content_type="application/json"
        )
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """``web.AppRunner`` whose connections answer malformed HTTP with OpenAI error objects."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same state, one method changed; aiohttp has no hook for it
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
