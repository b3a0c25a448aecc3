"""What a recording keeps beside its scenario so it can be checked later (``mockserver drift``).

A recording's ``recording:`` block says where it came from (upstream, time, mockserver
version, digest fields), holds the request as it can be sent again (path, the few headers a
protocol needs, the body after redaction) and, per step, what the upstream's answer looked
like beyond what a scenario replays: its status, its JSON shape (each path's types) and, for a
stream, the sequence of event types. Drift compares a live answer's against these.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..protocols.capture import Event

SHAPE_PATHS = 400
"""At most this many paths of a shape are kept (an answer's shape is a few dozen)."""
_DEPTH = 12

_RESENT_HEADERS = re.compile(r"anthropic-version|anthropic-beta|openai-beta", re.IGNORECASE)
_QUERY_SECRETS = frozenset({"key", "api_key", "api-key", "access_token", "token"})
_KEEPALIVE = frozenset({"ping"})  # sent at whatever moments the upstream likes


def version() -> str:
    """The installed mockserver's version."""
    try:
        return metadata.version("mockserver")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def resent_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers a protocol needs to be sent again (API version, betas): never a
    credential."""
    return {k.lower(): v for k, v in headers.items() if _RESENT_HEADERS.fullmatch(k)}


def clean_query(query: str) -> str:
    """A query string without its credentials (``?key=`` is how Gemini keys can travel)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, v) for k, v in pairs if k.lower() not in _QUERY_SECRETS])


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _walk(value: Any, path: str, out: dict[str, set[str]], depth: int) -> None:
    if path:
        out.setdefault(path, set()).add(_type(value))
    if depth >= _DEPTH or len(out) >= SHAPE_PATHS:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{path}.{key}" if path else str(key), out, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _walk(item, f"{path}[]", out, depth + 1)


def _written(found: dict[str, set[str]]) -> dict[str, str]:
    return {path: "|".join(sorted(types)) for path, types in list(found.items())[:SHAPE_PATHS]}


def event_type(event: Event, data: Any) -> str:
    """An event's type: its SSE name, else its data's ``type`` or ``object`` (chat chunks)."""
    if event.name:
        return event.name
    if event.data.strip() == "[DONE]":
        return "[DONE]"
    if isinstance(data, dict):
        for key in ("type", "object"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return "data"


def answer_of(status: int, body: bytes, events: Sequence[Event], stream: bool) -> dict[str, Any]:
    """An answer's ``status``, ``shape`` (each JSON path with its types, ``a.b[].c``; a
    stream's are per event type, ``type path``) and for a stream its ``events``: the event
    types in order, a run of one type written once (how many deltas a text takes varies)."""
    out: dict[str, Any] = {"status": status}
    found: dict[str, set[str]] = {}
    if stream:
        types: list[str] = []
        for event in events:
            data = json_value(event.data)
            kind = event_type(event, data)
            if kind in _KEEPALIVE:
                continue
            if not types or types[-1] != kind:
                types.append(kind)
            if isinstance(data, dict | list):
                shape: dict[str, set[str]] = {}
                _walk(data, "", shape, 0)
                for path, seen in shape.items():
                    found.setdefault(f"{kind} {path}", set()).update(seen)
        out["shape"] = _written(found)
        out["events"] = types
    else:
        data = json_value(body.decode("utf-8", "replace"))
        if isinstance(data, dict | list):
            _walk(data, "", found, 0)
        out["shape"] = _written(found)
    return out


def json_value(text: str) -> Any:
    """The JSON value of ``text``, or None when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return None
