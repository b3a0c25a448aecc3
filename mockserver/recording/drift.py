"""Drift: send recorded requests to the real API again and say which answers have changed.

Recordings replay the world as it was when they were made. ``mockserver drift`` finds the
recordings under some folders (files whose scenarios pin a request with ``match.recorded``;
hand-written scenarios beside them are ignored), sends each recorded request again (its body
as the recording kept it, redacted) a few at a time, reads the live answer back the way the
recorder does, and compares it with the recording: HTTP status, finish reason, tool call names
and argument keys, the text's meaning (the mock's own similarity-preserving vectors), the JSON
shape and a stream's event types. ``--update`` rewrites the changed recordings from the live
answers, with the same redaction; nothing else is written.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import aiohttp
import yaml

from ..core.errors import ScenarioError
from ..core.vectors import embed
from ..protocols import Protocol
from ..scenarios.fingerprint import Placeholders, Redactor
from ..scenarios.loader import load_paths, scenario_files
from .provenance import now, version
from .record import Recorder, _Exchange, _Splitter, styled, upstream_url, write_recording

KINDS = ("status", "finish_reason", "tool_calls", "text", "shape", "events")
"""What can change, in the order a line lists them."""
SAME, CHANGED, FAILED, UNCHECKABLE = "same", "changed", "failed", "not_checkable"
_STEP_KEYS = ("reply", "error", "raw", "headers", "delay", "cadence", "fault")
_DIMENSIONS = 1536
_RETRY_LATER = frozenset({429, 500, 502, 503, 504, 529})


class DriftError(Exception):
    """A usage error: nothing was sent (exit status 2)."""


@dataclass
class Recording:
    """One recorded scenario, as its file has it."""

    file: Path
    index: int
    """Its position among its file's scenarios."""
    scenario: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.scenario.get("name") or f"{self.file.stem}[{self.index}]")

    @property
    def api(self) -> str:
        return str((self.scenario.get("match") or {}).get("api") or "chat")

    @property
    def source(self) -> dict[str, Any] | None:
        """The ``recording`` block, if it has the request to send again."""
        found = self.scenario.get("recording")
        return found if isinstance(found, dict) and isinstance(found.get("request"), dict) else None

    @property
    def steps(self) -> list[dict[str, Any]]:
        steps = self.scenario.get("steps")
        return list(steps) if isinstance(steps, list) else [self.scenario]

    @property
    def redact(self) -> list[Any]:
        spec = (self.scenario.get("match") or {}).get("recorded")
        return list(spec.get("redact") or ()) if isinstance(spec, dict) else []


@dataclass(frozen=True)
class Change:
    kind: str
    detail: str


@dataclass
class Result:
    """What drift found for one recording."""

    recording: Recording
    verdict: str
    changes: list[Change] = field(default_factory=list)
    detail: str = ""
    """Why it failed or could not be checked."""
    step: int = 0
    """The recorded step the live answer was compared with (the closest)."""
    live: dict[str, Any] | None = None
    """The live answer as a scenario step, redacted as the recording is (for ``--update``)."""
    answer: dict[str, Any] | None = None
    """The live answer's status, shape and event types."""

    def line(self) -> str:
        name = self.recording.name
        if self.verdict == SAME:
            return f"{name}  same"
        if self.verdict == CHANGED:
            said = ", ".join(f"{c.kind} ({c.detail})" for c in self.changes)
            return f"{name}  changed: {said}"
        return f"{name}  {self.verdict.replace('_', ' ')}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": str(self.recording.file),
            "name": self.recording.name,
            "verdict": self.verdict,
            "changes": [{"kind": c.kind, "detail": c.detail} for c in self.changes],
        }
        if self.detail:
            out["detail"] = self.detail
        return out


# --- finding recordings ------------------------------------------------------------------------


def find(paths: Iterable[str]) -> list[Recording]:
    """Every recorded scenario in the files under ``paths``, in file order. Files without one
    are skipped unread beyond YAML; a recording file that does not load is a usage error."""
    out: list[Recording] = []
    for path in paths:
        if not Path(path).exists():
            raise DriftError(f"{path}: no such file or folder")
    for file in scenario_files(paths):
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # not a recording's: the recorder writes YAML that loads
        scenarios = _scenarios(data)
        found = [
            Recording(file, i, s)
            for i, s in enumerate(scenarios)
            if isinstance(s, dict) and (s.get("match") or {}).get("recorded")
        ]
        if found:
            try:
                load_paths([file])
            except ScenarioError as err:
                raise DriftError("\n".join(str(p) for p in err.problems)) from None
        out += found
    return out


def _scenarios(data: Any) -> list[Any]:
    if isinstance(data, dict):
        found = data.get("scenarios")
        return found if isinstance(found, list) else []
    return data if isinstance(data, list) else []


