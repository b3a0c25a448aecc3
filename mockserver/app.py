"""The aiohttp application: a route per protocol, and the small handlers that are not a
protocol's (models, stored responses, the OpenAPI document, unknown routes), each guarded."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiohttp import web

from .core.errors import APIError, ScenarioError
from .inspector import admin, views
from .inspector.admin import Handler
from .inspector.openapi import DOCUMENT
from .media.blobs import Blob, sample_video
from .media.images import CONTENT_TYPES, encode, seed_of
from .pipeline import Pipeline, check_auth, error_response, request_id
from .protocols import JSON, Protocol
from .protocols.audio import Speech, Transcriptions, Translations
from .protocols.chat import Chat
from .protocols.embeddings import Embeddings
from .protocols.gemini import Gemini, GeminiEmbeddings
from .protocols.images import Images, from_token
from .protocols.messages import Messages
from .protocols.moderations import Moderations
from .protocols.responses import Responses
from .protocols.tasks import (
    SERVICES,
    STORED_PREFIX,
    Progress,
    Tasks,
    advance,
    aspect_size,
    poll_body,
    poll_service,
)
from .scenarios.matching import ScenarioSet
from .scenarios.reload import Watcher
from .scenarios.scenario import Scenario
from .serving import PROTOCOL_ROUTES, Routes
from .state.journal import Entry, Journal
from .state.live import STATE, Options, State
from .state.store import LocalStore, Store

log = logging.getLogger("mockserver")

_OPENAI = Chat()  # the error shape of routes that are not a protocol's
_HTTP_CODES = {404: "unknown_url", 405: "method_not_allowed", 413: "request_too_large"}


def _other_id(request: web.Request) -> str:
    """A request id for replies outside the pipeline (errors, models): unique per request."""
    state = request.app[STATE]
    return request_id(state.options, next(state.other_ids), lane=1)


def guarded(handler: Handler) -> Handler:
    """``handler``, whose every error a client can meet is an error object, never HTML or a
    traceback, and whose every reply carries an ``x-request-id``. Each route but the protocols'
    is wrapped in it; the pipeline shapes its own errors (as a middleware, this cost every
    request two more coroutines: 5% of a reply's instructions)."""

    @functools.wraps(handler)
    async def guard(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except APIError as err:
            return _logged(request, error_response(_OPENAI, err, _other_id(request)))
        except ScenarioError as err:
            body = {"error": {"message": str(err), "type": "invalid_request_error",
                              "param": None, "code": "invalid_scenario"},
                    "problems": [str(p) for p in err.problems]}  # fmt: skip
            return web.json_response(body, status=400, headers={"x-request-id": _other_id(request)})
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = {
                404: f"Unknown request URL: {request.method} {request.path}. Please check the URL.",
                405: f"Method {request.method} is not allowed for {request.path}.",
            }.get(exc.status, exc.reason)
            http_error = APIError(exc.status, message, code=_HTTP_CODES.get(exc.status))
            response = error_response(_OPENAI, http_error, _other_id(request))
            if exc.status == 405 and "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return _logged(request, response)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            log.exception("mockserver: unexpected error on %s %s", request.method, request.path)
            crash = APIError(500, "mockserver hit an unexpected error.")
            return error_response(_OPENAI, crash, _other_id(request))
        if "x-request-id" not in response.headers and not response.prepared:
            response.headers["x-request-id"] = _other_id(request)
        return response

    return guard


async def unknown_route(request: web.Request) -> web.StreamResponse:
    """Every request no other route takes: a 405 where the path is known, else a 404."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            _, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


def _logged(request: web.Request, response: web.Response) -> web.Response:
    """Requests outside the protocol routes get a log line too (unknown routes included)."""
    state = request.app[STATE]
    if "x-request-id" not in response.headers:
        response.headers["x-request-id"] = _other_id(request)
    if not state.options.quiet and not request.path.startswith("/_mock/"):
        log.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status,
            extra={"mock": {"method": request.method, "path": request.path,
                            "status": response.status,
                            "request_id": response.headers.get("x-request-id")}},
        )  # fmt: skip
    return response


def _asker(request: web.Request) -> Protocol:
    """The protocol whose client sent a request to a shared route (``GET /v1/models``): the
    first that claims it, else OpenAI's."""
    state = request.app[STATE]
    for protocol in state.protocols.values():
        if protocol.claims(request.path, request.headers, request.query):
            return protocol
    return _OPENAI


async def list_models(request: web.Request) -> web.Response:
    """The model list in the shape of the client's protocol (OpenAI's, Anthropic's, Google's)."""
    state = request.app[STATE]
    protocol = _asker(request)
    try:
        check_auth(protocol, request, state.options.api_keys)
    except APIError as err:
        return _logged(request, error_response(protocol, err, _other_id(request)))
    body = protocol.model_list(state.scenarios.models)
    return _logged(request, web.json_response(body))


async def get_model(request: web.Request) -> web.Response:
    state = request.app[STATE]
    protocol = _asker(request)
    name = request.match_info["model"]
    try:
        check_auth(protocol, request, state.options.api_keys)
        if name not in state.scenarios.models:
            raise protocol.unknown_model(name)
    except APIError as err:
        return _logged(request, error_response(protocol, err, _other_id(request)))
    return _logged(request, web.json_response(protocol.model(name)))


async def get_response(request: web.Request) -> web.Response:
    """A stored Responses API response, by id."""
    state = request.app[STATE]
    response_id = request.match_info["id"]
    check_auth(_OPENAI, request, state.options.api_keys)
    stored = await state.store.get_response(response_id)
    if stored is None:
        raise APIError(
            404,
            f"Response with id '{response_id}' not found.",
            param="response_id",
            code="response_not_found",
        )
    return _logged(request, web.Response(body=stored.body, content_type=JSON))


async def poll_task(request: web.Request) -> web.Response:
    """A relay task's state (``GET /ai/seedance/result?task_id=``, ``/ai/gemini/result?code=``):
    the next stage of its script, journalled like the submit."""
    state = request.app[STATE]
    service = poll_service(request.path)
    assert service is not None
    protocol = state.protocols["tasks"]
    seq = state.journal.next_seq()
    entry = Entry(seq=seq, time=state.options.clock(), method=request.method, path=request.path,
                  request_id=request_id(state.options, seq), raw_headers=request.headers,
                  api="tasks")  # fmt: skip
    task_id = request.query.get(service.query, "")
    entry.body = {service.query: task_id}
    try:
        check_auth(protocol, request, state.options.api_keys)
        if not task_id:
            raise APIError(400, f"Missing query parameter '{service.query}'.", param=service.query)
        stored = await state.store.get_response(STORED_PREFIX + task_id)
        record = json.loads(stored.body) if stored is not None else None
        if record is None or record.get("service") != service.name:
            raise APIError(404, f"Task not found: {task_id}.", param=service.query)
        progress = state.tasks.pop(task_id, None) or Progress(0, record["created"])
        state.tasks[task_id] = progress  # the most recently polled last: the oldest go first
        while len(state.tasks) > _TASKS_KEPT:
            del state.tasks[next(iter(state.tasks))]
        stage = advance(record["states"], progress, entry.time, state.options.speed)
        body = poll_body(record, stage, _media_url(request, record))
        entry.reply = {"task_id": task_id, "status": stage["status"],
                       "progress": stage.get("progress")}  # fmt: skip
        entry.outcome = "ok" if stage["status"] != "failed" else "task_failed"
        response = web.Response(body=body, content_type=JSON)
    except APIError as err:
        entry.outcome = "error"
        entry.reply = {"error": {"status": err.status, "message": err.message,
                                 "type": err.type, "code": err.code}}  # fmt: skip
        response = web.Response(status=err.status, body=protocol.error_body(err, entry.request_id),
                                content_type=JSON)  # fmt: skip
    response.headers["x-request-id"] = entry.request_id
    entry.status = response.status
    await state.store.record(entry)
    return _logged(request, response)


_TASKS_KEPT = 10_000


def _media_url(request: web.Request, record: dict[str, Any]) -> str:
    """Where a finished task's file is served: the scenario's (by digest), the sample video,
    or an image drawn from the prompt at the requested aspect ratio."""
    origin = f"{request.scheme}://{request.host}"
    if record.get("media"):
        return f"{origin}/media/files/{record['media']}"
    if record["service"] == "seedance":
        return f"{origin}/media/sample.mp4"
    w, h = aspect_size(record["body"])
    seed = seed_of(record["prompt"], record["model"], 0, record["seed"])
    return f"{origin}/media/images/{seed:016x}-{w}x{h}-24-0-100.png"


async def media_image(request: web.Request) -> web.Response:
    """A generated image, drawn again from its URL (no state: any worker serves it)."""
    found = from_token(request.match_info["token"])
    if found is None:
        raise web.HTTPNotFound()
    picture, fmt, quality = found
    return web.Response(body=encode(picture, fmt, quality), content_type=CONTENT_TYPES[fmt])


def _blobs(state: State) -> dict[str, Blob]:
    """The files the loaded scenarios pin, by the name their URL gives them."""
    out = {}
    for scenario in state.scenarios.scenarios:
        for step in scenario.steps:
            reply = step.reply
            if reply is None:
                continue
            media = reply.task.media if reply.task is not None else None
            for blob in (*reply.images, *([media] if media is not None else [])):
                out[f"{blob.digest}.{blob.extension}"] = blob
    return out


async def media_file(request: web.Request) -> web.Response:
    """A file a scenario pins (an image, a task's video), as written."""
    if request.match_info["name"] == "sample.mp4":
        blob: Blob | None = sample_video()
    else:
        blob = _blobs(request.app[STATE]).get(request.match_info["name"])
    if blob is None:
        raise web.HTTPNotFound()
    return web.Response(body=blob.data, content_type=blob.content_type)


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)


async def _connected(store: Store) -> AsyncIterator[None]:
    """For ``app.cleanup_ctx``: connect to the store before serving (or fail to start)."""
    await store.start()
    yield
    await store.close()


async def _release_hangs(app: web.Application) -> None:
    app[STATE].closing.set()


def protocols(options: Options) -> list[Protocol]:
    """The protocols a server speaks, each with its routes."""
    return [
        Chat(),
        Responses(options.responses_usage),
        Messages(),
        Embeddings(),
        Speech(),
        Transcriptions(),
        Translations(),
        Moderations(),
        Images(),
        Tasks(),
        Gemini(),
        GeminiEmbeddings(),
    ]


def create_app(
    scenarios: Iterable[Scenario], options: Options | None = None, store: Store | None = None
) -> web.Application:
    """The mock as an aiohttp application. ``app[STATE]`` holds its scenarios and journal;
    ``store`` keeps the state that decides answers (default: in this process; a
    ``SharedStore`` when several processes serve)."""
    options = options or Options()
    app = web.Application(client_max_size=options.max_body)
    state = app[STATE] = State(
        options=options,
        scenarios=ScenarioSet(scenarios, options.fallback),
        journal=Journal(options.journal_size),
        protocols={p.name: p for p in protocols(options)},
        store=store or LocalStore(),
    )
    app.cleanup_ctx.append(lambda _: _connected(state.store))
    if options.watch:
        watcher = state.watcher = Watcher(options.watch, state.replace, options.reload_interval)
        app.cleanup_ctx.append(lambda _: watcher.running())
    routes = app[PROTOCOL_ROUTES] = Routes()  # served without the router (``Runner``)
    for protocol in state.protocols.values():
        for route in protocol.routes:
            handle: Handler = Pipeline(protocol.for_route(route), state).handle
            for prefix in protocol.prefixes:
                routes.add(prefix + route, app.router.add_post(prefix + route, handle))
    for prefix in ("/v1", ""):
        app.router.add_get(f"{prefix}/responses/{{id}}", guarded(get_response))
    for prefix in dict.fromkeys(p for x in state.protocols.values() for p in x.prefixes):
        app.router.add_get(f"{prefix}/models", guarded(list_models))
        app.router.add_get(f"{prefix}/models/{{model}}", guarded(get_model))
    app.router.add_get("/openapi.json", guarded(openapi_document))
    for service in SERVICES:
        app.router.add_get(service.poll, guarded(poll_task))
    app.router.add_get("/media/images/{token}", guarded(media_image))
    app.router.add_get("/media/files/{name}", guarded(media_file))
    app.router.add_get("/media/{name:sample\\.mp4}", guarded(media_file))
    admin.add_routes(app, guarded)
    views.add_routes(app, guarded)
    app.router.add_route("*", "/{path:.*}", guarded(unknown_route))  # last: after every other
    app.on_shutdown.append(_release_hangs)
    return app
