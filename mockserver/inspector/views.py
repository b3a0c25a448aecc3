"""The live inspector: a page at ``/_mock/ui`` and the data routes it reads.

The page (``inspector/ui/``) is a static shell holding no data, so it loads without the admin
token; everything it shows comes from the routes below, which follow the admin rules
(``_check_admin``). ``/_mock/events`` streams the journal as server-sent events: the backlog,
then each entry as it is recorded, with its recording position as the event id so a viewer
resumes with ``Last-Event-ID`` without losing or doubling entries. A viewer that falls behind
by more than ``BUFFER`` entries is disconnected (told why first) rather than waited for: the
request path never waits on a browser.

Everything here reads the journal through the state's store, so the page is the same with one
process, ``--workers N`` or replicas on one ``--state redis://``: every process's requests, in
the order they were recorded, numbered by the store.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from multidict import CIMultiDict

from ..core.errors import APIError
from ..core.request import Request, parse_json_body
from ..protocols import Lookup, Protocol, Target
from ..scenarios.matching import (
    Verdict,
)
from ..scenarios.scenario import Scenario
from ..state.journal import Entry, Subscription
from ..state.live import STATE, State
from ..state.store import Feed, Store
from .admin import ADMIN, Handler, _check_admin

UI_DIR = Path(__file__).with_name("ui")
BUFFER = 256
"""Entries a viewer may fall behind by before it is disconnected (it then resumes)."""
WRITE_TIMEOUT = 10.0
"""Seconds a viewer may take to accept one write before it is disconnected."""
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
# The page runs no inline code and loads nothing from elsewhere; request text shown as markup
# would be inert even if the page had a bug.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
STREAMS = web.AppKey("inspector_streams", dict[Subscription, web.Request])


def _version() -> str:
    try:
        return metadata.version("mockserver")
    except metadata.PackageNotFoundError:
        return "unknown"


def _nothing_stored(_: str) -> None:
    return None


def parse_request(
    protocols: Mapping[str, Protocol],
    api: str,
    raw: bytes,
    headers: Mapping[str, str],
    lookup: Lookup = _nothing_stored,
    path: str = "",
) -> Request:
    """A body as the matcher reads it, parsed by the server's own protocol for ``api``."""
    return _protocol(protocols, api).parse(raw, headers, lookup, Target(path))


def _protocol(protocols: Mapping[str, Protocol], api: str) -> Protocol:
    protocol = protocols.get(api)
    if protocol is None:
        names = ", ".join(map(repr, protocols))
        raise APIError(
            400,
            f"Invalid value: {api!r}. Supported values are: {names}.",
            param="api",
            code="invalid_value",
        )
    return protocol


def _check_inspector(request: web.Request) -> None:
    """The admin rules."""
    _check_admin(request, request.app[STATE].options)


# --- the page ---------------------------------------------------------------------------------


def _check_page(request: web.Request) -> None:
    """The shell holds no data, so it needs no token; but where the admin routes are off
    (bound wide without a token) the page is off too."""
    options = request.app[STATE].options
    if not options.admin_enabled:
        _check_admin(request, options)


async def page(request: web.Request) -> web.Response:
    _check_page(request)
    return _static("index.html")


async def asset(request: web.Request) -> web.Response:
    _check_page(request)
    return _static(request.match_info["name"])


def _static(name: str) -> web.Response:
    path = UI_DIR / name
    kind = _TYPES.get(path.suffix)
    if kind is None or "/" in name or not path.is_file():
        raise web.HTTPNotFound()
    return web.Response(
        body=path.read_bytes(), content_type=kind, charset="utf-8", headers=_PAGE_HEADERS
    )


# --- journal entries as the page shows them ----------------------------------------------------


def _model(entry: Entry) -> str | None:
    if entry.request is not None:
        return entry.request.model
    model = entry.body.get("model") if isinstance(entry.body, dict) else None
    return model if isinstance(model, str) else None


