"""The fingerprint of a request: what a recording matches on, and the redaction applied first.

A recording must answer the request that was sent and no other, so it matches a digest of a
canonical form of the request (model, conversation, tools, tool choice, output format, n,
stream), computed from the neutral ``Request`` every protocol parses into. Volatile fields
(``user``, ``metadata``, ``stream_options``, ``seed``, sampling parameters) are left out unless
a recording names them. Redaction patterns are applied to the canonical text before hashing,
so a request that carried a secret matches the recording made with the secret replaced.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..core.request import Request, field_at, message_text, tool_name

DEFAULT_FIELDS = ("model", "messages", "tools", "tool_choice", "response_format", "n", "stream")
"""What a recording's digest covers unless it says otherwise; any other name is a dotted path
into the request body (``temperature``, ``metadata.team``)."""
REDACTED = "[REDACTED]"


Pattern = str | Mapping[str, str]
"""A redaction pattern: a regex (its matches become ``[REDACTED]``), or ``{NAME: regex}``
(its matches become ``<NAME-1>``, ``<NAME-2>``..., one number per distinct value)."""

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"<([A-Za-z][A-Za-z0-9_]*)-([0-9]+)>")


def redact_option(text: str) -> Pattern:
    """A ``--redact`` value: ``NAME=REGEX`` names its placeholder, anything else is a plain
    pattern (a regex that must start with ``word=`` is written ``word\\=...``)."""
    name, eq, regex = text.partition("=")
    return {name: regex} if eq and regex and _NAME.fullmatch(name) else text


class Placeholders:
    """Which value got which named placeholder: one per recording, shared by its request and
    every answer in it, so the same address is ``<email-1>`` wherever it appears."""

    def __init__(self, seen_in: str = "") -> None:
        self.known: dict[tuple[str, str], str] = {}
        self.counts: dict[str, int] = {}
        for found in _PLACEHOLDER.finditer(seen_in):  # numbers a file already uses stay taken
            name, number = found.group(1), int(found.group(2))
            self.counts[name] = max(self.counts.get(name, 0), number)

    def get(self, name: str, value: str) -> str:
        found = self.known.get((name, value))
        if found is None:
            number = self.counts[name] = self.counts.get(name, 0) + 1
            found = self.known[name, value] = f"<{name}-{number}>"
        return found


class Redactor:
    """Replaces every match of the given patterns; patterns are checked when it is built."""

    def __init__(self, patterns: Iterable[Pattern] = ()) -> None:
        names: list[str | None] = []
        regexes: list[str] = []
        for pattern in patterns:
            name: str | None = None
            if isinstance(pattern, Mapping):
                if len(pattern) != 1:
                    raise ValueError(f"a named redaction is one NAME: REGEX pair, got {pattern!r}")
                ((name, pattern),) = pattern.items()
                if not _NAME.fullmatch(str(name)):
                    raise ValueError(f"invalid redaction name {name!r}: use letters, digits, _")
            try:
                compiled = re.compile(pattern)
            except re.error as err:
                raise ValueError(f"invalid redaction pattern {pattern!r}: {err}") from None
            if compiled.match(""):
                raise ValueError(f"redaction pattern {pattern!r} matches the empty string")
            names.append(name)
            regexes.append(pattern)
        self.patterns = tuple(regexes)
        """The regexes, named or not."""
        self.names = tuple(names)
        """Each pattern's placeholder name (None: ``[REDACTED]``)."""
        self.key = tuple(zip(self.names, self.patterns, strict=True))
        self._named = any(n is not None for n in self.names)
        joined = "|".join(f"(?P<_redact{i}>{p})" for i, p in enumerate(self.patterns))
        self._regex = re.compile(joined) if self.patterns else None

    def __bool__(self) -> bool:
        return self._regex is not None

    def __repr__(self) -> str:  # the inspector shows conditions by their repr
        return f"Redactor({self.spec()!r})"

    def spec(self) -> list[Pattern]:
        """The patterns as a recording writes them (and ``Redactor`` reads them back)."""
        return [p if n is None else {n: p} for n, p in self.key]

    def text(self, value: str, places: Placeholders | None = None) -> str:
        """``value`` redacted; named placeholders numbered in ``places`` (a fresh numbering for
        this text alone when None)."""
        if self._regex is None:
            return value
        if not self._named:
            return self._regex.sub(REDACTED, value)
        numbering = places if places is not None else Placeholders()

        def replace(found: re.Match[str]) -> str:
            groups = range(len(self.names))
            name = self.names[next(i for i in groups if found.group(f"_redact{i}") is not None)]
            return REDACTED if name is None else numbering.get(name, found.group(0))

        return self._regex.sub(replace, value)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return iter(()) if self._regex is None else self._regex.finditer(text)

    def data(self, value: Any, places: Placeholders | None = None) -> Any:
        """Every string in ``value`` (keys too) redacted, recursively, with one numbering of
        named placeholders for all of it."""
        if self._regex is None:
            return value
        if places is None and self._named:
            places = Placeholders()
        if isinstance(value, str):
            return self.text(value, places)
        if isinstance(value, list):
            return [self.data(v, places) for v in value]
        if isinstance(value, dict):
            out = {self.data(k, places): self.data(v, places) for k, v in value.items()}
            return out if type(value) is dict else type(value)(out)  # keep subclasses' styles
        return value

    def pattern_for(self, text: str) -> str | None:
        """A regex matching ``text`` with any secrets the patterns find in it, for a readable
        condition on a redacted text; None when it cannot be built (then the digest alone
        decides)."""
        assert self._regex is not None
        secret = "(?:" + "|".join(self.patterns) + ")"

        def plain(part: str) -> str:
            return re.escape(part).replace("\\ ", " ")  # spaces need no escape (no VERBOSE)

        out, at = [r"\A"], 0
        for found in self._regex.finditer(text):
            out += [plain(text[at : found.start()]), secret]
            at = found.end()
        out += [plain(text[at:]), r"\Z"]
        pattern = "".join(out)
        try:
            re.compile(pattern)
        except re.error:  # e.g. a named group repeated
            return None
        return pattern


