"""The request pipeline, written once and driven by a protocol.

read body -> auth -> memo -> parse (protocol) -> profile -> match -> admit (rate limits) ->
delay -> fault -> render (core) -> write (protocol: JSON, or stream frames at the cadence) ->
journal. Nothing here knows a wire format: the protocol module does that part.

With a recorder (``mockserver record``, ``serve --record-missing``), the parsed request is
forwarded to a real upstream instead of matched (every request), or when nothing matched.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from .core.bounded import keep
from .core.caching import Outcome
from .core.errors import APIError
from .core.profiles import UNTOUCHED, Settings
from .core.request import Request
from .core.secrets import redact_target
from .protocols import HEAVY, JSON, NO_QUERY, Answer, Frame, Protocol, Stored, Target
from .protocols.compiled import Mold, Values, compiled_body, compiled_stream, filling, values
from .scenarios.matching import Resolution
from .scenarios.ratelimit import Ticket
from .scenarios.render import Envelope, Rendered, Usage, delays, reply_seed, usage
from .scenarios.scenario import Fault, Message, Reply, Scenario, Step
from .serving import ReadyResponse, wire_head
from .state.journal import Entry
from .state.live import Options, State
from .state.memo import Memo

log = logging.getLogger("mockserver")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_SCRAMBLE = 0x9E3779B97F4A7C15F39CC0619E3779B9  # odd: multiplying by it mod 2**128 is a bijection
_ID_SPACE = (1 << 128) - 1


def request_id(options: Options, seq: int, lane: int = 0) -> str:
    """Unique per request: per server run (``options.run``, drawn at start-up, so two servers
    or two runs never share one), per worker and per ``lane`` (pipeline replies, other
    replies); scrambled, since an id is not an order. A multiply, not a hash: it is on every
    request's path. 32 hex digits, as OpenAI's. The run, worker and lane fill the high bits and
    ``seq`` the low 64, so the product is their part's (made once: ``_BASES``) plus ``seq``'s."""
    key = (options.run, options.worker, lane)
    base = _BASES.get(key)
    if base is None:
        high = options.run << 96 | (options.worker or 0) << 72 | lane << 64
        base = keep(_BASES, key, high * _SCRAMBLE & _ID_SPACE, 64)
    return "req_%032x" % ((base + seq * _SCRAMBLE) & _ID_SPACE)


_BASES: dict[tuple[int, int | None, int], int] = {}
"""``request_id``'s product for each run, worker and lane."""


def error_response(
    protocol: Protocol, err: APIError, rid: str, extra: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=err.status,
        body=protocol.error_body(err, rid),
        content_type=JSON,
        headers={**protocol.headers(rid), **(extra or {}), **err.headers},
    )


def check_auth(
    protocol: Protocol,
    request: web.Request,
    keys: frozenset[str],
    query: Mapping[str, str] | None = None,
) -> str:
    """The request's API key, or the 401 the protocol sends (``query``: the request's, when
    read already)."""
    token = protocol.api_key(request.headers, request.query if query is None else query)
    if token is None or (keys and token not in keys):
        raise protocol.auth_error(request.headers, token)
    return token


async def _fires(state: State, fault: Fault | None, resolution: Resolution, seed: str) -> bool:
    if fault is None:
        return False
    if fault.nth is not None:
        return await state.store.fires_nth(resolution, fault.nth)
    if fault.probability is not None:
        return random.Random(seed).random() < fault.probability
    return True


class _Dropped(Exception):
    """The scripted fault closed the connection; nothing more is sent."""


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


async def _forever(request: web.Request, state: State) -> None:
    """A scripted hang: until the client leaves (the handler is cancelled) or the server stops."""
    await state.closing.wait()
    _abort(request)
    raise _Dropped


_PREPARED = 4096
"""Steps' headers kept (``Pipeline._head``); all are forgotten when more come (a reload)."""