def summary(position: int, entry: Entry) -> dict[str, Any]:
    """One journal row: small, so a backlog of a thousand entries streams quickly."""
    text = entry.last_user
    return {
        "pos": position,
        "seq": entry.seq,
        "time": entry.time,
        "api": entry.api,
        "method": entry.method,
        "path": entry.path,
        "model": _model(entry),
        "last_user": text if len(text) <= 300 else text[:299] + "…",
        "stream": entry.stream,
        "scenario": entry.scenario,
        "step": entry.step,
        "unmatched": entry.unmatched is not None,
        "status": entry.status,
        "outcome": entry.outcome,
        "duration_ms": entry.duration_ms,
        "adjusted": list(entry.adjusted),
    }


async def _find(store: Store, seq: int) -> Entry:
    entry = await store.entry(seq)
    if entry is not None:
        return entry
    raise APIError(
        404,
        f"No journal entry #{seq}: it never existed, was cleared, or is older than the "
        "journal keeps (--journal-size).",
        code="entry_not_found",
    )


def _seq(request: web.Request) -> int:
    raw = request.match_info["seq"]
    if not raw.isdigit():
        raise APIError(400, f"Invalid entry number: {raw!r}.", param="seq", code="invalid_value")
    return int(raw)


async def journal_entry(request: web.Request) -> web.Response:
    """One entry in full: body, headers (redacted), reply, delays, and for an unmatched one,
    why each of the nearest scenarios (as loaded now) failed."""
    state = request.app[STATE]
    _check_inspector(request)
    entry = await _find(state.store, _seq(request))
    out = entry.to_dict()
    out["model"] = _model(entry)
    out["last_user"] = entry.last_user
    if entry.unmatched is not None and entry.request is not None:
        misses = [v for v in state.scenarios.explain(entry.request) if not v.answers]
        ranked = sorted(enumerate(misses), key=lambda p: (len(p[1].failed) or 99, p[0]))
        out["nearest"] = [_verdict(v, rank) for rank, v in ranked[:5]]
    return _json(out)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=str),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


# --- the event stream -------------------------------------------------------------------------


def _frame(event: str, data: Any, position: int | None = None) -> bytes:
    head = f"id: {position}\n" if position is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def _last_event_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID", "").strip()
    return int(raw) if raw.isdigit() else None


def _opening(state: State, last: int | None, feed: Feed) -> list[bytes]:
    """What a viewer gets on connect: who we are, then what it has not seen yet."""
    options = state.options
    hello = {
        "version": _version(),
        "profile": options.profile.name,
        "speed": options.speed,
        "journal_size": options.journal_size,
        "unmatched": "default" if options.fallback is not None else "error",
        "recorded": feed.recorded,
        "resumed": last is not None,
    }
    frames = [_frame("hello", hello)]
    if last is not None and (last > feed.recorded or last < feed.cleared_at):
        # A restarted server, or a clear the viewer missed: its rows are stale.
        frames.append(_frame("cleared", {"missed": True}, feed.cleared_at))
    elif last is not None and last + 1 < feed.first_position:
        missed = feed.first_position - 1 - last
        frames.append(_frame("gap", {"missed": missed}))
    frames += [_frame("entry", summary(p, e), p) for p, e in feed.backlog]
    return frames


