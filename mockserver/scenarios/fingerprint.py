"""The fingerprint of a request: what a recording matches on, and the redaction applied first.

A recording must answer the request that was sent and no other, so it matches a digest of a
canonical form of the request (model, conversation, tools, tool choice, output format, n,
stream), computed from the neutral ``Request`` every protocol parses into. Volatile fields
(``user``, ``metadata``, ``stream_options``, ``seed``, sampling parameters) are left out unless
a recording names them. Redaction patterns are applied to the canonical text before hashing,
so a request that carried a secret matches the recording made with the secret replaced.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..core.request import Request, field_at, message_text

DEFAULT_FIELDS = ("model", "messages", "tools", "tool_choice", "response_format", "n", "stream")
"""What a recording's digest covers unless it says otherwise; any other name is a dotted path
into the request body (``temperature``, ``metadata.team``)."""
REDACTED = "[REDACTED]"


class Redactor:
    """Replaces every match of the given patterns; patterns are checked when it is built."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = tuple(patterns)
        for pattern in self.patterns:
            try:
                compiled = re.compile(pattern)
            except re.error as err:
                raise ValueError(f"invalid redaction pattern {pattern!r}: {err}") from None
            if compiled.match(""):
                raise ValueError(f"redaction pattern {pattern!r} matches the empty string")
        self._regex = (
            re.compile("|".join(f"(?:{p})" for p in self.patterns)) if self.patterns else None
        )

    def __bool__(self) -> bool:
        return self._regex is not None

    def text(self, value: str) -> str:
        return value if self._regex is None else self._regex.sub(REDACTED, value)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return iter(()) if self._regex is None else self._regex.finditer(text)

    def data(self, value: Any) -> Any:
        """Every string in ``value`` (keys too) redacted, recursively."""
        if self._regex is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.data(v) for v in value]
        if isinstance(value, dict):
            out = {self.data(k): self.data(v) for k, v in value.items()}
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
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def request_digest(
    request: Request, fields: Sequence[str] = DEFAULT_FIELDS, redactor: Redactor | None = None
) -> str:
    text = canonical(request, fields)
    if redactor:
        text = redactor.text(text)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_cache: tuple[Request | None, dict[tuple[tuple[str, ...], tuple[str, ...]], str]] = (None, {})


def cached_digest(request: Request, fields: Sequence[str], redactor: Redactor) -> str:
    """``request_digest``, computed once per request and setting however many recordings ask
    (matching checks them one after another, on one thread)."""
    global _cache
    holder, known = _cache
    if holder is not request:
        known = {}
        _cache = (request, known)
    key = (tuple(fields), redactor.patterns)
    found = known.get(key)
    if found is None:
        found = known[key] = request_digest(request, fields, redactor)
    return found
