"""The aiohttp application: routes, the one error middleware, and the API's handlers.

The handler reads like the data flow: parse and validate, apply the profile, match a scenario,
render the reply (JSON, or SSE at the scripted cadence), record it in the journal.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from . import admin
from .errors import APIError, ScenarioError
from .journal import Entry, Journal
from .matching import Resolution, ScenarioSet
from .memo import Memo
from .openapi import DOCUMENT
from .profiles import Settings
from .ratelimit import Ticket
from .reload import Watcher
from .render import (
    DONE,
    JSON,
    SSE,
    Envelope,
    completion_body,
    delays,
    digest,
    sse_frames,
    usage,
)
from .request import ChatRequest, bearer_token, parse_chat_request, parse_json_body
from .scenario import Fault, Scenario, Step
from .state import STATE, Options, State

log = logging.getLogger("mockserver")


def _error_response(err: APIError, request_id: str) -> web.Response:
    return web.Response(
        status=err.status,
        body=err.body_bytes(),
        content_type=JSON,
        headers={"x-request-id": request_id, **err.headers},
    )


_HTTP_CODES = {404: "unknown_url", 405: "method_not_allowed", 413: "request_too_large"}


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error a client can meet is an OpenAI error object, never HTML or a traceback."""
    try:
        return await handler(request)
    except APIError as err:
        return _error_response(err, "req_error")
    except ScenarioError as err:
        return web.json_response(
            {"error": {"message": str(err), "type": "invalid_request_error",
                       "param": None, "code": "invalid_scenario"},
             "problems": [str(p) for p in err.problems]},
            status=400,
        )  # fmt: skip
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = {
            404: f"Unknown request URL: {request.method} {request.path}. Please check the URL.",
            405: f"Method {request.method} is not allowed for {request.path}.",
        }.get(exc.status, exc.reason)
        http_error = APIError(exc.status, message, code=_HTTP_CODES.get(exc.status))
        response = _error_response(http_error, "req_error")
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("mockserver: unexpected error on %s %s", request.method, request.path)
        crash = APIError(500, "mockserver hit an unexpected error.", type="server_error")
        return _error_response(crash, "req_error")