@dataclass(frozen=True, slots=True)
class _Head:
    """The headers every reply of a step in one content type carries, the request ids aside,
    made once (``Pipeline._head``)."""

    fields: dict[str, str]
    """As the step and content type give them: what a request's own headers, an error's or a
    stream's are merged with."""
    sent: CIMultiDict[str] | None
    """The same, as aiohttp sends them: a reply copies it and adds its ids (``Pipeline._reply``)
    instead of merging dicts that aiohttp then converts. None where the step sets a request-id
    header itself, which the merge overwrites in its place."""
    wire: bytes | None = None
    """``sent`` with a 200's status line, as aiohttp writes them (``serving.wire_head``): what
    a reply written whole begins with, its ids next. None where aiohttp must write it."""

    def joined(self, extra: Mapping[str, str]) -> tuple[Mapping[str, str], bytes | None]:
        """These headers with a request's ``extra`` after them, and ``wire`` where there is no
        ``extra``: what ``Pipeline._reply`` sends."""
        if extra:
            return {**self.fields, **extra}, None
        return self.fields if self.sent is None else self.sent, self.wire

    def merged(self, extra: Mapping[str, str], ids: Mapping[str, str]) -> dict[str, str]:
        """These headers, a request's ``extra`` and its ids, as one dict: what a reply written
        piece by piece or paced sends (aiohttp converts it once, at its start)."""
        return {**self.fields, **extra, **ids}


_SLICE = 1.0
_LATE = 0.001
_BATCH = 256 * 1024
"""Bytes of frames made and written at once when a heavy stream goes out without pauses
(~10 ms of work); other requests are served between batches."""


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


def _states_cache(fixed: Any) -> bool:
    """A scenario's stated cache figures win over the simulation."""
    return bool(fixed) and ("cached_tokens" in fixed or "cache_write_tokens" in fixed)


def cached_usage(used: Usage, outcome: Outcome, apart: bool) -> None:
    """Caching's figures in usage, never more than the prompt. ``apart`` (Anthropic): input
    tokens are what was neither read nor written, and writes are split by TTL."""
    read = min(outcome.read, used.prompt)
    used.cached = read
    if not apart:
        return
    written = min(outcome.written, used.prompt - read)
    hour = min(outcome.written_1h, written)
    used.cache_write = written
    used.cache_split = (written - hour, hour)
    used.prompt -= read + written


_GENERATED_STEP = Step(reply=Reply(choices=(Message(),)))
GENERATED = Resolution(
    Scenario("generated", (_GENERATED_STEP,)), _GENERATED_STEP, 0, {}, stateless=True
)
"""What answers a request no scenario matches, for protocols that need no script."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A step's reply compiled for one request shape, with all of it that no request of that
    shape changes. Taken from what the general path made and checked (``_keep``), so the two
    cannot drift; a request then costs its own values and one fill (``_fill``): no render
    lookup, ``Envelope``, ``Answer``, usage or journal summary of its own. A stored copy
    (Responses) is made from the same scalars (``Protocol.kept``)."""

    rendered: Rendered
    body: Mold
    """The plain body, or every frame of a stream joined (sent whole when nothing waits)."""
    pacing: tuple[tuple[bool, float | None], ...] | None
    """A stream's frames' pacing (what its scripted delays are made from); None: plain."""
    head: _Head
    """The step's headers in this reply's content type (``_head``)."""
    model: str | None
    """The scenario's model; None: the request's."""
    prompt: int | None
    """The prompt tokens the scenario states; None: the request's count."""
    completion: int
    reasoning: int
    cached: int
    plain: Mold | None
    """The plain body compiled, which a stored copy writes when read (a protocol that
    ``keeps``: the copy holds this request's values, not the body); None: nothing kept."""