def key_variables(recordings: Iterable[Recording], protocols: Mapping[str, Protocol]) -> set[str]:
    """The environment variables the checkable recordings take their keys from."""
    return {protocols[r.api].key_variable for r in recordings if r.source and r.api in protocols}


# --- comparing ---------------------------------------------------------------------------------


def _status(step: Mapping[str, Any], answer: Mapping[str, Any]) -> int:
    if isinstance(answer.get("status"), int):
        return int(answer["status"])
    if isinstance(step.get("error"), dict):
        return int(step["error"].get("status", 500))
    if isinstance(step.get("raw"), dict):
        return int(step["raw"].get("status", 200))
    return 200


def _choices(step: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    reply = step.get("reply")
    if not isinstance(reply, dict):
        return []
    choices = reply.get("choices")
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else [reply]


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def similarity(a: str, b: str) -> float:
    """Cosine of the mock's semantic vectors of two texts: 1.0 for the same text."""
    if a == b:
        return 1.0
    if not a.strip() or not b.strip():
        return 0.0
    va, vb = embed(a, _DIMENSIONS), embed(b, _DIMENSIONS)
    return math.fsum(x * y for x, y in zip(va, vb, strict=True))


def _call_shape(call: Mapping[str, Any]) -> str:
    arguments = call.get("arguments")
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        parsed = None
    keys = ", ".join(sorted(parsed)) if isinstance(parsed, dict) else "..."
    return f"{call.get('name')}({keys})"


def _listed(items: Sequence[str], limit: int = 3) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _shape_changes(
    was: Mapping[str, str], now: Mapping[str, str], types: tuple[set[str], set[str]]
) -> str:
    """Paths removed, retyped and added, those that break a parser first. A stream's paths
    under an event type only one side sent are left to the events' comparison."""

    def kept(path: str, other: set[str]) -> bool:
        kind, space, _ = path.partition(" ")
        return not space or kind in other

    said = [f"removed {p}" for p in _tops([p for p in was if p not in now and kept(p, types[1])])]
    for path in now:
        if path in was:
            before = set(was[path].split("|")) - {"null"}
            after = set(now[path].split("|")) - {"null"}
            if before and after and before != after:  # null comes and goes with content
                said.append(f"{path} {was[path]} -> {now[path]}")
    said += [f"added {p}" for p in _tops([p for p in now if p not in was and kept(p, types[0])])]
    return _listed(said, 5)


def _tops(paths: list[str]) -> list[str]:
    """``paths`` without those inside another of them (``usage`` stands for ``usage.x``)."""
    found = set(paths)

    def inside(path: str) -> bool:
        parent = re.sub(r"(\.[^.\[]*|\[\])$", "", path)
        return parent != path and (parent in found or inside(parent))

    return [p for p in paths if not inside(p)]


def _event_changes(was: Sequence[str], now: Sequence[str]) -> str:
    said = []
    matcher = difflib.SequenceMatcher(None, list(was), list(now), autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op in ("replace", "delete"):
            said += [f"no {e}" for e in was[a1:a2]]
        if op in ("replace", "insert"):
            said += [f"new {e}" for e in now[b1:b2]]
    return _listed(said)


def compare(
    recorded: Mapping[str, Any],
    recorded_answer: Mapping[str, Any],
    live: Mapping[str, Any],
    live_answer: Mapping[str, Any],
    min_similarity: float = 0.8,
) -> list[Change]:
    """How the live answer differs from a recorded step, kind by kind (empty: the same)."""
    out: list[Change] = []
    was_status, now_status = _status(recorded, recorded_answer), _status(live, live_answer)
    if was_status != now_status:
        out.append(Change("status", f"{was_status} -> {now_status}"))
    before, after = _choices(recorded), _choices(live)
    if before and after:
        finish = [str(c.get("finish_reason") or "none") for c in before]
        finish_now = [str(c.get("finish_reason") or "none") for c in after]
        if finish != finish_now:
            out.append(Change("finish_reason", f"{'/'.join(finish)} -> {'/'.join(finish_now)}"))
        calls = [_call_shape(t) for c in before for t in c.get("tool_calls") or ()]
        calls_now = [_call_shape(t) for c in after for t in c.get("tool_calls") or ()]
        if calls != calls_now:
            shown = [" + ".join(c) or "no tool calls" for c in (calls, calls_now)]
            out.append(Change("tool_calls", " -> ".join(shown)))
        texts = []
        for key in ("content", "refusal"):
            for a, b in zip(before, after, strict=False):
                old, new = str(a.get(key) or ""), str(b.get(key) or "")
                score = similarity(old, new)
                if score < min_similarity:
                    texts.append(f"{key} similarity {score:.2f}: {_short(old)} -> {_short(new)}")
        if len(before) != len(after):
            texts.append(f"{len(before)} choice(s) -> {len(after)}")
        if texts:
            out.append(Change("text", "; ".join(texts)))
    if was_status == now_status:  # an error's body is another object altogether
        was_events, now_events = recorded_answer.get("events"), live_answer.get("events")
        types = set(was_events or ()), set(now_events or ())
        shape = _shape_changes(
            recorded_answer.get("shape") or {}, live_answer.get("shape") or {}, types
        )
        if shape:
            out.append(Change("shape", shape))
        if was_events is not None and now_events is not None and was_events != now_events:
            out.append(Change("events", _event_changes(was_events, now_events)))
    return out


# --- sending -----------------------------------------------------------------------------------


@dataclass
class Check:
    """What a drift run needs besides the recordings."""

    upstream: str
    protocols: Mapping[str, Protocol]
    key: Callable[[Protocol], str]
    """The API key to send with a recording of this protocol."""
    min_similarity: float = 0.8
    concurrency: int = 4
    timeout: float = 120.0


async def _send(
    session: aiohttp.ClientSession, check: Check, rec: Recording, protocol: Protocol
) -> _Exchange:
    source = rec.source
    assert source is not None
    path = str(source.get("path") or "/v1" + protocol.routes[0])
    query = str(source.get("query") or "")
    url = upstream_url(check.upstream, path, query, protocol.versioned_base)
    headers = {**protocol.key_headers(check.key(protocol)), **(source.get("headers") or {})}
    headers["Content-Type"] = "application/json"
    headers["Accept-Encoding"] = "identity"
    body = json.dumps(source["request"], ensure_ascii=False).encode()
    loop = asyncio.get_running_loop()
    started = loop.time()
    splitter = _Splitter()
    data = bytearray()
    broken = None
    async with session.post(url, data=body, headers=headers, allow_redirects=False) as up:
        stream = up.content_type == "text/event-stream"
        try:
            async for piece in up.content.iter_any():
                data += piece
                if stream:
                    splitter.feed(piece, loop.time() - started)
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
            broken = "the stream broke off"
        return _Exchange(
            status=up.status,
            headers=up.headers,
            content_type=up.content_type,
            body=bytes(data),
            events=splitter.events,
            elapsed=loop.time() - started,
            broken=broken,
            path=path,
        )


def _redactor(rec: Recording, key: str) -> Redactor:
    """The recording's own redaction, and the key the live request carried."""
    own = [re.escape(key)] if len(key) >= 8 else []
    return Redactor([*rec.redact, *own])


async def _check_one(
    session: aiohttp.ClientSession, check: Check, rec: Recording, gate: asyncio.Semaphore
) -> Result:
    source = rec.source
    if source is None:
        return Result(rec, UNCHECKABLE, detail="recorded without its request; record it again")
    protocol = check.protocols.get(rec.api)
    if protocol is None:
        return Result(rec, FAILED, detail=f"this mockserver does not speak {rec.api!r}")
    async with gate:
        try:
            exchange = await _send(session, check, rec, protocol)
        except TimeoutError:
            return Result(rec, FAILED, detail=f"no answer within {check.timeout:g} seconds")
        except aiohttp.ClientConnectorError as err:
            reason = err.os_error.strerror or str(err.os_error)
            return Result(rec, FAILED, detail=f"cannot reach {check.upstream}: {reason}")
        except aiohttp.ClientError as err:
            return Result(rec, FAILED, detail=f"no answer from {check.upstream}: {err}")
    answer = exchange.answer()
    steps = rec.steps
    answers = list(source.get("answers") or [])
    answers += [{}] * (len(steps) - len(answers))
    if exchange.broken is not None:
        return Result(rec, FAILED, detail=f"{exchange.broken}; nothing to compare")
    if exchange.status in _RETRY_LATER and all(
        _status(s, a) != exchange.status for s, a in zip(steps, answers, strict=False)
    ):
        return Result(rec, FAILED, detail=f"the upstream answered {exchange.status}; retry later")
    key = check.key(protocol)
    redactor = _redactor(rec, key)
    recorder = Recorder(upstream=check.upstream, out=rec.file.parent, redact=redactor.spec())
    live = recorder.step(protocol, exchange, redactor)
    if live is None:
        return Result(rec, FAILED, detail=f"the upstream answered {exchange.status} (a redirect)")
    places = Placeholders(json.dumps(rec.scenario, ensure_ascii=False))
    live = redactor.data(live, places)
    answer = redactor.data(answer, places)
    tried = [
        (len(c), -i, i, c)
        for i, (s, a) in enumerate(zip(steps, answers, strict=False))
        for c in [compare(s, a, live, answer, check.min_similarity)]
    ]
    _, _, index, changes = min(tried)  # the closest step; the last of equals
    verdict = CHANGED if changes else SAME
    return Result(rec, verdict, changes, step=index, live=live, answer=answer)


async def run(recordings: Sequence[Recording], check: Check) -> list[Result]:
    """Check every recording against the upstream, ``check.concurrency`` at a time; results
    in the recordings' order."""
    gate = asyncio.Semaphore(check.concurrency)
    timeout = aiohttp.ClientTimeout(total=check.timeout, connect=min(check.timeout, 10.0))
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=True) as session:
        checks = (_check_one(session, check, r, gate) for r in recordings)
        return list(await asyncio.gather(*checks))


# --- writing -----------------------------------------------------------------------------------


def where(upstream: str) -> str:
    """The upstream as a file may name it: no user, password or query."""
    url = urlsplit(upstream)
    host = f"{url.hostname}:{url.port}" if url.port else url.hostname
    return f"{url.scheme}://{host}{url.path}"


def update(results: Sequence[Result], upstream: str) -> list[Path]:
    """Rewrite each file with a changed recording from the live answers (same name, mode 0600,
    the recording's own redaction); other files are not touched. The files written."""
    changed: dict[Path, list[Result]] = {}
    for result in results:
        if result.verdict == CHANGED and result.live is not None:
            changed.setdefault(result.recording.file, []).append(result)
    for path, found in changed.items():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        scenarios = _scenarios(data)
        for result in found:
            scenario = scenarios[result.recording.index]
            _replace_step(scenario, result, upstream)
        rest = {k: v for k, v in data.items() if k != "scenarios"} if isinstance(data, dict) else {}
        written = {"version": 1, **rest, "scenarios": [styled(s) for s in scenarios]}
        write_recording(path, written, where(upstream))
    return list(changed)


def _replace_step(scenario: dict[str, Any], result: Result, upstream: str) -> None:
    assert result.live is not None
    assert result.answer is not None
    source = scenario["recording"]
    answers = list(source.get("answers") or [])
    steps = scenario.get("steps")
    answers += [{}] * ((len(steps) if isinstance(steps, list) else 1) - len(answers))
    answers[result.step] = result.answer
    if isinstance(steps, list):
        steps[result.step] = result.live
    else:
        kept = {k: v for k, v in scenario.items() if k not in _STEP_KEYS and k != "recording"}
        scenario.clear()
        scenario.update({**kept, **result.live})
    source.update(upstream=where(upstream), at=now(), mockserver=version())
    source["answers"] = answers
    scenario["recording"] = source  # last, as the recorder writes it


# --- reports -----------------------------------------------------------------------------------


def summary(results: Sequence[Result], upstream: str) -> str:
    counts = {v: sum(r.verdict == v for r in results) for v in (SAME, CHANGED, FAILED)}
    line = (
        f"drift: {len(results)} recording(s) against {where(upstream)}: {counts[SAME]} same, "
        f"{counts[CHANGED]} changed, {counts[FAILED]} failed"
    )
    unchecked = sum(r.verdict == UNCHECKABLE for r in results)
    return line + (f", {unchecked} not checkable" if unchecked else "")


def report(results: Sequence[Result], upstream: str) -> dict[str, Any]:
    """``--report``: the upstream, how many of each verdict, and every recording's result."""
    counts = {v: sum(r.verdict == v for r in results) for v in (SAME, CHANGED, FAILED, UNCHECKABLE)}
    return {
        "upstream": where(upstream),
        "summary": counts,
        "recordings": [r.to_dict() for r in results],
    }


def junit(results: Sequence[Result]) -> str:
    """A JUnit XML report: a test case per recording, a failure per changed one, an error per
    one that could not be compared, skipped for those that cannot be checked."""
    suite = ElementTree.Element(
        "testsuite",
        name="mockserver drift",
        tests=str(len(results)),
        failures=str(sum(r.verdict == CHANGED for r in results)),
        errors=str(sum(r.verdict == FAILED for r in results)),
        skipped=str(sum(r.verdict == UNCHECKABLE for r in results)),
    )
    for result in results:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=str(result.recording.file),
            name=result.recording.name,
            file=str(result.recording.file),
        )
        if result.verdict == CHANGED:
            kinds = ", ".join(c.kind for c in result.changes)
            failure = ElementTree.SubElement(case, "failure", type="changed", message=kinds)
            failure.text = "\n".join(f"{c.kind}: {c.detail}" for c in result.changes)
        elif result.verdict == FAILED:
            ElementTree.SubElement(case, "error", type="failed", message=result.detail)
        elif result.verdict == UNCHECKABLE:
            ElementTree.SubElement(case, "skipped", message=result.detail)
    ElementTree.indent(suite)
    head = '<?xml version="1.0" encoding="utf-8"?>\n'
    return head + ElementTree.tostring(suite, "unicode") + "\n"