def _check_auth(request: web.Request, keys: frozenset[str]) -> str:
    """The request's API key, or the 401 OpenAI sends."""
    token = bearer_token(request.headers)
    if token is None:
        raise APIError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code="invalid_api_key" if request.headers.get("Authorization") else None,
        )
    if keys and token not in keys:
        shown = token[:3] + "*" * 4 + token[-4:] if len(token) > 8 else "***"
        raise APIError(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")
    return token


def _admit(state: State, key: str, chat: ChatRequest, scenario: Scenario) -> list[Ticket]:
    """Count the request against the server's budget and the scenario's; 429 when over."""
    limits = [x for x in (state.options.rate_limit, scenario.rate_limit) if x is not None]
    if not limits:
        return []
    now = state.options.clock()
    return [state.budgets.admit(x, key, chat.model, chat.prompt_tokens, now) for x in limits]


def _fires(fault: Fault | None, state: State, step: Step, seed: str) -> bool:
    if fault is None:
        return False
    if fault.nth is not None:
        count = state.fault_counts.get(step, 0) + 1
        state.fault_counts[step] = count
        return count == fault.nth
    if fault.probability is not None:
        return random.Random(seed).random() < fault.probability
    return True


async def _forever(request: web.Request, state: State) -> None:
    """A scripted hang: until the client leaves (the handler is cancelled) or the server stops."""
    await state.closing.wait()
    _abort(request)
    raise _Dropped


_SLICE = 1.0
_LATE = 0.001


async def _wait(state: State, seconds: float, response: web.StreamResponse | None = None) -> None:
    """Sleep in slices of at most a second; on an open stream, long waits are broken by SSE
    comment keep-alives. Once the server is stopping, scripted delays are skipped, so replies
    in flight finish at once instead of being cut at the shutdown deadline."""
    interval = state.options.keepalive
    quiet = 0.0
    while seconds > 0 and not state.closing.is_set():
        pause = min(seconds, _SLICE, interval - quiet) if interval > 0 else min(seconds, _SLICE)
        await state.options.sleep(pause)
        seconds -= pause
        quiet += pause
        if response is not None and interval > 0 and quiet >= interval and seconds > 0:
            await response.write(b": keep-alive\n\n")
            quiet = 0.0


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


class _Dropped(Exception):
    """The scripted fault closed the connection; nothing more is sent."""


async def _respond(
    request: web.Request,
    state: State,
    chat: ChatRequest,
    settings: Settings,
    resolution: Resolution,
    entry: Entry,
    tickets: list[Ticket],
    memo_key: Any,
) -> web.StreamResponse:
    step = resolution.step
    scenario = resolution.scenario
    request_id = entry.request_id
    seed = digest(scenario.seed, request_id, resolution.step_index)
    # The same request would get the same bytes again (``created`` aside): nothing stateful.
    repeatable = resolution.stateless and step.fault is None and not tickets and not step.delay
    fault = step.fault if _fires(step.fault, state, step, seed) else None
    kind = fault.kind if fault else None
    if kind:
        entry.outcome = f"fault:{kind}"
    scale = state.options.speed
    headers = {"x-request-id": request_id, **step.headers}
    if settings.adjusted:
        headers["x-mock-adjusted"] = ", ".join(settings.adjusted)
    if state.options.worker is not None:
        headers["x-mock-worker"] = str(state.options.worker)
    if tickets:
        headers.update(tickets[-1].headers())
    if kind == "hang" or (kind == "stall" and not chat.stream):
        await _forever(request, state)
    if kind in ("reset", "drop") and not chat.stream:
        _abort(request)
        raise _Dropped
    if step.delay:
        await _wait(state, step.delay * scale)
    if step.error is not None:
        raise step.error.to_error(headers)
    if step.raw is not None:
        return web.Response(
            status=step.raw.status,
            body=step.raw.body.encode(),
            headers={**headers, "Content-Type": step.raw.content_type},
        )
    assert step.reply is not None
    reply = step.reply
    rendered = state.renderer.render(
        reply, chat, settings, step.cadence, resolution.captures, int(seed[:8], 16)
    )
    env = Envelope(
        id=f"chatcmpl-{seed}",
        created=int(state.options.clock()),
        model=reply.model or chat.model,
        system_fingerprint=state.options.system_fingerprint,
        call_id_seed=seed[:16],
    )
    used = usage(chat, rendered.choices, reply.usage)
    if tickets:
        for ticket in tickets:
            ticket.spend(used["total_tokens"])
        headers.update(tickets[-1].headers())
    if not chat.stream:
        if kind == "stream_error" and fault is not None:
            raise fault.error.to_error(headers)
        if step.cadence.first_delay:
            await _wait(state, step.cadence.first_delay * scale)
        body = completion_body(env, rendered, used)
        if kind == "malformed":
            body = body[: len(body) // 2]
        headers["Content-Type"] = JSON
        if repeatable and not step.cadence.first_delay:
            _remember(state, memo_key, env, body, headers, entry, chat)
        return web.Response(body=body, headers=headers)
    frames = sse_frames(env, rendered, used if chat.include_usage else None)
    scripted = delays(step.cadence, [d for _, d in frames], int(seed[8:16], 16))
    if any(scripted):
        entry.extra["delays"] = scripted
    waits = [w * scale for w in scripted]
    headers["Cache-Control"] = "no-cache"
    if kind is None and not any(waits):
        body = b"".join(f for f, _ in frames) + DONE
        headers["Content-Type"] = SSE
        if repeatable and not any(scripted):
            _remember(state, memo_key, env, body, headers, entry, chat)
        return web.Response(body=body, headers=headers)
    return await _stream(request, state, frames, waits, fault, headers)


def _remember(
    state: State,
    key: Any,
    env: Envelope,
    body: bytes,
    headers: Mapping[str, str],
    entry: Entry,
    chat: ChatRequest,
) -> None:
    memo = Memo(
        env.created, body, headers, entry.request_id, chat, entry.scenario or "", entry.adjusted
    )
    state.memos.put(key, memo)


async def _stream(
    request: web.Request,
    state: State,
    frames: list[tuple[bytes, float | None]],
    waits: list[float],
    fault: Fault | None,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    response = web.StreamResponse(headers={**headers, "Content-Type": SSE})
    kind = fault.kind if fault else None
    if kind == "reset":
        _abort(request)
        raise _Dropped
    await response.prepare(request)
    stop_at = fault.after_chunks if fault and kind != "no_done" else len(frames) + 1
    loop = asyncio.get_running_loop()
    start, due = loop.time(), 0.0
    for i, ((frame, _), wait) in enumerate(zip(frames, waits, strict=True)):
        if i == stop_at:
            break
        due += wait
        if wait:
            # Against the schedule, not the last write: a late chunk does not delay the rest.
            late = loop.time() - (start + due - wait)
            remaining = wait - late if late > _LATE else wait
            if remaining > 0:
                await _wait(state, remaining, response)
        await response.write(frame)
    if kind == "drop":
        _abort(request)
        raise _Dropped
    if kind == "stall":
        await _forever(request, state)
    if kind == "malformed":
        await response.write(b'data: {"id": "chatcmpl-broken", "choices": [\n\n')
    elif kind == "stream_error" and fault is not None:
        await response.write(b"data: " + fault.error.to_error({}).body_bytes() + b"\n\n")
    elif kind != "no_done":
        await response.write(DONE)
    await response.write_eof()
    return response


def _replay(memo: Memo, entry: Entry) -> web.Response:
    """The answer to a request seen before, byte for byte, journalled like the first."""
    entry.request_id = memo.request_id
    entry.body = memo.chat.body
    entry.chat = memo.chat
    entry.scenario = memo.scenario
    entry.step = 0
    entry.adjusted = memo.adjusted
    entry.status = 200
    return web.Response(body=memo.body, headers=memo.headers)


async def _read_body(request: web.Request, options: Options) -> bytes:
    """The body; a 413 over ``max_body``; a 408 when it comes too slowly (an attack, or a bug).

    Either error leaves the rest of the body unread, so the connection is closed after it."""
    try:
        if request.content.is_eof():
            return await request.read()  # it all came with the headers: nothing to wait for
        async with asyncio.timeout(options.body_timeout):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise APIError(
            413,
            f"The request body is larger than the limit of {options.max_body} bytes.",
            code="request_too_large",
        ) from None
    except TimeoutError:
        raise APIError(
            408,
            f"The request body did not arrive within {options.body_timeout:g} seconds.",
            code="request_timeout",
        ) from None


def _journal_body(raw: bytes) -> Any:
    """A rejected request's body for the journal: its JSON when it has any, else its text."""
    try:
        return parse_json_body(raw)
    except APIError:
        return raw.decode("utf-8", "replace")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    started = time.perf_counter()
    entry = Entry(
        seq=state.journal.next_seq(),
        time=state.options.clock(),
        method=request.method,
        path=request.path,
        request_id="",
        raw_headers=request.headers,
    )
    raw = b""
    try:
        try:
            raw = await _read_body(request, state.options)
            key = _check_auth(request, state.options.api_keys)
            names = state.scenarios.header_names
            memo_key = (raw, *(request.headers.get(n) for n in names)) if names else raw
            memo = state.memos.get(memo_key, int(entry.time))
            if memo is not None:
                return _replay(memo, entry)
            entry.request_id = "req_" + digest(raw)
            chat = parse_chat_request(raw, request.headers)
            entry.body = chat.body
            entry.chat = chat
            settings = state.options.profile.apply(chat)
            entry.adjusted = settings.adjusted
            try:
                resolution = state.scenarios.resolve(chat)
            except APIError as miss:
                entry.unmatched = miss.message
                raise
            entry.scenario = resolution.scenario.name
            entry.step = resolution.step_index
            try:
                tickets = _admit(state, key, chat, resolution.scenario)
            except APIError:
                entry.outcome = "rate_limited"
                raise
            response = await _respond(
                request, state, chat, settings, resolution, entry, tickets, memo_key
            )
        except APIError as err:
            response = _error_response(err, entry.request_id or "req_error")
            if err.status in (408, 413):
                response.force_close()
            if entry.body is None:
                entry.body = _journal_body(raw)
            if entry.outcome == "ok":
                entry.outcome = "error"
        entry.status = response.status
        return response
    except _Dropped:
        entry.status = 0
        raise asyncio.CancelledError from None
    except (ConnectionResetError, asyncio.CancelledError):
        if entry.outcome == "ok":
            entry.outcome = "client_disconnected"
        raise
    finally:
        entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        state.journal.record(entry, len(raw))
        if not state.options.quiet:
            log.info(
                "%s %s %s scenario=%s %s %.1fms",
                request.method,
                request.path,
                entry.status or "-",
                entry.scenario,
                entry.outcome,
                entry.duration_ms,
            )


def _model(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "mockserver"}


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    _check_auth(request, state.options.api_keys)
    data = [_model(m, 0) for m in state.scenarios.models]
    return web.json_response({"object": "list", "data": data})


async def get_model(request: web.Request) -> web.Response:
    state = request.app[STATE]
    model_id = request.match_info["model"]
    _check_auth(request, state.options.api_keys)
    if model_id not in state.scenarios.models:
        raise APIError(
            404,
            f"The model '{model_id}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    return web.json_response(_model(model_id, 0))


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)


async def _release_hangs(app: web.Application) -> None:
    app[STATE].closing.set()


def create_app(scenarios: Iterable[Scenario], options: Options | None = None) -> web.Application:
    """The mock as an aiohttp application. ``app[STATE]`` holds its scenarios and journal."""
    options = options or Options()
    app = web.Application(middlewares=[json_errors], client_max_size=options.max_body)
    state = app[STATE] = State(
        options=options,
        scenarios=ScenarioSet(scenarios, options.fallback),
        journal=Journal(options.journal_size),
    )
    if options.watch:
        watcher = state.watcher = Watcher(options.watch, state.replace, options.reload_interval)
        app.cleanup_ctx.append(lambda _: watcher.running())
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/chat/completions", chat_completions)
        app.router.add_get(f"{prefix}/models", list_models)
        app.router.add_get(f"{prefix}/models/{{model}}", get_model)
    app.router.add_get("/openapi.json", openapi_document)
    admin.add_routes(app)
    app.on_shutdown.append(_release_hangs)
    return app