async def events(request: web.Request) -> web.StreamResponse:
    """The journal, live: its backlog, then what the store's subscription brings (news the
    backlog already held is skipped, so every entry is sent once)."""
    state = request.app[STATE]
    _check_inspector(request)
    last = _last_event_id(request)
    feed = await state.store.follow(last, BUFFER)
    subscription = feed.subscription
    opening = _opening(state, last, feed)
    request.app[STREAMS][subscription] = request
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        await _write(response, subscription, b"".join(opening))
        keepalive = state.options.keepalive or 15.0
        while not subscription.closed:
            try:
                async with asyncio.timeout(keepalive):
                    await subscription.wait()
            except TimeoutError:
                await _write(response, subscription, b": keep-alive\n\n")
                continue
            frames = []
            while subscription.items:
                position, entry = subscription.items.popleft()
                if position <= (feed.recorded if entry else feed.cleared_at):
                    continue  # news from before the backlog was read
                if entry is None:
                    frames.append(_frame("cleared", {"missed": False}, position))
                else:
                    frames.append(_frame("entry", summary(position, entry), position))
            if subscription.overflowed:
                frames.append(
                    _frame(
                        "overflow",
                        {
                            "message": f"This viewer fell more than {BUFFER} entries behind and "
                            "was disconnected; it resumes from its last entry."
                        },
                    )
                )
                subscription.closed = True
            if frames:
                await _write(response, subscription, b"".join(frames))
        await response.write_eof()
    except ConnectionResetError:
        pass  # the viewer left
    except TimeoutError:
        # It took no write for WRITE_TIMEOUT seconds: cut it, so no buffer waits on it.
        if request.transport is not None:
            request.transport.abort()
    finally:
        state.store.unfollow(feed)
        request.app[STREAMS].pop(subscription, None)
    return response


async def _write(response: web.StreamResponse, subscription: Subscription, data: bytes) -> None:
    """A write that a stuck viewer cannot hold for long."""
    subscription.writing = True
    try:
        async with asyncio.timeout(WRITE_TIMEOUT):
            await response.write(data)
    finally:
        subscription.writing = False


async def _end_streams(app: web.Application) -> None:
    """On shutdown: open pages end their streams at once (a stuck one is cut), so they never
    hold up a graceful stop."""
    for subscription, request in list(app[STREAMS].items()):
        subscription.close()
        if subscription.writing and request.transport is not None:
            request.transport.abort()


# --- scenarios --------------------------------------------------------------------------------


def _scenario(scenario: Scenario, rank: int, hits: int, seen: list[tuple[str, int]]) -> Any:
    steps = len(scenario.steps)
    return {
        "rank": rank,
        "name": scenario.name,
        "where": scenario.where,
        "source": scenario.source,
        "line": scenario.line,
        "priority": scenario.priority,
        "conditions": [c.describe() for c in scenario.conditions],
        "steps": steps,
        "after_last": scenario.after_last.value,
        "conversation": (
            f"header {scenario.conversation_header}"
            if scenario.conversation_header
            else "first user message"
        ),
        "hits": hits,
        "conversations": len(seen),
        "positions": [
            {"conversation": c if len(c) <= 80 else c[:79] + "…", "used": n, "of": steps}
            for c, n in seen[-10:]
        ],
    }


async def scenarios_detail(request: web.Request) -> web.Response:
    """The loaded set in the order tried, with hit counts, sequence positions and the
    problems of a failed hot reload. Hits are the journal's requests each scenario answered,
    counted by name as ``assert_called`` does: replies replayed from the memo never reach the
    matcher, so only the journal sees every one."""
    state = request.app[STATE]
    _check_inspector(request)
    journal = await state.store.journal()
    hits = Counter(entry.scenario for entry in journal if entry.scenario is not None)
    seen = state.scenarios.conversations()
    fallback = state.scenarios.fallback
    out: dict[str, Any] = {
        "scenarios": [
            _scenario(s, rank, hits[s.name], seen.get(s, []))
            for rank, s in enumerate(state.scenarios.scenarios)
        ],
        "fallback": None
        if fallback is None
        else {"name": fallback.name, "hits": hits[fallback.name]},
        "watching": state.watcher is not None,
        "reload_problems": [],
    }
    if state.watcher is not None and state.watcher.error is not None:
        out["reload_problems"] = [str(p) for p in state.watcher.error.problems]
    return _json(out)


# --- explain ----------------------------------------------------------------------------------


def _verdict(verdict: Verdict, rank: int) -> dict[str, Any]:
    scenario = verdict.scenario
    if verdict.answers:
        status = "answers"
    elif verdict.failed:
        status = "fails"
    elif verdict.step is None:
        status = "used_up"
    else:
        status = "shadowed"
    return {
        "rank": rank,
        "name": scenario.name,
        "where": scenario.where,
        "priority": scenario.priority,
        "verdict": status,
        "step": verdict.step,
        "steps": len(scenario.steps),
        "failed": list(verdict.failed)
        or (["all its steps have been used (after_last: stop)"] if status == "used_up" else []),
    }


