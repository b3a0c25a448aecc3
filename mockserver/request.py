"""Untrusted request body -> ``ChatRequest``, or an ``APIError`` naming the parameter."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .errors import APIError, invalid_type, missing_param
from .tokens import count_prompt_tokens

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
MAX_N = 128
_ROLES_TEXT = ", ".join(f"'{r}'" for r in ROLES[:-1]) + f", and '{ROLES[-1]}'"
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat completions request. ``body`` is the JSON as sent, unknown keys included."""

    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    n: int
    headers: Mapping[str, str] = field(repr=False, default_factory=dict)

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools = self.body.get("tools")
        return tools if isinstance(tools, list) else []

    @property
    def tool_names(self) -> list[str]:
        return [_tool_name(t) for t in self.tools]

    @cached_property
    def prompt_tokens(self) -> int:
        """Computed once: usage and rate limits both need it."""
        tools = self.body.get("tools")
        return count_prompt_tokens(self.messages, json.dumps(tools) if tools else None)

    @property
    def response_format(self) -> str | None:
        fmt = self.body.get("response_format")
        return fmt.get("type") if isinstance(fmt, dict) else None

    @property
    def last_user(self) -> str:
        for message in reversed(self.messages):
            if message["role"] == "user":
                return message_text(message)
        return ""

    @property
    def system(self) -> str:
        return "\n".join(
            message_text(m) for m in self.messages if m["role"] in ("system", "developer")
        )


def _tool_name(tool: Any) -> str:
    if isinstance(tool, dict):
        fn = tool.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return str(fn["name"])
        if isinstance(tool.get("name"), str):
            return str(tool["name"])
    return ""


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message, whether ``content`` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
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


_DECODER = json.JSONDecoder(parse_constant=_no_constants)  # built once: json.loads rebuilds it


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def parse_json_body(raw: bytes) -> Any:
    try:
        return _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise APIError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)",
        ) from None


_NUMBER_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_INT_PARAMS = ("max_tokens", "max_completion_tokens", "seed", "top_logprobs", "n")
_BOOL_PARAMS = ("logprobs", "parallel_tool_calls", "store")


def _check_types(body: dict[str, Any]) -> None:
    for name in _NUMBER_PARAMS:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise invalid_type(name, "a decimal", value)
    for name in _INT_PARAMS:
        value = body.get(name)
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            body[name] = value = int(value)  # 5.0 is an integer to JSON Schema
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise invalid_type(name, "an integer", value)
    for name in _BOOL_PARAMS:
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            raise invalid_type(name, "a boolean", value)
    stop = body.get("stop")
    strings = isinstance(stop, list) and all(isinstance(s, str) for s in stop)
    if stop is not None and not isinstance(stop, str) and not strings:
        raise invalid_type("stop", "a string or an array of strings", stop)
    _check_range(body, "n", 1, MAX_N)
    _check_range(body, "max_tokens", 0, None)
    _check_range(body, "max_completion_tokens", 0, None)


def _check_range(body: dict[str, Any], name: str, low: int, high: int | None) -> None:
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


def _check_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid_type("tools", "an array", tools)
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise invalid_type(f"tools[{i}]", "an object", tool)
            if tool.get("type", "function") == "function":
                fn = tool.get("function")
                if not isinstance(fn, dict):
                    raise missing_param(f"tools[{i}].function")
                if not isinstance(fn.get("name"), str):
                    raise missing_param(f"tools[{i}].function.name")
                params = fn.get("parameters")
                if params is not None and not isinstance(params, dict):
                    raise invalid_type(f"tools[{i}].function.parameters", "an object", params)
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, str | dict):
        raise invalid_type("tool_choice", "a string or an object", choice)
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict):
            raise invalid_type("response_format", "an object", fmt)
        if fmt.get("type") not in RESPONSE_FORMATS:
            raise APIError(
                400,
                f"Invalid value: {fmt.get('type')!r}. Supported values are: 'text', "
                "'json_object', and 'json_schema'.",
                param="response_format.type",
                code="invalid_value",
            )


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if messages is None:
        raise missing_param("messages")
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array", messages)
    if not messages:
        raise APIError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_type(f"messages[{i}]", "an object", message)
        role = message.get("role")
        if role is None:
            raise missing_param(f"messages[{i}].role")
        if role not in ROLES:
            raise APIError(
                400,
                f"Invalid value: {json.dumps(role)}. Supported values are: {_ROLES_TEXT}.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise invalid_type(f"messages[{i}].content", "a string or an array", content)
    return messages


def parse_chat_request(raw: bytes, headers: Mapping[str, str] | None = None) -> ChatRequest:
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise invalid_type("body", "an object", body)
    model = body.get("model")
    if model is None:
        raise missing_param("model")
    if not isinstance(model, str):
        raise invalid_type("model", "a string", model)
    messages = _check_messages(body.get("messages"))
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid_type("stream", "a boolean", stream)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise invalid_type("stream_options", "an object", options)
    include_usage = bool(options and options.get("include_usage") is True)
    _check_types(body)
    _check_tools(body)
    return ChatRequest(
        body=body,
        model=model,
        messages=messages,
        stream=bool(stream),
        include_usage=include_usage,
        n=body.get("n") or 1,
        headers=headers or {},
    )
