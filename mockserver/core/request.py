"""The neutral request every protocol parses into, and the checks protocols share.

Matching, templates, sequences, profiles, usage and the journal read a ``Request`` and never a
wire format. Its conversation is a list of messages in the chat shape (``role``, ``content`` as
text or text parts, ``tool_calls``, ``tool_call_id``), which every protocol maps onto, the way
LiteLLM maps providers onto OpenAI's: the chat protocol passes its messages through untouched,
so the commonest request costs no conversion.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import APIError, invalid_type, missing_param
from .forms import Upload
from .tokens import count_prompt_tokens

arguments_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""Tool-call arguments as text, the way OpenAI writes them: compact JSON (no space after ``:``
or ``,``), other scripts as they are. A client that compares or hashes arguments, or replays
them, sees what the real API sends."""

NOTHING: Mapping[str, Any] = MappingProxyType({})


@dataclass(slots=True)
class Request:
    """A validated request. ``body`` is the JSON as sent, unknown keys included.

    Read-only by convention, not frozen: a frozen dataclass sets each field through
    ``object.__setattr__``, and building this one cost 5x as much (one per request). A
    request of only the common fields is built from the first six by position: a class
    called with keywords gathers them into a dict first, which cost as much again."""

    api: str
    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    headers: Mapping[str, str] = field(repr=False, default_factory=dict)
    include_usage: bool = False
    n: int = 1
    tools: list[Any] = field(default_factory=list)
    tool_choice: str | None = None
    """``auto``, ``none``, ``required``, or the name of the function the request forces."""
    response_format: str | None = None
    """``text``, ``json_object`` or ``json_schema`` (Responses' ``text.format`` included)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """The sampling and length parameters the request sets, for the profile's rules."""
    context: tuple[dict[str, Any], ...] = ()
    """Messages a protocol kept outside the request (a stored previous response's turns)."""
    inputs: tuple[str, ...] = ()
    """Texts to embed (embeddings); the first is also ``last_user``."""
    files: tuple[Upload, ...] = ()
    """Files uploaded with the request (multipart: images to edit, a mask, audio)."""
    tokens: int | None = None
    """Prompt tokens when the protocol counts them its own way (embeddings: the inputs'), or
    once counted."""
    wire: Mapping[str, Any] = field(default_factory=dict)
    """What the protocol read of the request for its own reply and matches nothing on
    (Gemini: the method its URL names and the stream's framing)."""

    @property
    def tool_names(self) -> list[str]:
        return [tool_name(t) for t in self.tools]

    _last_user: str | None = field(default=None, init=False, repr=False, compare=False)

    # Computed once each, and cached by hand: ``functools.cached_property`` takes a lock on
    # Python 3.11, which cost more than the work on a request's path.

    @property
    def prompt_tokens(self) -> int:
        """Usage and rate limits both need it."""
        if self.tokens is None:
            tools = self.tools
            self.tokens = count_prompt_tokens(self.messages, json.dumps(tools) if tools else None)
        return self.tokens

    @property
    def last_user(self) -> str:
        """The matcher's index, its conditions and templates all read it."""
        text = self._last_user
        if text is None:
            text = ""
            for message in reversed(self.messages):  # a loop: ``next(genexpr)`` costs more
                if message["role"] == "user":
                    content = message.get("content")  # text, most often: no call to read it
                    text = content if type(content) is str else message_text(message)
                    break
            self._last_user = text
        return text

    @property
    def system(self) -> str:
        return "\n".join(
            message_text(m) for m in self.messages if m["role"] in ("system", "developer")
        )

    @property
    def tool_result(self) -> str:
        """The text of the last tool result (``{{ tool_result }}``)."""
        for message in reversed(self.messages):
            if message["role"] == "tool":
                return message_text(message, "\n")
        return ""


def tool_name(tool: Any) -> str:
    """A tool's name, whether it is chat-shaped (``function.name``) or flat (``name``)."""
    if isinstance(tool, dict):
        fn = tool.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return str(fn["name"])
        if isinstance(tool.get("name"), str):
            return str(tool["name"])
    return ""


