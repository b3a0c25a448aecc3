"""Recording: forward requests to a real upstream and write the exchanges as scenario files.

The recorder is a thin front on the one pipeline: the protocol parses the request as for any
other (so it is validated, and its fingerprint is the one matching computes), the pipeline
calls ``forward`` for every request (``mockserver record``) or for those no scenario answers
(``--scenarios`` / ``serve --record-missing``), and the upstream's reply is relayed to the
client as it arrives while a protocol's ``Reader`` turns it into the neutral reply. Files are
ordinary scenario files, checked by the loader before they are written.

One writer: recording runs in one process (``--workers 1``); files are written atomically,
mode 0600, one per distinct request (a request answered differently each time gets ``steps``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml
from aiohttp import web

from ..core.errors import APIError, ScenarioError
from ..core.request import Request
from ..core.secrets import credentials
from ..core.vectors import exact_float32, to_base64
from ..protocols import Lookup, Protocol
from ..protocols.capture import PIECE_ORDER, Captured, Event, Piece
from ..scenarios.fingerprint import (
    DEFAULT_FIELDS,
    Pattern,
    Placeholders,
    Redactor,
    covers,
    request_digest,
)
from ..scenarios.loader import load_data, load_text
from ..scenarios.matching import Resolution, ScenarioSet
from ..scenarios.scenario import Scenario
from ..state.journal import Entry
from .provenance import answer_of, clean_query, now, resent_headers, version
from .provenance import json_value as _json

log = logging.getLogger("mockserver")

PRIORITY = -100
"""Recorded scenarios lose to hand-written ones (default priority 0) in the same set."""

_HOP_BY_HOP = frozenset(
    {
        "host", "content-length", "connection", "keep-alive", "proxy-authenticate",
        "proxy-authorization", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
        "accept-encoding", "content-encoding",
    }
)  # fmt: skip
_KEPT_HEADERS = re.compile(
    r"retry-after(-ms)?|x-ratelimit-[\w-]+|anthropic-ratelimit-[\w-]+|x-request-id|request-id",
    re.IGNORECASE,
)
_REQUEST_IDS = frozenset({"x-request-id", "request-id"})


def kept_headers(headers: Mapping[str, str], error: bool) -> dict[str, str]:
    """The allowlist: retry and rate-limit headers, and request ids on errors. No other header,
    of the request or the reply, ever reaches a file."""
    return {
        k.lower(): v
        for k, v in headers.items()
        if _KEPT_HEADERS.fullmatch(k) and (error or k.lower() not in _REQUEST_IDS)
    }


def upstream_url(base: str, path: str, query: str, versioned: bool = True) -> str:
    """The upstream URL for a local path: ``base`` is what a client would use as its base URL,
    with the version where the protocol's clients put it there (``https://api.openai.com/v1``:
    the local ``/v1`` prefix is dropped), a bare host where they add it (Google's)."""
    rest = path[3:] if versioned and path.startswith("/v1/") else path
    return base.rstrip("/") + rest + (f"?{query}" if query else "")


def _shown(url: str) -> str:
    """A URL for the logs: without its query, where Google's clients may carry their key."""
    return url.partition("?")[0]


class _Splitter:
    """Cuts a byte stream into SSE events, each stamped with the time its blank line came."""

    def __init__(self) -> None:
        self.buffer = b""
        self.events: list[Event] = []

    def feed(self, data: bytes, at: float) -> None:
        self.buffer = (self.buffer + data).replace(b"\r\n", b"\n")
        while b"\n\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\n\n", 1)
            name, lines = None, []
            for line in raw.decode("utf-8", "replace").split("\n"):
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    lines.append(line[5:].removeprefix(" "))
            if lines:
                self.events.append(Event(at, name, "\n".join(lines)))


@dataclass
class _Exchange:
    """One forwarded request, as it went."""

    status: int
    headers: Mapping[str, str]
    content_type: str
    body: bytes
    events: list[Event]
    elapsed: float
    broken: str | None = None
    """``drop`` or ``stall`` when the upstream broke or went silent in the middle of a stream."""
    path: str = ""
    """The request's path (and ``query``), for sending it again; "" for the protocol's own."""
    query: str = ""

    def answer(self) -> dict[str, Any]:
        """What the recording keeps of this answer beyond its step (``provenance``)."""
        stream = self.content_type == "text/event-stream"
        return answer_of(self.status, self.body, self.events, stream)


class _Literal(str):
    """A string written as a YAML block (``|``): multi-line text stays readable."""