class Pipeline:
    """One protocol's handler: ``handle`` serves its routes."""

    def __init__(self, protocol: Protocol, state: State) -> None:
        self.protocol = protocol
        self.state = state
        self._prepared: dict[tuple[Step, str | None, bool], _Head] = {}
        """Each step's reply headers, by content type (``_head``)."""
        self._compiled: dict[Hashable, _Compiled] = {}
        """Each step's compiled replies, by request shape (``_fill``)."""
        self._targets: dict[str, Target] = {}
        """Each path's ``Target`` when it has no query (Gemini's name a model: bounded)."""
        self._id_lines = "".join(f"{name}: {{0}}\r\n" for name in protocol.request_id_headers)
        """The request id's header lines, as a reply written whole has them (``_reply``)."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        started = time.perf_counter()
        seq = state.journal.next_seq()
        options = state.options
        # A query string? The target as it came is a plain string (the memo key reads it too);
        # yarl's query string is made only for a URL with a '?'.
        queried = "?" in request.raw_path and bool(request.query_string)
        # By position (a keyword call builds a dict first): seq, time, method, path,
        # request_id, raw_headers, api, worker.
        entry = Entry(
            seq,
            options.clock(),
            request.method,
            redact_target(request.path_qs) if queried else request.path,
            request_id(options, seq),
            request.headers,
            self.protocol.name,
            options.worker,
        )
        try:
            response = await self._serve(request, entry, queried)
        except BaseException as cut:
            if isinstance(cut, _Dropped):
                entry.status = 0
            elif isinstance(cut, ConnectionResetError | asyncio.CancelledError) and (
                entry.outcome == "ok"
            ):
                entry.outcome = "client_disconnected"
            # else a stream cut by an unexpected error: journalled all the same
            await self._journal(entry, started)
            if not self.state.options.quiet:
                log_entry(entry)
            if isinstance(cut, _Dropped):
                raise asyncio.CancelledError from None
            raise
        gone = await self._journal(entry, started)
        if gone is not None and not response.prepared:
            # The store could not keep the entry: the reply not yet sent becomes its 503, so
            # the one log line and the client agree (a stream under way is only logged).
            response = _refused(self.protocol, gone, entry, b"")
            entry.status = response.status
        if not self.state.options.quiet:
            log_entry(entry)
        return response

    async def _journal(self, entry: Entry, started: float) -> APIError | None:
        """Keep the entry; the store's error when it could not (a lost shared store)."""
        entry.elapsed = time.perf_counter() - started
        try:
            await self.state.store.record(entry)
        except APIError as gone:
            return gone
        return None

    async def _serve(self, request: web.Request, entry: Entry, queried: bool) -> web.StreamResponse:
        state = self.state
        protocol = self.protocol
        store = state.store
        raw = b""
        try:
            raw = await read_body(request, state.options)
            entry.size = len(raw)
            query = request.query if queried else NO_QUERY
            key = check_auth(protocol, request, state.options.api_keys, query)
            # The request as sent, byte for byte (``Memos``): the target is the URL as it came
            # (str(URL) would be made anew for each request), and the headers some condition reads.
            names = state.scenarios.header_names
            memo_key: tuple[bytes | str | None, ...] = (raw, protocol.name, request.raw_path)
            if names:
                memo_key += tuple(map(request.headers.get, names))
            memo = state.memos.get(memo_key, int(entry.time))
            if memo is not None:
                if memo.stored is not None:
                    await store.put_response(memo.stored)
                return self._replay(memo, entry)
            path = request.path
            target = Target(path, query) if query else self._targets.get(path)
            if target is None:  # a path without a query: its target is made once
                target = keep(self._targets, path, Target(path), _PREPARED)
            req = await store.parse(protocol, raw, request.headers, target)
            entry.parsed(req, raw, protocol, target)
            immediate = protocol.immediate(req)
            if immediate is not None:  # computed from the request: nothing to match
                entry.status = 200
                return web.Response(
                    body=immediate, content_type=JSON, headers=protocol.headers(entry.request_id)
                )
            recorder = state.options.recorder
            if recorder is not None and recorder.forward_all:
                response = await recorder.forward(request, protocol, req, raw, entry)
                entry.status = response.status
                return response
            # A profile's rules read the parameters a request sets: most set none.
            settings = state.options.profile.apply(req) if req.params else UNTOUCHED
            entry.adjusted = settings.adjusted
            try:
                resolution = await store.resolve(state.scenarios, req)
            except APIError as miss:
                found = None
                if recorder is not None and miss.code == "scenario_not_found":
                    found = recorder.resolve(req)  # recorded earlier in this run
                    if found is None:  # record on miss
                        response = await recorder.forward(request, protocol, req, raw, entry)
                        entry.status = response.status
                        return response
                if found is None and protocol.answers_unmatched:
                    found = GENERATED
                if found is None:
                    entry.unmatched = miss.message
                    raise
                resolution = found
            if protocol.answers_unmatched and resolution.scenario is state.scenarios.fallback:
                resolution = GENERATED  # its own answer beats a chat text (--unmatched default)
            entry.scenario = resolution.scenario.name
            entry.step = resolution.step_index
            if resolution.step.verbatim and (
                settings.limit is not None or settings.stop or settings.empty
            ):  # the upstream already applied them: a recording replays verbatim
                settings = Settings(adjusted=settings.adjusted)
            server = state.options.rate_limit
            tickets: list[Ticket] = []
            if server is not None or resolution.scenario.rate_limit is not None:
                try:
                    tickets = await store.admit(
                        server, resolution.scenario, key, req, state.options.clock()
                    )
                except APIError as refused:
                    entry.outcome = "rate_limited"
                    if refused.ticket is not None:
                        retry = {k: v for k, v in refused.headers.items() if k.startswith("retry")}
                        refused.headers = {**protocol.rate_limit_headers(refused.ticket), **retry}
                    raise
            response = await self._respond(
                request, state, req, raw, settings, resolution, entry, tickets, memo_key, key
            )
        except APIError as err:
            response = _refused(protocol, err, entry, raw)
        except (_Dropped, ConnectionResetError):
            raise
        except Exception:
            if request.writer.output_size:  # a stream under way: all that is left is to cut it
                raise
            log.exception("mockserver: unexpected error on %s %s", request.method, request.path)
            crash = APIError(500, "mockserver hit an unexpected error.")
            response = _refused(protocol, crash, entry, raw)
        entry.status = response.status
        return response

    def _replay(self, memo: Memo, entry: Entry) -> web.Response:
        """The answer to a request seen before, byte for byte, journalled like the first."""
        entry.replayed(memo.request, memo.reply)
        entry.scenario = memo.scenario
        entry.step = 0
        entry.adjusted = memo.adjusted
        entry.status = 200
        return self._reply(memo.body, memo.headers, entry.request_id, memo.wire)

    async def _respond(
        self,
        request: web.Request,
        state: State,
        req: Request,
        raw: bytes,
        settings: Settings,
        resolution: Resolution,
        entry: Entry,
        tickets: list[Ticket],
        memo_key: Any,
        key: str,
    ) -> web.StreamResponse:
        protocol = self.protocol
        step = resolution.step
        scenario = resolution.scenario
        seed = reply_seed(scenario.seed, raw, resolution.step_index)
        # The same request would get the same bytes again (``created`` aside): nothing stateful.
        repeatable = (
            resolution.stateless
            and step.fault is None
            and not tickets
            and not step.delay
            and not req.context
            and not state.options.prompt_cache  # a repeat reads what the first one wrote
            and not protocol.creates
        )
        fires = await _fires(state, step.fault, resolution, seed) if step.fault else False
        fault = step.fault if fires else None
        kind = fault.kind if fault else None
        if kind:
            entry.outcome = f"fault:{kind}"
        scale = state.options.speed
        extra: dict[str, str] = {}  # this request's own headers
        if settings.adjusted:
            extra["x-mock-adjusted"] = ", ".join(settings.adjusted)
        if tickets:
            extra.update(protocol.rate_limit_headers(tickets[-1]))
        if kind == "hang" or (kind == "stall" and not req.stream):
            await _forever(request, state)
        if kind in ("reset", "drop") and not req.stream:
            _abort(request)
            raise _Dropped
        if step.delay:
            await _wait(state, step.delay * scale)
        if step.error is not None:
            raise step.error.to_error({**self._headers(step), **extra})
        if step.raw is not None:
            return web.Response(
                status=step.raw.status,
                body=step.raw.body,
                headers={**self._headers(step), **extra, **protocol.headers(entry.request_id),
                         "Content-Type": step.raw.content_type},
            )  # fmt: skip
        assert step.reply is not None
        reply = step.reply
        # A compiled reply is kept per step and request shape (``_Compiled``): once it is, a
        # request of that shape is its own values and one fill.
        shaped: Hashable = None
        if kind is None and not state.options.prompt_cache:
            shape = protocol.shape(req)
            if shape is not None:
                shaped = (step, req.stream, req.n, settings.limit, settings.stop, settings.empty,
                          shape, state.options.system_fingerprint)  # fmt: skip
                kept = self._compiled.get(shaped)  # kept by ``_keep`` once the general path made it
                if kept is not None:
                    sent = await self._fill(
                        request, state, req, raw, resolution, kept, seed, entry, extra,
                        tickets, memo_key, repeatable,
                    )  # fmt: skip
                    if sent is not None:
                        return sent
        rendered = state.renderer.render(
            reply, req, settings, step.cadence, resolution.captures, int(seed[:8], 16)
        )
        env = Envelope(
            id=protocol.id_prefix + seed,
            created=int(state.options.clock()),
            model=reply.model or req.model,
            system_fingerprint=state.options.system_fingerprint,
            call_id_seed=seed[:16],
        )
        used = usage(req, rendered, reply.usage)
        cadence = step.cadence
        compiles = kind is None  # the compiled reply: no fault, usage as counted
        if state.options.prompt_cache and not _states_cache(reply.usage):
            outcome = await self._cache(state, key, req, used)
            if outcome is not None:
                compiles = False
                entry.extra["prompt_cache"] = outcome.summary()
                if outcome.read and cadence.cached_first_delay is not None:
                    cadence = replace(cadence, first_delay=cadence.cached_first_delay)
        answer = Answer(
            req, rendered, used, env, reply, scenario.seed, entry.request_id, entry.time
        )
        entry.answered(rendered.choices[0], used.prompt, used.completion, used.reasoning,
                       used.cached, env)  # fmt: skip
        if tickets:
            await state.store.spend(tickets, used.total)
            extra.update(protocol.rate_limit_headers(tickets[-1]))
        heavy = rendered.pieces > HEAVY
        if not req.stream:
            if kind in ("stream_error", "failed") and fault is not None:
                raise fault.error.to_error({**self._headers(step), **extra})
            if cadence.first_delay:
                await _wait(state, cadence.first_delay * scale)
            content_type = protocol.content_type(answer)
            head = self._head(step, content_type)
            pieces = protocol.pieces(answer) if kind is None else None
            if pieces is not None:
                ids = protocol.headers(entry.request_id)
                response = await _write_pieces(request, pieces, head.merged(extra, ids), entry)
                entry.describe(protocol.reply_summary(answer))
                return response
            mold = compiled_body(protocol, answer) if compiles else None
            filled = values(protocol, answer) if mold is not None else ()
            body = mold.fill(filled) if mold is not None else protocol.body(answer)
            described = protocol.reply_summary(answer)
            entry.describe(described)
            if mold is not None and shaped is not None and not described:
                self._keep(shaped, answer, filled, mold, None, head)
            stored = await self._store(state, answer, raw, body) if kind is None else None
            if kind == "malformed":
                body = body[: len(body) // 2]
            headers, wire = head.joined(extra)
            if repeatable and not cadence.first_delay and not heavy:
                self._remember(state, memo_key, body, headers, entry, req, stored, wire)
            return self._reply(body, headers, entry.request_id, wire)
        content_type = protocol.stream_content_type(req)
        head = self._head(step, content_type, stream=True)
        if heavy and kind is None and (cadence.instant or not scale):  # nothing to wait for
            await self._store(state, answer, raw, None)
            batches = _batches(protocol.frames(answer), lambda sent: protocol.end(answer, sent))
            ids = protocol.headers(entry.request_id)
            response = await _write_pieces(request, batches, head.merged(extra, ids), entry)
            entry.describe(protocol.reply_summary(answer))
            return response
        made = compiled_stream(protocol, answer) if compiles else None
        frames: list[Frame] = []
        if made is not None:
            pacing: Sequence[tuple[bool, float | None]] = made.pacing
        else:
            frames = await _gather(protocol.frames(answer)) if heavy else [*protocol.frames(answer)]
            pacing = [(f.paced, f.delay) for f in frames]
        described = protocol.reply_summary(answer)
        entry.describe(described)
        scripted = [] if cadence.instant else delays(cadence, pacing, int(seed[8:16], 16))
        if any(scripted):
            entry.extra["delays"] = scripted
        paused = bool(scale) and any(scripted)
        filled = values(protocol, answer) if made is not None else ()  # once: signatures
        if made is not None and shaped is not None and not described:
            self._keep(shaped, answer, filled, made.whole, made.pacing, head)
        writes = filled if made is not None else None  # what writes a stored copy's body
        if kind is None and not paused:
            if made is not None:
                body = made.whole.fill(filled)
            else:
                body = b"".join(f.data for f in frames) + protocol.end(answer, len(frames))
            stored = await self._store(state, answer, raw, None, writes)
            headers, wire = head.joined(extra)
            if repeatable and not any(scripted) and not heavy:
                self._remember(state, memo_key, body, headers, entry, req, stored, wire)
            return self._reply(body, headers, entry.request_id, wire)
        end = None
        if kind is None:
            await self._store(state, answer, raw, None, writes)
            if made is not None:
                frames, end = made.filled(filled), made.end.fill(filled)
        waits = [w * scale for w in scripted] if paused else [0.0] * len(pacing)
        headers = head.merged(extra, protocol.headers(entry.request_id))
        return await self._stream(request, state, entry, answer, frames, waits, fault, headers, end)

    def _keep(
        self,
        shaped: Hashable,
        answer: Answer,
        filled: Values,
        body: Mold,
        pacing: tuple[tuple[bool, float | None], ...] | None,
        head: _Head,
    ) -> None:
        """What the general path compiled for ``answer``, kept for the next request of its
        step and shape (``_fill``)."""
        plain = None
        if self.protocol.keeps:
            plain = body if pacing is None else compiled_body(self.protocol, answer, now=True)
            if plain is None:
                return  # no compiled body for its stored copy to write: the general path
        rendered, fixed = answer.rendered, answer.reply.usage if answer.reply else None
        used = answer.usage
        made = _Compiled(
            rendered=rendered,
            body=body,
            pacing=pacing,
            head=head,
            model=answer.reply.model if answer.reply else None,
            prompt=fixed.get("prompt_tokens") if fixed else None,
            completion=used.completion,
            reasoning=used.reasoning,
            cached=used.cached,
            plain=plain,
        )
        keep(self._compiled, shaped, made, _PREPARED)

    async def _fill(
        self,
        request: web.Request,
        state: State,
        req: Request,
        raw: bytes,
        resolution: Resolution,
        made: _Compiled,
        seed: str,
        entry: Entry,
        extra: dict[str, str],
        tickets: list[Ticket],
        memo_key: Any,
        repeatable: bool,
    ) -> web.Response | None:
        """The general path's reply, from what it compiled: this request's own values (id,
        ``created``, model, prompt tokens) and one fill, the journal given scalars. None for a
        stream with pauses, which the general path sends frame by frame."""
        protocol = self.protocol
        cadence = resolution.step.cadence
        stream = made.pacing is not None
        scripted: list[float] = []
        if made.pacing is not None and not cadence.instant:
            scripted = delays(cadence, made.pacing, int(seed[8:16], 16))
        waits = any(scripted) if stream else bool(cadence.first_delay)
        if stream and waits and state.options.speed:
            return None
        choice = made.rendered.choices[0]
        prompt = req.prompt_tokens if made.prompt is None else made.prompt
        total = prompt + made.completion
        rid = protocol.id_prefix + seed
        created = int(state.options.clock())
        model = made.model or req.model
        env = None
        if choice.tool_calls:  # what names the calls in the journal
            env = Envelope(rid, created, model, state.options.system_fingerprint, seed[:16])
        filled = filling(protocol, req, made.rendered, rid, seed[:16], created, model, prompt,
                         total)  # fmt: skip
        entry.answered(choice, prompt, made.completion, made.reasoning, made.cached, env)
        if stream and waits:
            entry.extra["delays"] = scripted
        if tickets:
            await state.store.spend(tickets, total)
            extra.update(protocol.rate_limit_headers(tickets[-1]))
        if waits and not stream:
            await _wait(state, cadence.first_delay * state.options.speed)
        body = made.body.fill(filled)
        stored = None
        if protocol.keeps:
            # the stored copy: the values, which write its body when someone reads it
            stored = protocol.kept(req, raw, made.rendered, rid, seed[:16], None, made.plain,
                                   filled)  # fmt: skip
            if stored is not None:
                await state.store.put_response(stored)
        headers, wire = made.head.joined(extra)
        if repeatable and not waits:
            self._remember(state, memo_key, body, headers, entry, req, stored, wire)
        return self._reply(body, headers, entry.request_id, wire)

    def _reply(
        self, body: bytes, headers: Mapping[str, str], rid: str, wire: bytes | None = None
    ) -> web.Response:
        """``body`` with ``headers`` and this request's ids after them. Headers made once as
        aiohttp sends them (``_Head.sent``) are copied and given the ids, not converted;
        ``wire``, those headers as aiohttp writes them (``_Head.wire``), is given the ids too,
        for the reply to be written whole where it can (``ReadyResponse``)."""
        if isinstance(headers, CIMultiDict):
            sent = headers.copy()
            for name in self.protocol.request_id_headers:
                sent.add(name, rid)
            if wire is not None:
                wire += self._id_lines.format(rid).encode()
            return ReadyResponse(body, sent, wire)
        return web.Response(body=body, headers={**headers, **self.protocol.headers(rid)})

    def _headers(self, step: Step) -> dict[str, str]:
        """The headers every error reply of ``step`` carries (the request id added last)."""
        return self._head(step).fields

    def _head(self, step: Step, content_type: str | None = None, stream: bool = False) -> _Head:
        """The headers every reply of ``step`` in ``content_type`` carries (None: its errors'),
        made once; a request's own headers come after them, the request ids last."""
        key = (step, content_type, stream)
        head = self._prepared.get(key)
        if head is None:
            made = dict(step.headers)
            if self.state.options.worker is not None:
                made["x-mock-worker"] = str(self.state.options.worker)
            if stream:
                made["Cache-Control"] = "no-cache"
            if content_type is not None:
                made["Content-Type"] = content_type
            ids_last = not any(name in made for name in self.protocol.request_id_headers)
            sent = CIMultiDict(made) if ids_last else None
            wire = wire_head(sent) if sent is not None else None
            head = keep(self._prepared, key, _Head(made, sent, wire), _PREPARED)
        return head

    async def _cache(self, state: State, key: str, req: Request, used: Usage) -> Outcome | None:
        """Prompt caching by the protocol's rules: the prefixes this prompt reads and writes
        (per API key and model), and the usage figures that follow."""
        scope = f"{self.protocol.name}\x00{key}\x00{req.model}\x00"
        plan = self.protocol.cache_plan(req, scope, state.options.prompt_cache_ttl)
        if plan is None:
            return None
        live = await state.store.cache(plan.ask, plan.write, state.options.clock())
        outcome = plan.settle(live)
        cached_usage(used, outcome, self.protocol.cache_apart)
        return outcome

    async def _store(
        self,
        state: State,
        answer: Answer,
        raw: bytes,
        body: bytes | None,
        filled: Values | None = None,
    ) -> Stored | None:
        """The response the protocol keeps (Responses ``store``), kept by the store; ``filled``:
        a compiled stream's values, which can write the body when someone reads it."""
        if not self.protocol.keeps:
            return None
        stored = self.protocol.stored(answer, raw, body, filled)
        if stored is not None:  # as ``_fill`` keeps a compiled reply's (``Protocol.kept``)
            await state.store.put_response(stored)
        return stored

    def _remember(
        self,
        state: State,
        key: Any,
        body: bytes,
        headers: Mapping[str, str],
        entry: Entry,
        req: Request,
        stored: Any,
        wire: bytes | None = None,
    ) -> None:
        if not state.memos.again(key):
            return  # most bodies come once: remember those that come twice
        memo = Memo(
            created=int(entry.time),
            body=body,
            headers=headers,  # made for this reply, or made once and never changed
            request=req,
            scenario=entry.scenario or "",
            adjusted=entry.adjusted,
            reply=entry.reply,
            stored=stored,
            wire=wire,
        )
        state.memos.put(key, memo)

    async def _stream(
        self,
        request: web.Request,
        state: State,
        entry: Entry,
        answer: Answer,
        frames: list[Frame],
        waits: list[float],
        fault: Fault | None,
        headers: Mapping[str, str],
        end: bytes | None = None,
    ) -> web.StreamResponse:
        """A stream at its cadence; ``end`` is what closes it, when made already."""
        protocol = self.protocol
        response = web.StreamResponse(headers=headers)
        kind = fault.kind if fault else None
        if kind == "reset":
            _abort(request)
            raise _Dropped
        await response.prepare(request)
        entry.status = response.status  # sent: a client leaving now left a 200
        # Faults strike after ``after_chunks`` pieces of output; framing before them is sent.
        cut_after = fault.after_chunks if fault is not None and kind != "no_done" else None
        loop = asyncio.get_running_loop()
        start, due = loop.time(), 0.0
        pieces = sent = 0
        for frame, wait in zip(frames, waits, strict=True):
            if cut_after is not None and frame.paced and pieces == cut_after:
                break
            due += wait
            if wait:
                # Against the schedule, not the last write: a late chunk does not delay the rest.
                late = loop.time() - (start + due - wait)
                remaining = wait - late if late > _LATE else wait
                if remaining > 0:
                    await _wait(state, remaining, response)
            await response.write(frame.data)
            sent += 1
            pieces += frame.paced
        if kind == "drop":
            _abort(request)
            raise _Dropped
        if kind == "stall":
            await _forever(request, state)
        if kind == "malformed":
            await response.write(protocol.malformed())
        elif kind in ("stream_error", "failed") and fault is not None:
            err = fault.error.to_error({})
            write = protocol.failed if kind == "failed" else protocol.stream_error
            await response.write(write(err, answer, sent))
        elif kind != "no_done":
            await response.write(end if end is not None else protocol.end(answer, sent))
        await response.write_eof()
        return response


def _batches(frames: Iterable[Frame], end: Callable[[int], bytes]) -> Iterator[bytes]:
    """A stream's frames, made as they are taken, joined into writes of about ``_BATCH``
    bytes each, then its ``end`` (given how many frames went before it)."""
    batch: list[bytes] = []
    size = sent = 0
    for frame in frames:
        batch.append(frame.data)
        size += len(frame.data)
        sent += 1
        if size >= _BATCH:
            yield b"".join(batch)
            batch, size = [], 0
    batch.append(end(sent))
    yield b"".join(batch)


async def _gather(frames: Iterable[Frame]) -> list[Frame]:
    """A heavy paced stream's frames, made a batch at a time, the loop free in between (its
    schedule needs them all before the first goes out)."""
    out: list[Frame] = []
    size = 0
    for frame in frames:
        out.append(frame)
        size += len(frame.data)
        if size >= _BATCH:
            size = 0
            await asyncio.sleep(0)
    return out


async def _write_pieces(
    request: web.Request, pieces: Iterator[bytes], headers: Mapping[str, str], entry: Entry
) -> web.StreamResponse:
    """A large body written as it is made, one piece at a time, the loop free between pieces:
    neither the whole body in memory nor the other requests waiting for it."""
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    entry.status = response.status  # sent: a client leaving now left a 200
    for piece in pieces:
        await response.write(piece)
        await asyncio.sleep(0)
    await response.write_eof()
    return response


async def read_body(request: web.Request, options: Options) -> bytes:
    """The body; a 413 over ``max_body``; a 408 when it comes too slowly (an attack, or a bug).

    Either error leaves the rest of the body unread, so the connection is closed after it."""
    content = request.content
    try:
        if content.is_eof():  # it all came with the headers: take it, nothing to wait for
            raw = content.read_nowait()
        else:
            async with asyncio.timeout(options.body_timeout):
                raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raw = None
    except TimeoutError:
        raise APIError(
            408,
            f"The request body did not arrive within {options.body_timeout:g} seconds.",
            code="request_timeout",
        ) from None
    if raw is None or len(raw) > options.max_body:
        raise APIError(
            413,
            f"The request body is larger than the limit of {options.max_body} bytes.",
            code="request_too_large",
        )
    return raw


def _refused(protocol: Protocol, err: APIError, entry: Entry, raw: bytes) -> web.Response:
    """The error reply, in the protocol's shape, and what the journal keeps of it."""
    response = error_response(protocol, err, entry.request_id)
    if err.status in (408, 413):
        response.force_close()
    entry.rejected(raw)
    if entry.outcome == "ok":
        entry.outcome = "error"
    entry.reply = {"error": {"status": err.status, "message": err.message,
                             "type": protocol.error_type(err), "code": err.code}}  # fmt: skip
    return response


def log_entry(entry: Entry) -> None:
    """One line per request: what came, what answered it (or why nothing did), how it ended.

    The text says ``step=1`` for a scenario's first step, as the inspector does; the JSON
    field ``step`` is the journal's, an index from 0."""
    reason = None
    if entry.status >= 400 and entry.reply and "error" in entry.reply:
        reason = entry.reply["error"]["message"]
    nearest = None
    if entry.unmatched:
        _, _, nearest = entry.unmatched.partition(" Nearest: ")
        nearest = nearest.split(" | ")[0] or None
    fields = {
        "method": entry.method,
        "path": entry.path,
        "status": entry.status,
        "api": entry.api,
        "scenario": entry.scenario,
        "step": entry.step,
        "outcome": entry.outcome,
        "stream": entry.stream,
        "reason": reason,
        "nearest": nearest,
        "duration_ms": entry.duration_ms,
        "request_id": entry.request_id,
    }
    answered = (
        f"scenario={entry.scenario}" + (f" step={entry.step + 1}" if entry.step is not None else "")
        if entry.scenario
        else "UNMATCHED"
        if entry.unmatched
        else "-"
    )
    text = (
        f"{entry.method} {entry.path} {entry.status or '-'} {answered} {entry.outcome}"
        f"{' stream' if fields['stream'] else ''} {entry.duration_ms:.1f}ms"
    )
    if reason and not entry.unmatched:
        text += f" reason={reason[:200]!r}"
    if nearest:
        text += f" nearest={nearest[:200]}"
    log.info(text, extra={"mock": fields})