def message_text(message: Mapping[str, Any], joiner: str = "") -> str:
    """The text of a message, whether ``content`` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return joiner.join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def field_at(body: Any, path: str) -> Any:
    """The value at a dotted path (``metadata.team``, ``messages.0.role``), or None."""
    for part in path.split("."):
        if isinstance(body, dict):
            body = body.get(part)
        elif isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        else:
            return None
    return body


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder(
    parse_constant=_no_constants
).scan_once  # type: ignore[attr-defined]  # set by __init__: the C scanner
"""The C scanner, called directly: ``JSONDecoder.decode`` around it costs as much as
scanning a small body (two regex matches and two Python calls)."""
_SPACE = " \t\n\r"  # JSON's whitespace, not ``str.isspace``'s


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def parse_json_body(raw: bytes) -> Any:
    """One JSON value, whitespace around it allowed, as ``json.loads`` reads it (with NaN
    and Infinity refused); the 400 OpenAI sends otherwise."""
    try:
        text = raw.decode("utf-8")
        start = len(text) - len(text.lstrip(_SPACE)) if text[:1] in _SPACE else 0
        value, end = _SCAN(text, start)
        if end != len(text) and text[end:].strip(_SPACE):
            raise ValueError("extra data after the JSON value")
        return value
    except (ValueError, RecursionError, StopIteration):
        raise APIError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)",
        ) from None


def json_object(raw: bytes) -> dict[str, Any]:
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise invalid_type("body", "an object", body)
    return body


def body_and_model(raw: bytes) -> tuple[dict[str, Any], str]:
    """An OpenAI-protocol body and its ``model``, or the 400 naming what is wrong."""
    body = json_object(raw)
    model = body.get("model")
    if model is None:
        raise missing_param("model")
    if not isinstance(model, str):
        raise invalid_type("model", "a string", model)
    return body, model


def integral(body: dict[str, Any], name: str) -> Any:
    """``body[name]``, with a whole float made an int: 5.0 is an integer to JSON Schema."""
    value = body.get(name)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        body[name] = value = int(value)
    return value


def param_types(
    numbers: tuple[str, ...] = (),
    integers: tuple[str, ...] = (),
    booleans: tuple[str, ...] = (),
    strings: tuple[str, ...] = (),
    objects: tuple[str, ...] = (),
) -> dict[str, str]:
    """Each named parameter's JSON type, for ``check_types``: built once per protocol."""
    kinds: dict[str, str] = {}
    for kind, names in (("number", numbers), ("integer", integers), ("boolean", booleans),
                        ("string", strings), ("object", objects)):  # fmt: skip
        kinds.update(dict.fromkeys(names, kind))
    return kinds


def _wrong(kind: str, value: Any) -> bool:
    if kind == "number":
        return isinstance(value, bool) or not isinstance(value, int | float)
    if kind == "integer":
        return isinstance(value, bool) or not isinstance(value, int)
    if kind == "boolean":
        return not isinstance(value, bool)
    if kind == "string":
        return not isinstance(value, str)
    return not isinstance(value, dict)


_WORDS = {"number": "a decimal", "integer": "an integer", "boolean": "a boolean",
          "string": "a string", "object": "an object"}  # fmt: skip


def check_types(body: dict[str, Any], types: Mapping[str, str]) -> None:
    """400 naming the first parameter, in the body's order, of the wrong JSON type; ``5.0``
    counts as an integer. It walks the keys the body sets (a few), not every known parameter."""
    for name in body:
        kind = types.get(name)
        if kind is None:
            continue
        value = integral(body, name) if kind == "integer" else body[name]
        if value is not None and _wrong(kind, value):
            raise invalid_type(name, _WORDS[kind], value)


def check_range(body: Mapping[str, Any], name: str, low: int, high: int | None) -> None:
    value = body.get(name)
    if value is None:
        return
    if value < low:
        side, bound, code = "below minimum", f">= {low}", "integer_below_min_value"
    elif high is not None and value > high:
        side, bound, code = "above maximum", f"<= {high}", "integer_above_max_value"
    else:
        return
    raise APIError(
        400,
        f"Invalid '{name}': integer {side} value. Expected a value {bound}, "
        f"but got {value} instead.",
        param=name,
        code=code,
    )


def required_text(body: Mapping[str, Any], name: str, limit: int) -> str:
    """A required string parameter of at most ``limit`` characters, or OpenAI's 400 for it."""
    text = body.get(name)
    if text is None:
        raise missing_param(name)
    if not isinstance(text, str):
        raise invalid_type(name, "a string", text)
    if len(text) > limit:
        raise APIError(
            400,
            f"Invalid '{name}': string too long. Expected a string with maximum length "
            f"{limit}, but got a string with length {len(text)} instead.",
            param=name,
            code="string_above_max_length",
        )
    return text


def invalid_value(param: str, value: Any, allowed: tuple[str, ...]) -> APIError:
    shown = ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'"
    return APIError(
        400,
        f"Invalid value: {json.dumps(value)}. Supported values are: {shown}.",
        param=param,
        code="invalid_value",
    )


def present(body: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The parameters among ``names`` the body sets (not null): what a profile reads."""
    return {name: body[name] for name in names if body.get(name) is not None}