async def _explain_input(payload: Any, store: Store) -> tuple[str, bytes, Mapping[str, str], str]:
    """``{"api", "body", "headers", "path"}``, ``{"seq": N}`` (a journal entry), or a bare chat
    body; ``path`` for protocols whose URL names the model (Gemini's). (A valid entry is
    explained from the request it parsed into: ``_parsed_entry``.)"""
    if not isinstance(payload, dict):
        raise APIError(400, "Expected a JSON object: a chat request body, or {'body': ...}.")
    if "seq" in payload and "body" not in payload:
        seq = payload["seq"]
        if not isinstance(seq, int):
            raise APIError(400, "'seq' must be a journal entry number.", param="seq")
        entry = await _find(store, seq)
        return entry.api, json.dumps(entry.body).encode(), entry.raw_headers, entry.path
    if isinstance(payload.get("body"), dict):
        api = payload.get("api", "chat")
        headers = payload.get("headers") or {}
        if not isinstance(api, str):
            raise APIError(400, "'api' must be a string.", param="api")
        if not isinstance(headers, dict):
            raise APIError(400, "'headers' must be an object.", param="headers")
        path = payload.get("path", "")
        if not isinstance(path, str):
            raise APIError(400, "'path' must be a string.", param="path")
        given = {k: str(v) for k, v in headers.items()}
        return api, json.dumps(payload["body"]).encode(), given, path
    return "chat", json.dumps(payload).encode(), {}, ""


async def explain_request(
    state: State, api: str, raw: bytes, headers: Mapping[str, str], path: str = ""
) -> Any:
    """Which scenario would answer, and why each other would not; changes no state."""
    protocol = _protocol(state.protocols, api)
    try:
        where = Target(path.partition("?")[0])  # a journalled path keeps its query
        chat = await state.store.parse(protocol, raw, CIMultiDict(headers), where)
        settings = state.options.profile.apply(chat)
    except APIError as err:
        if err.param == "api":
            raise
        return {"api": api, "rejected": {"status": err.status, **err.body()["error"]}}
    return explain_parsed(state, api, chat, settings.adjusted)


def explain_parsed(
    state: State, api: str, chat: Request, adjusted: tuple[str, ...] | None = None
) -> Any:
    """``explain_request`` of a request already parsed."""
    if adjusted is None:
        adjusted = state.options.profile.apply(chat).adjusted
    verdicts = state.scenarios.explain(chat)
    answer = next((v for v in verdicts if v.answers), None)
    fallback = state.scenarios.fallback_for(chat)
    out: dict[str, Any] = {
        "api": api,
        "request": {
            "model": chat.model,
            "last_user": chat.last_user,
            "stream": chat.stream,
            "tools": chat.tool_names,
        },
        "adjusted": list(adjusted),
        "answer": None,
        "scenarios": [_verdict(v, rank) for rank, v in enumerate(verdicts)],
    }
    if answer is not None:
        out["answer"] = {
            "scenario": answer.scenario.name,
            "where": answer.scenario.where,
            "step": answer.step,
            "steps": len(answer.scenario.steps),
        }
    elif fallback is not None:
        out["answer"] = {"scenario": fallback.name, "where": "--unmatched default", "step": 0}
        out["fallback"] = True
    elif state.protocols[api].answers_unmatched:  # embeddings: generated vectors
        out["answer"] = {"scenario": "generated", "where": "generated", "step": 0}
    else:
        out["unmatched"] = state.scenarios.no_match(chat).message
    return out


async def _parsed_entry(payload: Any, store: Store) -> Entry | None:
    """The journal entry ``{"seq": N}`` names, when it holds its parsed request: explained from
    that, since its body as the journal keeps it is not always what was sent (a multipart
    upload is kept as its fields and a description of its file)."""
    if isinstance(payload, dict) and isinstance(payload.get("seq"), int) and "body" not in payload:
        entry = await _find(store, payload["seq"])
        return entry if entry.request is not None else None
    return None


