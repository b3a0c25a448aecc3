"""The admin endpoints under ``/_mock/``: list and load scenarios, reset state, read the journal.

They change what the mock answers, so beyond loopback they are off unless a token guards them.
Each acts through the state's store, so with several processes it acts on all of them.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..core.errors import APIError
from ..core.request import bearer_token, parse_json_body
from ..protocols import JSON
from ..scenarios.loader import load_data, load_text
from ..state.live import STATE, Options

ADMIN = "/_mock"


def _check_admin(request: web.Request, options: Options) -> None:
    """Admin endpoints change what the mock answers: off or token-guarded beyond loopback."""
    if not options.admin_enabled:
        raise APIError(
            403,
            "The admin endpoints are off: mockserver listens beyond loopback and no "
            "--admin-token was given.",
            code="admin_disabled",
        )
    if options.admin_token is None:
        return
    token = bearer_token(request.headers) or ""
    if not hmac.compare_digest(token.encode(), options.admin_token.encode()):
        raise APIError(
            401,
            "The admin endpoints need the admin token: Authorization: Bearer <admin token>.",
            code="invalid_admin_token",
        )


async def admin_scenarios(request: web.Request) -> web.Response:
    state = request.app[STATE]
    _check_admin(request, state.options)
    if request.method in ("PUT", "POST"):
        raw = await request.read()
        if request.content_type == JSON:
            load_data(parse_json_body(raw), "<admin>")
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise APIError(400, "The scenario body is not UTF-8 text.") from None
            load_text(text, "<admin>")
        # Checked here (a bad file is this request's 400), then loaded by every process.
        payload = parse_json_body(raw) if request.content_type == JSON else text
        await state.store.load(request.method, payload)
    listing = [
        {"name": s.name, "source": s.where, "priority": s.priority, "steps": len(s.steps)}
        for s in state.scenarios.scenarios
    ]
    out: dict[str, Any] = {"scenarios": listing}
    if state.watcher is not None and state.watcher.error is not None:
        out["reload_problems"] = [str(p) for p in state.watcher.error.problems]
    return web.json_response(out)


async def admin_reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    _check_admin(request, state.options)
    what = request.query.get("what", "all")
    if what not in ("all", "sequences", "limits", "journal"):
        raise APIError(
            400,
            f"Invalid value: {what!r}. Supported values are: 'all', 'sequences', 'limits' "
            "and 'journal'.",
            param="what",
            code="invalid_value",
        )
    await state.store.reset(what)
    return web.json_response({"reset": what})


async def admin_journal(request: web.Request) -> web.Response:
    state = request.app[STATE]
    _check_admin(request, state.options)
    if request.method == "DELETE":
        await state.store.reset("journal")
    entries = await state.store.journal()
    return web.json_response({"entries": [e.to_dict() for e in entries]}, dumps=_dumps)


def _dumps(data: Any) -> str:
    return json.dumps(data, default=str)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_routes(app: web.Application, guard: Callable[[Handler], Handler]) -> None:
    """The admin routes, each handler wrapped in ``guard`` (error objects)."""
    for method in ("GET", "PUT", "POST"):
        app.router.add_route(method, f"{ADMIN}/scenarios", guard(admin_scenarios))
    app.router.add_post(f"{ADMIN}/reset", guard(admin_reset))
    for method in ("GET", "DELETE"):
        app.router.add_route(method, f"{ADMIN}/journal", guard(admin_journal))