class _Flow(dict[str, Any]):
    """A mapping written on one line (a chunk, usage)."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(
    _Literal, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", str(s), style="|")
)


class _Quoted(str):
    """A string written in double quotes (line breaks as ``\\n``), inside one-line mappings."""


_Dumper.add_representer(
    _Quoted, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", str(s), style='"')
)
_Dumper.add_representer(
    _Flow,
    lambda d, m: d.represent_mapping(
        "tag:yaml.org,2002:map",
        {k: _Quoted(v) if isinstance(v, str) and "\n" in v else v for k, v in m.items()},
        flow_style=True,
    ),
)


class _Row(list[Any]):
    """A list written on one line, wrapped at the width (a vector: not a float per line)."""


_Dumper.add_representer(
    _Row, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def _readable(value: Any) -> Any:
    """Multi-line strings as blocks (when YAML can keep them exact that way)."""
    if isinstance(value, str) and "\n" in value:
        return _Literal(value)
    if isinstance(value, _Flow | _Row):
        return value
    if isinstance(value, dict):
        return {k: _readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(v) for v in value]
    return value


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _vector(vector: Any) -> Any:
    """A vector in few bytes, the same floats on replay: OpenAI's base64 as it came (a client
    that asked for base64) or when every float is a float32 (base64 keeps those exactly),
    else its floats on a few lines, not one per line."""
    if isinstance(vector, list) and exact_float32(vector):
        return to_base64(vector)
    return _Row(vector) if isinstance(vector, list) else vector


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-")
    return slug or "request"


def _cadence(pieces: list[Piece]) -> dict[str, Any]:
    """Every piece with the gap before it (the first: the time to the first piece), in the
    order the protocols replay them, to the millisecond."""
    gaps, last = [], 0.0
    for piece in pieces:
        gaps.append(round(max(0.0, piece.at - last), 3))
        last = piece.at
    ordered = sorted(
        zip(pieces, gaps, strict=True), key=lambda p: (PIECE_ORDER[p[0].kind], p[0].call)
    )
    chunks = []
    for piece, gap in ordered:
        chunk = _Flow({piece.kind: piece.text})
        if piece.kind == "arguments" and piece.call:
            chunk["call"] = piece.call
        chunk["delay"] = gap
        chunks.append(chunk)
    return {"chunks": chunks}


def _whole_secrets(pieces: list[Piece], redactor: Redactor) -> list[Piece]:
    """Pieces merged wherever a redaction pattern spans two or more of them, so redacting each
    piece redacts the whole text (a secret streamed in three pieces is still a secret). The
    merged piece arrives when its last part did."""
    if not redactor:
        return pieces
    out: list[Piece] = []
    for kind, call in dict.fromkeys((p.kind, p.call) for p in pieces):
        group = [p for p in pieces if (p.kind, p.call) == (kind, call)]
        text = "".join(p.text for p in group)
        ends, at = [], 0
        for p in group:
            at += len(p.text)
            ends.append(at)
        spans = [(m.start(), m.end()) for m in redactor.finditer(text)]
        merged: list[Piece] = []
        start = 0
        for p, end in zip(group, ends, strict=True):
            inside = any(s < end < e for s, e in spans)  # a secret continues in the next piece
            if not inside:
                merged.append(Piece(kind, text[start:end], p.at, call))
                start = end
        places = Placeholders()  # named placeholders: each piece numbered as the whole is
        if "".join(redactor.text(p.text, places) for p in merged) != redactor.text(text):
            merged = [Piece(kind, text, group[-1].at, call)]  # context-dependent pattern
        out += merged
    return sorted(out, key=lambda p: p.at)


def _spelling(captured: Captured) -> list[Piece]:
    """The pieces of each text that spell it exactly (the loader insists); a text whose pieces
    do not (a protocol that joins parts differently in its final object) is left to the
    ``chunk`` setting rather than making the file invalid."""
    if len(captured.choices) != 1:
        return []
    message = captured.choices[0]
    calls = message.get("tool_calls") or []
    spelled: dict[tuple[str, int], str] = {}
    for p in captured.pieces:
        spelled[p.kind, p.call] = spelled.get((p.kind, p.call), "") + p.text
    good = set()
    for (kind, call), text in spelled.items():
        if kind == "arguments":
            target = calls[call]["arguments"] if call < len(calls) else None
        else:
            target = message.get("content" if kind == "text" else kind)
        if target == text:
            good.add((kind, call))
    return [p for p in captured.pieces if (p.kind, p.call) in good]


def _error(status: int, body: Any) -> dict[str, Any] | None:
    """An error object (OpenAI's, or Anthropic's ``{type: error, error: {...}}``) as a
    scenario ``error``; None when the body is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None
    err = body["error"]
    out: dict[str, Any] = {"status": status}
    for key in ("message", "type", "param", "code"):
        if isinstance(err.get(key), str):
            out[key] = err[key]
    if isinstance(err.get("status"), str) and "type" not in out:
        out["type"] = err["status"]  # Google's name for the code (RESOURCE_EXHAUSTED)
    return out