async def explain(request: web.Request) -> web.Response:
    state = request.app[STATE]
    _check_inspector(request)
    payload = parse_json_body(await request.read())
    entry = await _parsed_entry(payload, state.store)
    if entry is not None and entry.request is not None:
        return _json(explain_parsed(state, entry.api, entry.request))
    api, raw, headers, path = await _explain_input(payload, state.store)
    return _json(await explain_request(state, api, raw, headers, path))


# --- from request to scenario -----------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Lists indented under their key, as the README's examples write them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def scenario_for(entry: Entry) -> str:
    """Scenario YAML that matches what ``entry`` sent; its reply is the mock's, or to fill in."""
    chat = entry.request
    if chat is None:
        raise APIError(
            409,
            f"Entry #{entry.seq} was not a valid request, so there is nothing to match on.",
            code="entry_not_valid",
        )
    match: dict[str, Any] = {"model": chat.model}
    if chat.last_user:
        match["last_user"] = chat.last_user
    if entry.api != "chat":
        match = {"api": entry.api, **match}
    role = chat.messages[-1]["role"] if chat.messages else "user"
    if role != "user":
        match["last_role"] = role
    if chat.tool_names:
        match["tools"] = chat.tool_names
    if chat.response_format not in (None, "text"):
        match["response_format"] = chat.response_format
    reply = entry.reply or {}
    step: dict[str, Any]
    if entry.unmatched is not None:  # the mock's own 404 is what the new scenario replaces
        fill = "TODO: what the mock should answer"
        step = {"reply": {"embedding_style": "semantic"} if entry.api == "embeddings" else {
            "content": fill}}  # fmt: skip
    elif "error" in reply:
        error = reply["error"]
        step = {"error": {"status": error.get("status"), "message": error.get("message")}}
    else:
        out = {"content": reply.get("content") or "TODO: what the mock should answer"}
        if reply.get("tool_calls"):
            out = {"tool_calls": [
                {"name": c.get("name"), "arguments": c.get("arguments")}
                for c in reply["tool_calls"]
            ]}  # fmt: skip
            if reply.get("content"):
                out["content"] = reply["content"]
        if "flagged" in reply:  # a moderation: the categories are its answer
            out = {"flagged": list(reply["flagged"])}
        step = {"reply": out}
    file = chat.body.get("file")
    if isinstance(file, dict) and isinstance(file.get("filename"), str):  # an upload
        match["file"] = file["filename"]
    scenario = {"name": f"from-request-{entry.seq}", "match": match, **step}
    text = yaml.dump(
        {"scenarios": [scenario]}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )
    head = (
        f"# From journal entry #{entry.seq} ({entry.method} {entry.path}): matches what it "
        "sent.\n# Loosen the match (contains, regex) and fill in the reply.\n"
    )
    return head + text


async def entry_scenario(request: web.Request) -> web.Response:
    state = request.app[STATE]
    _check_inspector(request)
    entry = await _find(state.store, _seq(request))
    return web.Response(
        text=scenario_for(entry),
        content_type="application/yaml",
        headers={"Cache-Control": "no-store"},
    )


def add_routes(app: web.Application, guard: Callable[[Handler], Handler]) -> None:
    """The inspector's routes; the shell page and its files need no token, the data does."""
    app[STREAMS] = {}
    app.router.add_get(f"{ADMIN}/ui", guard(page))
    app.router.add_get(f"{ADMIN}/ui/{{name}}", guard(asset))
    app.router.add_get(f"{ADMIN}/events", guard(events))
    app.router.add_post(f"{ADMIN}/explain", guard(explain))
    app.router.add_get(f"{ADMIN}/journal/{{seq}}", guard(journal_entry))
    app.router.add_get(f"{ADMIN}/journal/{{seq}}/scenario", guard(entry_scenario))
    app.router.add_get(f"{ADMIN}/scenarios/detail", guard(scenarios_detail))
    app.on_shutdown.append(_end_streams)