def conversation(request: Request) -> list[dict[str, Any]]:
    """The messages the request itself carried, each reduced to what a conversation says.

    Turns a protocol pulled in from elsewhere (a stored response's, by
    ``previous_response_id``) are left out, since their ids differ between the recording run
    (upstream ids) and a replay (the mock's own). Within a message only the role, text, tool
    calls and tool result id count: an app that sends back the assistant message it got keeps
    whatever extra fields its provider added (``annotations``, ``audio``, nulls), and a replay
    by the mock would not add the same ones."""
    kept = {id(m) for m in request.context}
    return [_essential(m) for m in request.messages if id(m) not in kept]


def _essential(message: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.get("role")}
    content = message.get("content")
    if isinstance(content, list):
        texts = [p for p in content if isinstance(p, dict) and p.get("type") in ("text", None)]
        if len(texts) == len(content):
            content = message_text(message)
        else:
            content = [{k: v for k, v in p.items() if v is not None} for p in content]
    if content:
        out["content"] = content
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        out["tool_calls"] = [
            {"id": c.get("id"), "name": field_at(c, "function.name"),
             "arguments": field_at(c, "function.arguments")}
            if isinstance(c, dict) else c
            for c in calls
        ]  # fmt: skip
    for key in ("tool_call_id", "name"):
        if message.get(key) is not None:
            out[key] = message[key]
    return out


def _value(request: Request, name: str) -> Any:
    if name == "model":
        return request.model
    if name == "messages":
        return conversation(request)
    if name == "tools":
        return request.tools
    if name == "tool_choice":
        return request.body.get("tool_choice")
    if name == "response_format":
        return request.body.get("response_format") or field_at(request.body, "text.format")
    if name == "n":
        return request.n
    if name == "stream":
        return request.stream
    return field_at(request.body, name)


def canonical(request: Request, fields: Sequence[str] = DEFAULT_FIELDS) -> str:
    """The request as one JSON text: its protocol and the named fields, keys sorted."""
    data = {"api": request.api, **{name: _value(request, name) for name in fields}}
    if request.files:  # uploads (images to edit, audio) by content: another file, another request
        data["files"] = [[f.field, f.digest] for f in request.files]
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def request_digest(
    request: Request, fields: Sequence[str] = DEFAULT_FIELDS, redactor: Redactor | None = None
) -> str:
    text = canonical(request, fields)
    if redactor:
        text = redactor.text(text)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_cache: tuple[Request | None, dict[tuple[str, tuple[str, ...], Any], Any]] = (None, {})