@dataclass
class _File:
    path: Path
    name: str
    match: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    """The ``recording`` block: provenance and the request, redacted (``provenance``)."""
    answers: list[dict[str, Any]] = field(default_factory=list)
    """Per step, the answer's status, shape and event types."""
    places: Placeholders = field(default_factory=Placeholders)
    """Named placeholders, numbered once for the request and every answer of this file."""


@dataclass
class Recorder:
    """Forwards to ``upstream`` and writes what comes back into ``out``.

    ``forward_all``: every request is forwarded (``mockserver record``); otherwise only those no
    scenario answers, and a request recorded earlier in the run is answered from its recording.
    """

    upstream: str
    out: Path
    forward_all: bool = True
    redact: Sequence[Pattern] = ()
    fields: Sequence[str] = DEFAULT_FIELDS
    timeout: float = 600.0
    """Seconds the upstream may stay silent (before its headers, or between two reads)."""
    connect_timeout: float = 10.0
    _files: dict[str, _File] = field(default_factory=dict, init=False)
    _set: ScenarioSet = field(default_factory=lambda: ScenarioSet([]), init=False)
    _redactor: Redactor = field(init=False)
    _where: str = field(init=False)

    def __post_init__(self) -> None:
        self._redactor = Redactor(self.redact)  # ValueError for a bad pattern
        url = urlsplit(self.upstream)  # for the files: no user, password or query (keys)
        host = f"{url.hostname}:{url.port}" if url.port else url.hostname
        self._where = self._redactor.text(f"{url.scheme}://{host}{url.path}")
        self.fields = tuple(self.fields)
        if not self.fields:
            raise ValueError("the digest needs at least one field")

    # --- the pipeline's hooks ------------------------------------------------------------------

    def lenient(self, lookup: Lookup) -> Lookup:
        """A stored-response lookup that never fails: ids the upstream issued are unknown here,
        and that is for the upstream to judge."""
        return lambda id: lookup(id) or ()

    def resolve(self, request: Request) -> Resolution | None:
        """The recording of this run that answers ``request``, if any."""
        try:
            return self._set.resolve(request)
        except APIError:
            return None

    async def forward(
        self, request: web.Request, protocol: Protocol, req: Request, raw: bytes, entry: Entry
    ) -> web.StreamResponse:
        """Relay the request and the reply as it arrives, then record the exchange.

        The recording is made as soon as the upstream's reply is complete, with no wait in
        between, so a client that closes on the last event (the SDKs do, on ``[DONE]``) cannot
        cancel it, while one that leaves mid-stream cancels the handler and records nothing.
        Only then does the reply end: a client that has its whole answer can stop the recorder
        without losing the file."""
        url = upstream_url(
            self.upstream, request.path, request.query_string, protocol.versioned_base
        )
        key = protocol.api_key(request.headers, request.query)  # wherever the client put it
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Accept-Encoding"] = "identity"
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.connect_timeout, sock_read=self.timeout
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        response: web.StreamResponse | None = None
        splitter = _Splitter()
        body = bytearray()
        broken = None
        status, content_type = 0, ""
        up_headers: Mapping[str, str] = {}

        def finish() -> None:
            exchange = _Exchange(
                status=status,
                headers=up_headers,
                content_type=content_type,
                body=bytes(body),
                events=splitter.events,
                elapsed=loop.time() - started,
                broken=broken,
                path=request.path,
                query=request.query_string,
            )
            try:
                name = self.record(protocol, req, exchange, entry, (key,) if key else ())
            except Exception:  # the client has its answer; a recording problem is only logged
                log.exception(
                    "mockserver record: could not record %s %s", request.method, _shown(url)
                )
                name = None
            entry.scenario = name
            entry.outcome = "recorded" if name else "forwarded"

        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, auto_decompress=True) as session,
                session.post(url, data=raw, headers=headers, allow_redirects=False) as up,
            ):
                status, up_headers, content_type = up.status, up.headers, up.content_type
                relayed = {k: v for k, v in up.headers.items() if k.lower() not in _HOP_BY_HOP}
                response = web.StreamResponse(status=up.status, headers=relayed)
                await response.prepare(request)
                entry.status = up.status  # what the client got, also if it leaves at [DONE]
                stream = content_type == "text/event-stream"
                try:
                    async for data in up.content.iter_any():
                        await response.write(data)  # as it arrives
                        body += data
                        if stream:
                            splitter.feed(data, loop.time() - started)
                except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
                    broken = "drop"
                except TimeoutError:
                    broken = "stall"
                except (asyncio.CancelledError, ConnectionResetError):
                    # The client left. After the stream's last event (an SDK closes on [DONE]
                    # or on an error event, maybe before the upstream's end arrives) the
                    # exchange is whole and is recorded; before it, nothing is.
                    if stream and self._ended(protocol, splitter.events):
                        finish()
                    raise
                finish()
        except TimeoutError:
            if response is None:
                raise APIError(
                    504,
                    f"mockserver record: the upstream {self.upstream} did not answer within "
                    f"{self.timeout:g} seconds.",
                    code="upstream_timeout",
                ) from None
            if entry.outcome == "ok":  # not recorded yet
                broken = "stall"
                finish()
        except aiohttp.ClientError as err:
            if response is None:
                raise APIError(
                    502,
                    f"mockserver record: cannot reach the upstream {self.upstream}: {err}",
                    code="upstream_unreachable",
                ) from None
            if entry.outcome == "ok":
                broken = "drop"
                finish()
        assert response is not None
        if broken is not None:
            if request.transport is not None:
                request.transport.abort()  # the client sees the break the upstream made
        else:
            await response.write_eof()
        return response

    @staticmethod
    def _ended(protocol: Protocol, events: list[Event]) -> bool:
        """True when a stream's events so far end it: its closing event, or an error event."""
        if not events:
            return False
        try:
            captured = protocol.read_stream(events)
        except (KeyError, TypeError, AttributeError, ValueError):
            return False
        return captured is not None and (captured.complete or captured.error is not None)

    # --- recording -----------------------------------------------------------------------------

    def step(
        self, protocol: Protocol, exchange: _Exchange, redactor: Redactor | None = None
    ) -> dict[str, Any] | None:
        """The scenario step for one exchange, before redaction (``redactor`` only decides
        where streamed pieces must be merged); None when there is nothing to replay.

        What the protocol cannot read back is kept as ``raw``, byte for byte."""
        status = exchange.status
        if 300 <= status < 400:
            log.warning("mockserver record: the upstream redirected (%d); not followed", status)
            return None
        if not _textual(exchange.content_type):
            # A file (speech audio): as text it would replay corrupted, so it is kept beside
            # the scenario, named by its digest, and the step serves it byte for byte.
            name = hashlib.sha256(exchange.body).hexdigest()[:32] + _extension(exchange)
            self._keep({name: exchange.body})
            kept: dict[str, Any] = {
                "raw": {"status": status, "file": name, "content_type": exchange.content_type}
            }
            if headers := kept_headers(exchange.headers, status >= 400):
                kept["headers"] = headers
            return kept
        text = exchange.body.decode("utf-8", "replace")
        step: dict[str, Any] = {}
        sse = exchange.content_type == "text/event-stream"
        data = None if sse else _json(text)
        try:
            if sse and status < 400:
                step.update(self._streamed(protocol, exchange, redactor or self._redactor))
            elif status >= 400 and _error(status, data) is not None:
                step["error"] = _error(status, data)
            elif data is not None and status == 200 and (read := protocol.read_body(data)):
                step["reply"] = read.reply()
                self._keep(read.files)
                if exchange.elapsed >= 0.001:
                    step["delay"] = round(exchange.elapsed, 3)
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            log.warning("mockserver record: kept a %s reply as raw (%r)", protocol.name, err)
            step = {}
        if not step:
            raw: dict[str, Any] = {"status": status, "body": text}
            if exchange.content_type != "application/json":
                raw["content_type"] = exchange.content_type
            step["raw"] = raw
        headers = kept_headers(exchange.headers, status >= 400)
        if headers:
            step["headers"] = headers
        return step

    def _streamed(
        self, protocol: Protocol, exchange: _Exchange, redactor: Redactor
    ) -> dict[str, Any]:
        """A stream's reply, rhythm and fault. Events before one whose data is not JSON are
        read, and the broken one becomes the ``malformed`` fault."""
        events = exchange.events
        bad = next(
            (
                i
                for i, e in enumerate(events)
                if e.data.strip() != "[DONE]" and _json(e.data) is None
            ),
            None,
        )
        captured = protocol.read_stream(events if bad is None else events[:bad])
        if captured is None:
            return {}
        step: dict[str, Any] = {"reply": captured.reply()}
        pieces = _spelling(captured)
        if pieces:
            step["cadence"] = _cadence(_whole_secrets(pieces, redactor))
        if bad is not None:
            step["fault"] = {"kind": "malformed", "after_chunks": len(captured.pieces)}
        else:
            fault = self._fault(captured, exchange.broken)
            if fault is not None:
                step["fault"] = fault
        return step

    @staticmethod
    def _fault(captured: Captured, broken: str | None) -> dict[str, Any] | None:
        sent = len(captured.pieces)
        if captured.error is not None:
            err = dict(captured.error)
            kind = err.pop("kind")
            detail: dict[str, Any] = {"status": 500}
            detail.update({k: v for k, v in err.items() if isinstance(v, str) and k != "param"})
            return {"kind": kind, "after_chunks": sent, "error": detail}
        if broken is not None:
            return {"kind": broken, "after_chunks": sent}
        if not captured.complete:
            return {"kind": "no_done"}
        return None

    def match(self, req: Request, digest: str) -> dict[str, Any]:
        """The readable request (protocol, model, last user text) and its digest."""
        redactor = self._redactor
        match: dict[str, Any] = {"api": req.api}
        if redactor.text(req.model) == req.model:
            match["model"] = req.model
        text = req.last_user
        if text and redactor.text(text) == text:
            match["last_user"] = text
        elif text:
            pattern = redactor.pattern_for(text)
            if pattern is not None:
                match["last_user"] = {"regex": pattern}
        spec: dict[str, Any] = {"digest": digest}
        if tuple(self.fields) != DEFAULT_FIELDS:
            spec["fields"] = list(self.fields)
        if redactor:
            spec["redact"] = redactor.spec()
        spec["covers"] = covers(req, self.fields, redactor)
        match["recorded"] = spec
        return match

    def record(
        self,
        protocol: Protocol,
        req: Request,
        exchange: _Exchange,
        entry: Entry | None = None,
        secrets: Sequence[str] = (),
    ) -> str | None:
        """Write (or extend) the file of this request; the scenario's name, or None. The
        journal ``entry`` learns what was answered (as written) and the file. ``secrets``: the
        client's key where its headers do not carry it (Google's ``?key=``)."""
        # The client's own credentials are redacted too, should the upstream echo them.
        given = {*credentials(req.headers), *(s for s in secrets if len(s) >= 8)}
        own = [re.escape(c) for c in sorted(given)]
        redactor = Redactor([*self._redactor.spec(), *own]) if own else self._redactor
        step = self.step(protocol, exchange, redactor)
        if step is None:
            return None
        digest = request_digest(req, self.fields, self._redactor)
        file = self._files.get(digest)
        if file is None:
            name = f"{protocol.name}-{_slug(self._redactor.text(req.last_user))}-{digest[:8]}"
            file = _File(self.out / f"{name}.yaml", name, self.match(req, digest))
            file.source = self.source(protocol, req, exchange, redactor, file.places)
            self._files[digest] = file
        step = redactor.data(step, file.places)
        if entry is not None:
            entry.reply = step.get("reply") or {"error": step.get("error") or step.get("raw")}
            entry.extra["recording"] = str(file.path)
        if any(_answer(s) == _answer(step) for s in file.steps):
            return file.name  # the same answer again: one step is enough
        file.steps.append(step)
        file.answers.append(redactor.data(exchange.answer(), file.places))
        self._write(file)
        return file.name

    def source(
        self,
        protocol: Protocol,
        req: Request,
        exchange: _Exchange,
        redactor: Redactor,
        places: Placeholders,
    ) -> dict[str, Any]:
        """The ``recording`` block but its answers: where from, when, by which mockserver,
        with which digest fields, and the request as drift sends it again (redacted first,
        so its placeholders are numbered before the answer's)."""
        out: dict[str, Any] = {
            "upstream": self._where,
            "at": now(),
            "mockserver": version(),
            "fields": list(self.fields),
            "path": exchange.path or "/v1" + protocol.routes[0],
        }
        query = clean_query(exchange.query)
        if query:
            out["query"] = redactor.text(query, places)
        headers = resent_headers(req.headers)
        if headers:
            out["headers"] = redactor.data(headers, places)
        out["request"] = redactor.data(req.body, places)
        return out

    def _keep(self, files: Mapping[str, bytes]) -> None:
        """Binary bodies (images) beside the scenario files that name them; a name is the
        file's digest, so a file written once is never written again."""
        for name, data in files.items():
            path = self.out / name
            if path.exists():
                continue
            self.out.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)

    def _scenario(self, file: _File, steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        steps = file.steps if steps is None else steps
        scenario: dict[str, Any] = {"name": file.name, "priority": PRIORITY, "match": file.match}
        if len(steps) == 1:
            scenario.update(steps[0])
        else:
            scenario["steps"] = steps
        return styled(scenario)

    def _write(self, file: _File) -> None:
        scenario = self._scenario(file)
        scenario["recording"] = {**file.source, "answers": file.answers}
        write_recording(file.path, {"version": 1, "scenarios": [scenario]}, self._where)
        log.info("mockserver record: %s (%d step(s))", file.path, len(file.steps))
        self._remember(file)

    def _remember(self, file: _File) -> None:
        """Answer this request from its recording for the rest of the run, with its good
        answers only: a 429 recorded on the way must not answer the client's retry, which is
        forwarded (and recorded as the next step) instead."""
        kept = [s for s in self._set.scenarios if s.name != file.name]
        good = [s for s in file.steps if "reply" in s and "fault" not in s]
        scenarios: list[Scenario] = []
        if good:
            try:
                scenarios = load_data([self._scenario(file, good)], str(file.path))
            except ScenarioError:
                scenarios = []  # already logged by _write
        self._set = ScenarioSet([*kept, *scenarios])


def styled(scenario: dict[str, Any]) -> dict[str, Any]:
    """``scenario`` with its usage objects and cadence chunks written on one line each, and its
    vectors in few bytes, as the recorder writes them (a file read back and written again
    looks the same)."""
    for step in [scenario, *scenario.get("steps", ())]:
        usage = (step.get("reply") or {}).get("usage")
        if usage:
            step["reply"]["usage"] = _Flow(usage)
        cadence = step.get("cadence") or {}
        if cadence.get("chunks"):
            cadence["chunks"] = [_Flow(c) for c in cadence["chunks"]]
        vectors = (step.get("reply") or {}).get("embeddings")
        if vectors:
            step["reply"]["embeddings"] = [_vector(v) for v in vectors]
    return scenario


def write_recording(path: Path, data: dict[str, Any], where: str) -> None:
    """Write a recording file atomically, mode 0600, with its header; a file that does not
    load is logged (and written all the same: the exchange is worth keeping)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    header = (
        f"# Recorded by mockserver from {where} on {stamp}.\n"
        "# match.recorded pins the exact request (model, conversation, tools, ...): drop it\n"
        "# to answer any request with this last user message.\n"
    )
    text = _dump(_readable(data))
    if yaml.safe_load(text) != data:  # a block scalar could not keep a text exact
        text = _dump(data)
    text = header + text
    try:
        load_text(text, str(path))
    except ScenarioError as err:
        log.error("mockserver record: %s does not load, written anyway:\n%s", path, err)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _extension(exchange: _Exchange) -> str:
    """A kept file's extension, from its type (``audio/mpeg`` is ``.mp3``), else ``.bin``."""
    kind = exchange.content_type.split(";")[0].strip().lower()
    return _EXTENSIONS.get(kind) or mimetypes.guess_extension(kind) or ".bin"


_EXTENSIONS = {"audio/mpeg": ".mp3", "audio/wav": ".wav", "audio/aac": ".aac",
               "audio/flac": ".flac", "audio/ogg": ".opus", "audio/pcm": ".pcm"}  # fmt: skip
"""What ``mimetypes`` would not name, or not the same on every machine."""


def _textual(content_type: str) -> bool:
    """True for replies a scenario can hold as text: JSON, text, events (or no type at all)."""
    return (
        not content_type
        or content_type.startswith("text/")
        or content_type == "application/json"
        or content_type.endswith("+json")
    )


def _answer(step: Mapping[str, Any]) -> Any:
    """A step without its timing: two answers are the same when this is."""
    return {k: v for k, v in step.items() if k not in ("cadence", "delay", "headers")}