def _once(request: Request, what: str, fields: Sequence[str], redactor: Redactor) -> Any:
    """``what`` (``digest`` or ``covers``) of ``request``, computed once per request and
    setting however many recordings ask (matching checks them one after another, on one
    thread)."""
    global _cache
    holder, known = _cache
    if holder is not request:
        known = {}
        _cache = (request, known)
    key = (what, tuple(fields), redactor.key)
    found = known.get(key)
    if found is None:
        compute = request_digest if what == "digest" else covers
        found = known[key] = compute(request, fields, redactor)
    return found


def cached_digest(request: Request, fields: Sequence[str], redactor: Redactor) -> str:
    """``request_digest``, once per request (``_once``)."""
    return str(_once(request, "digest", fields, redactor))


def cached_covers(request: Request, fields: Sequence[str], redactor: Redactor) -> dict[str, Any]:
    """``covers``, once per request (``_once``): the inspector explains every recording."""
    found: dict[str, Any] = _once(request, "covers", fields, redactor)
    return found


# --- What a digest covers, readable: why a request misses a recording ------------------------

_SHORT = 60  # a field's value up to this long (as JSON) is kept as it is, longer ones hashed


def _hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def covers(
    request: Request, fields: Sequence[str] = DEFAULT_FIELDS, redactor: Redactor | None = None
) -> dict[str, Any]:
    """What the digest of ``request`` covers, field by field, small enough to keep beside it:
    short values as they are, each message as its role and a hash, each tool as its name and
    a hash. Comparing two of these (``differences``) says which field a request changed."""
    values = {name: _value(request, name) for name in fields}
    if redactor:
        values = redactor.data(values)
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name == "messages" and isinstance(value, list):
            out[name] = [f"{m.get('role')} {_hash(m)}" for m in value]
        elif name == "tools" and isinstance(value, list):
            out[name] = [f"{tool_name(t) or '?'} {_hash(t)}" for t in value]
        elif len(json.dumps(value, ensure_ascii=False)) <= _SHORT:
            out[name] = value
        else:
            out[name] = f"#{_hash(value)}"
    return out


def differences(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """How ``now`` differs from ``recorded`` (both from ``covers``), one phrase per field:
    ``tools: added 'get_time'``, ``messages: message 1 (system) edited``."""
    out = []
    for name, was in recorded.items():
        got = now.get(name)
        if was == got:
            continue
        if name == "messages" and isinstance(was, list) and isinstance(got, list):
            detail = _message_changes(was, got)
        elif name == "tools" and isinstance(was, list) and isinstance(got, list):
            detail = _tool_changes(was, got)
        else:
            detail = f"{_shown(was)} -> {_shown(got)}"
        out.append(f"{name}: {detail}")
    return out


def _shown(value: Any) -> str:
    if isinstance(value, str) and value.startswith("#") and len(value) == 9:
        return "a value not kept"
    return repr(value)


def _few(items: list[str], limit: int = 3) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _message_changes(was: list[str], got: list[str]) -> str:
    role = [entry.split(" ")[0] for entry in was], [entry.split(" ")[0] for entry in got]
    said = []
    matcher = difflib.SequenceMatcher(None, was, got, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "replace" and a2 - a1 == b2 - b1:
            for a, b in zip(range(a1, a2), range(b1, b2), strict=True):
                if role[0][a] == role[1][b]:
                    said.append(f"message {b + 1} ({role[1][b]}) edited")
                else:
                    said.append(f"message {b + 1} is {role[1][b]}, was {role[0][a]}")
            continue
        if op in ("replace", "delete"):
            said += [f"message {a + 1} ({role[0][a]}) removed" for a in range(a1, a2)]
        if op in ("replace", "insert"):
            said += [f"message {b + 1} ({role[1][b]}) added" for b in range(b1, b2)]
    return _few(said)


def _tool_changes(was: list[str], got: list[str]) -> str:
    before = dict(entry.rsplit(" ", 1) for entry in was)
    after = dict(entry.rsplit(" ", 1) for entry in got)
    said = [f"added {n!r}" for n in after if n not in before]
    said += [f"removed {n!r}" for n in before if n not in after]
    said += [f"{n!r} changed" for n in after if n in before and before[n] != after[n]]
    return _few(said) or "reordered"
