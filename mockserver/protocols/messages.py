"""Anthropic Messages: ``POST /v1/messages``.

Blocks become the neutral conversation: ``system`` the system text, ``tool_result`` blocks tool
results, an assistant's ``tool_use`` blocks its tool calls, so every condition, template and
sequence works unchanged. A reply becomes content blocks (``thinking`` with a deterministic
signature, ``text``, ``tool_use`` with an object ``input``) and, streamed, Anthropic's named
events; errors take Anthropic's shape, and rate limits its ``anthropic-ratelimit-*`` headers.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any

from ..core.caching import (
    MAX_BREAKPOINTS,
    TTLS,
    Block,
    Plan,
    anthropic_minimum,
    explicit,
    message_block,
)
from ..core.errors import APIError, describe_type
from ..core.request import Request, arguments_json, integral, json_object
from ..scenarios.ratelimit import Ticket
from ..scenarios.render import Rendered, Usage
from . import (
    NO_QUERY,
    NOWHERE,
    Answer,
    Frame,
    Lookup,
    Protocol,
    Target,
    arguments_object,
    dumps,
    dumps_text,
    signature,
)
from .capture import Captured, Event, Piece, dig, scenario_call, scenario_message, text_of, usage_of

ROLES = ("user", "assistant", "system")
_PLAIN = frozenset({"model", "max_tokens", "messages", "stream"})
"""A body that sets only these has been checked once they are: the rest are defaults."""
ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` a request sent upstream carries unless its recording kept one."""
# What every content_block_delta event starts with, up to its index (``frames`` splices them).
_DELTA_HEAD = 'event: content_block_delta\ndata: {"type": "content_block_delta", "index": '
TOOL_CHOICES = ("auto", "any", "tool", "none")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                 "content_filter": "refusal", "function_call": "tool_use"}  # fmt: skip


def _invalid(message: str) -> APIError:
    """Anthropic names the offending field at the start of the message, ``field: problem``."""
    param = message.partition(":")[0]
    return APIError(400, message, param=param)


def _type_error(field: str, expected: str, value: Any) -> APIError:
    return _invalid(f"{field}: Input should be {expected}, got {describe_type(value)}")


def _block_text(content: Any, field: str) -> str | list[dict[str, Any]]:
    """Text of a content value: a string, or its text blocks (other blocks are skipped)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _type_error(field, "a valid string or list", content)
    parts = []
    for i, block in enumerate(content):
        if not isinstance(block, dict):
            raise _type_error(f"{field}.{i}", "a valid dictionary", block)
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
    return parts


def _conversation(messages: Any) -> list[dict[str, Any]]:
    if messages is None:
        raise _invalid("messages: Field required")
    if not isinstance(messages, list):
        raise _type_error("messages", "a valid list", messages)
    if not messages:
        raise _invalid("messages: at least one message is required")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise _type_error(where, "a valid dictionary", message)
        role = message.get("role")
        if role not in ROLES:
            allowed = " or ".join(f"'{r}'" for r in ROLES)
            raise _invalid(f"{where}.role: Input should be {allowed}")
        content = message.get("content")
        if content is None:
            raise _invalid(f"{where}.content: Field required")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise _type_error(f"{where}.content", "a valid string or list", content)
        texts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        results = 0
        for k, block in enumerate(content):
            at = f"{where}.content.{k}"
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise _invalid(f"{at}.type: Field required")
            kind = block["type"]
            if kind == "text":
                if not isinstance(block.get("text"), str):
                    raise _invalid(f"{at}.text: Field required")
                texts.append({"type": "text", "text": block["text"]})
            elif kind == "tool_use":
                if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                    raise _invalid(f"{at}: tool_use blocks need 'id' and 'name'")
                arguments = arguments_json(block.get("input") or {})
                function = {"name": block["name"], "arguments": arguments}
                calls.append({"id": block["id"], "type": "function", "function": function})
            elif kind == "tool_result":
                if not isinstance(block.get("tool_use_id"), str):
                    raise _invalid(f"{at}.tool_use_id: Field required")
                result = _block_text(block.get("content", ""), f"{at}.content")
                out.append(
                    {"role": "tool", "tool_call_id": block["tool_use_id"], "content": result}
                )
                results += 1
            # image, document, thinking, redacted_thinking...: journalled, not matched on
        if role == "assistant":
            said: dict[str, Any] = {"role": "assistant", "content": texts or None}
            if calls:
                said["tool_calls"] = calls
            out.append(said)
        elif texts or not results:  # a turn of tool results only ends on those results
            out.append({"role": role, "content": texts})
    return out


def _system(body: dict[str, Any]) -> list[dict[str, Any]]:
    system = body.get("system")
    if system is None:
        return []
    return [{"role": "system", "content": _block_text(system, "system")}]


def _tools(body: dict[str, Any]) -> list[Any]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _type_error("tools", "a valid list", tools)
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _invalid(f"tools.{i}.name: Field required")
        schema = tool.get("input_schema")
        kind = tool.get("type")
        if kind is not None and not isinstance(kind, str):
            raise _type_error(f"tools.{i}.type", "a valid string", kind)
        if kind in (None, "custom") and not isinstance(schema, dict):
            raise _invalid(f"tools.{i}.input_schema: Field required")
    return tools


def _tool_choice(body: dict[str, Any]) -> str | None:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICES:
        allowed = ", ".join(f"'{c}'" for c in TOOL_CHOICES)
        raise _invalid(f"tool_choice.type: Input should be one of {allowed}")
    kind = choice["type"]
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise _invalid("tool_choice.name: Field required")
        return str(choice["name"])
    return {"any": "required"}.get(kind, kind)


def _check(body: dict[str, Any]) -> None:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _type_error(name, "a valid number", value)
    for name in ("top_k", "max_tokens"):
        value = integral(body, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _type_error(name, "a valid integer", value)
    stops = body.get("stop_sequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(s, str) for s in stops)
    ):
        raise _type_error("stop_sequences", "a valid list of strings", stops)
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise _type_error("stream", "a valid boolean", body["stream"])
    for name in ("metadata", "thinking"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise _type_error(name, "a valid dictionary", body[name])


def _breakpoint(holder: Any, where: str) -> str | None:
    """The TTL of a ``cache_control`` breakpoint on a tool or block, None where there is none."""
    if not isinstance(holder, dict) or holder.get("cache_control") is None:
        return None
    control = holder["cache_control"]
    at = f"{where}.cache_control" if where else "cache_control"
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise _invalid(f"{at}.type: Input should be 'ephemeral'")
    ttl = control.get("ttl", "5m")
    if ttl not in TTLS:
        raise _invalid(f"{at}.ttl: Input should be '5m' or '1h'")
    return str(ttl)


def _breakpoints(body: dict[str, Any]) -> list[tuple[Any, str]]:
    """Every place a breakpoint may sit, in cache order: (tool or block, where it is)."""
    places: list[tuple[Any, str]] = [(t, f"tools.{i}") for i, t in enumerate(_list(body, "tools"))]
    system = body.get("system")
    if isinstance(system, list):
        places.extend((b, f"system.{i}") for i, b in enumerate(system))
    for i, message in enumerate(_list(body, "messages")):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            places.extend((b, f"messages.{i}.content.{k}") for k, b in enumerate(content))
    return places


def _list(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key)
    return value if isinstance(value, list) else []


def _check_breakpoints(body: dict[str, Any]) -> None:
    """Anthropic's limit, enforced whether or not caching is simulated: four breakpoints.
    A scan of the keys, no counting: it runs on every request."""
    found = sum(_breakpoint(x, where) is not None for x, where in _breakpoints(body))
    found += _breakpoint(body, "") is not None
    if found > MAX_BREAKPOINTS:
        raise _invalid(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {found}."
        )


def cache_blocks(body: dict[str, Any]) -> list[Block]:
    """The prompt in Anthropic's cache order (tools, system, messages), a block per tool and
    per content block, each with the breakpoint it carries; a message's framing tokens go
    with its first block. A top-level ``cache_control`` (automatic caching) is a breakpoint
    on the last block."""
    blocks = [Block(dumps(t), 0, _breakpoint(t, "")) for t in _list(body, "tools")]
    turns: list[tuple[str, Any]] = []
    system = body.get("system")
    if system is not None:
        turns.append(("system", system))
    turns.extend((m["role"], m["content"]) for m in _list(body, "messages"))
    for role, content in turns:
        parts = content if isinstance(content, list) else [content]
        for k, part in enumerate(parts):
            if isinstance(part, dict):
                text = part["text"] if part.get("type") == "text" else dumps(part)
                ttl = _breakpoint(part, "")
            else:
                text, ttl = str(part), None
            made = message_block({"role": role, "content": text}, ttl)
            blocks.append(made if k == 0 else Block(made.text, 0, ttl))
    top = _breakpoint(body, "")
    if top is not None and blocks and blocks[-1].ttl is None:
        blocks[-1] = Block(blocks[-1].text, blocks[-1].framing, top)
    return blocks


def parse_messages(raw: bytes, headers: Mapping[str, str], lookup: Lookup) -> Request:
    body = json_object(raw)
    model = body.get("model")
    if model is None:
        raise _invalid("model: Field required")
    if not isinstance(model, str):
        raise _type_error("model", "a valid string", model)
    if body.get("max_tokens") is None:
        raise _invalid("max_tokens: Field required")
    _check(body)
    if body["max_tokens"] < 1:
        raise _invalid("max_tokens: Input should be greater than or equal to 1")
    messages = _conversation(body.get("messages"))
    if b'"cache_control"' in raw or b"\\u" in raw:  # C scans; a key may be written escaped
        _check_breakpoints(body)
    if body.keys() <= _PLAIN:  # the commonest request: no other parameter to check or read
        request = Request("messages", body, model, messages, bool(body.get("stream")), headers)
        request.params = {"max_tokens": body["max_tokens"]}  # by position: see ``Request``
        return request
    params: dict[str, Any] = {
        k: body[k] for k in ("temperature", "top_p", "top_k", "max_tokens") if k in body
    }
    if body.get("stop_sequences"):
        params["stop"] = body["stop_sequences"]
    return Request(
        api="messages",
        body=body,
        model=model,
        messages=[*_system(body), *messages],
        stream=bool(body.get("stream")),
        headers=headers,
        tools=_tools(body),
        tool_choice=_tool_choice(body),
        params={k: v for k, v in params.items() if v is not None},
    )


def _usage(u: Usage, output: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_tokens": u.prompt,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cached,
    }
    if u.cache_split is not None:
        five, hour = u.cache_split
        out["cache_creation"] = {
            "ephemeral_5m_input_tokens": five,
            "ephemeral_1h_input_tokens": hour,
        }
    out["output_tokens"] = u.completion if output is None else output
    return out


def _signature(id: str, thinking: str) -> str:
    return base64.b64encode(signature(id, thinking)).decode()


def _stop(answer: Answer) -> tuple[str, str | None]:
    c = answer.rendered.choices[0]
    if c.refusal is not None:
        return "refusal", None
    if c.stop_sequence is not None:
        return "stop_sequence", c.stop_sequence
    return _STOP_REASONS.get(c.finish_reason, "end_turn"), None


class Messages(Protocol):
    name = "messages"
    routes = ("/messages",)
    id_prefix = "msg_"
    cache_apart = True
    key_variable = "ANTHROPIC_API_KEY"

    def key_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}

    def api_key(
        self, headers: Mapping[str, str], query: Mapping[str, str] = NO_QUERY
    ) -> str | None:
        key = headers.get("x-api-key", "").strip()
        if key:
            return key
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def auth_error(self, headers: Mapping[str, str], key: str | None) -> APIError:
        if key is None:
            return APIError(401, "x-api-key header is required", type="authentication_error")
        return APIError(401, "invalid x-api-key", type="authentication_error")

    def parse(
        self, raw: bytes, headers: Mapping[str, str], lookup: Lookup, target: Target = NOWHERE
    ) -> Request:
        return parse_messages(raw, headers, lookup)

    def cache_plan(self, req: Request, scope: str, ttl: float) -> Plan | None:
        return explicit(cache_blocks(req.body), scope, anthropic_minimum(req.model))

    def error_type(self, err: APIError) -> str:
        """The type stated, else Anthropic's for the status. A rate-limit budget's refusal
        states OpenAI's (``requests``, ``tokens``); Anthropic calls any 429 ``rate_limit_error``."""
        if err.type is not None and err.ticket is None:
            return err.type
        fallback = "api_error" if err.status >= 500 else "invalid_request_error"
        return ERROR_TYPES.get(err.status, fallback)

    def claims(self, path: str, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        return "anthropic-version" in headers  # every Anthropic client sends its version

    def model_list(self, names: Sequence[str]) -> dict[str, Any]:
        data = [self.model(m) for m in names]
        return {"data": data, "has_more": False, "first_id": names[0], "last_id": names[-1]}

    def model(self, name: str) -> dict[str, Any]:
        return {"type": "model", "id": name, "display_name": name,
                "created_at": "2025-01-01T00:00:00Z", "lifecycle": "active"}  # fmt: skip

    def error_body(self, err: APIError, request_id: str) -> bytes:
        body = {"type": "error", "error": {"type": self.error_type(err), "message": err.message},
                "request_id": request_id}  # fmt: skip
        return dumps(body).encode()

    request_id_headers = ("request-id", "x-request-id")

    def rate_limit_headers(self, ticket: Ticket) -> dict[str, str]:
        limit, window = ticket.limit, ticket.window
        reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(window.start + limit.per))
        out = {}
        if limit.requests is not None:
            out["anthropic-ratelimit-requests-limit"] = str(limit.requests)
            remaining = max(limit.requests - window.requests, 0)
            out["anthropic-ratelimit-requests-remaining"] = str(remaining)
            out["anthropic-ratelimit-requests-reset"] = reset
        if limit.tokens is not None:
            out["anthropic-ratelimit-tokens-limit"] = str(limit.tokens)
            out["anthropic-ratelimit-tokens-remaining"] = str(max(limit.tokens - window.tokens, 0))
            out["anthropic-ratelimit-tokens-reset"] = reset
        return out

    def shape(self, request: Request) -> Hashable:
        return ()  # nothing of the request but the reply shapes the answer

    def derived(self, rendered: Rendered, id: str, seed: str) -> tuple[str, ...]:
        reasoning = rendered.choices[0].reasoning
        return (_signature(id, reasoning),) if reasoning is not None else ()

    def _blocks(self, answer: Answer) -> list[dict[str, Any]]:
        c = answer.rendered.choices[0]
        out: list[dict[str, Any]] = []
        if c.reasoning is not None:
            signature = _signature(answer.env.id, c.reasoning)
            out.append({"type": "thinking", "thinking": c.reasoning, "signature": signature})
        text = c.refusal if c.refusal is not None else c.content
        if text is not None and (text or not c.tool_calls):
            out.append({"type": "text", "text": text})
        for k, (scripted, name, arguments) in enumerate(c.tool_calls):
            out.append({"type": "tool_use", "id": self._tool_id(answer, scripted, k), "name": name,
                        "input": arguments_object(arguments)})  # fmt: skip
        return out

    def _tool_id(self, answer: Answer, scripted: str | None, k: int) -> str:
        return scripted or f"toolu_{answer.env.call_id_seed}{k}"

    def _message(self, answer: Answer, content: list[dict[str, Any]], done: bool) -> dict[str, Any]:
        reason, sequence = _stop(answer) if done else (None, None)
        return {
            "id": answer.env.id,
            "type": "message",
            "role": "assistant",
            "model": answer.env.model,
            "content": content,
            "stop_reason": reason,
            "stop_sequence": sequence,
            "usage": _usage(answer.usage, None if done else 1),
        }

    def body(self, answer: Answer) -> bytes:
        message = self._message(answer, self._blocks(answer), done=True)
        return dumps(message).encode()

    def frames(self, answer: Answer) -> Iterator[Frame]:
        c = answer.rendered.choices[0]
        index = 0

        def event(kind: str, paced: bool = False, delay: float | None = None, **data: Any) -> Frame:
            text = dumps({"type": kind, **data})
            return Frame(f"event: {kind}\ndata: {text}\n\n".encode(), paced, delay)

        def delta(kind: str, field: str, piece: str, delay: float | None = None) -> Frame:
            """``event("content_block_delta", True, delay, index=index, delta={"type": kind,
            field: piece})``, the same bytes, spliced: one a piece, most of a stream's events."""
            text = (
                f'{_DELTA_HEAD}{index}, "delta": {{"type": "{kind}", "{field}": '
                f"{dumps_text(piece)}}}}}\n\n"
            )
            return Frame(text.encode(), True, delay)

        yield event("message_start", message=self._message(answer, [], done=False))

        def start(block: dict[str, Any]) -> Iterator[Frame]:
            yield event("content_block_start", index=index, content_block=block)
            if index == 0:
                yield event("ping")

        if c.reasoning is not None:
            yield from start({"type": "thinking", "thinking": "", "signature": ""})
            for piece in c.reasoning_pieces:
                yield delta("thinking_delta", "thinking", piece)
            signature = {"type": "signature_delta",
                         "signature": _signature(answer.env.id, c.reasoning)}  # fmt: skip
            yield event("content_block_delta", index=index, delta=signature)
            yield event("content_block_stop", index=index)
            index += 1
        text = c.refusal if c.refusal is not None else c.content
        if text is not None and (text or not c.tool_calls):
            yield from start({"type": "text", "text": ""})
            pieces = c.refusal_pieces if c.refusal is not None else c.content_pieces
            delays = (
                c.piece_delays if c.refusal is None and c.piece_delays else (None,) * len(pieces)
            )
            for piece, delay in zip(pieces, delays, strict=True):
                yield delta("text_delta", "text", piece, delay)
            yield event("content_block_stop", index=index)
            index += 1
        for k, ((scripted, name, _), pieces) in enumerate(
            zip(c.tool_calls, c.argument_pieces, strict=True)
        ):
            block = {"type": "tool_use", "id": self._tool_id(answer, scripted, k), "name": name,
                     "input": {}}  # fmt: skip
            yield from start(block)
            yield event("content_block_delta", index=index,
                        delta={"type": "input_json_delta", "partial_json": ""})  # fmt: skip
            for piece in pieces:
                yield delta("input_json_delta", "partial_json", piece)
            yield event("content_block_stop", index=index)
            index += 1
        reason, sequence = _stop(answer)
        yield event("message_delta", delta={"stop_reason": reason, "stop_sequence": sequence},
                    usage=_usage(answer.usage))  # fmt: skip

    def end(self, answer: Answer, sent: int) -> bytes:
        return b'event: message_stop\ndata: {"type": "message_stop"}\n\n'

    def stream_error(self, err: APIError, answer: Answer, sent: int) -> bytes:
        data = json.dumps(
            {"type": "error", "error": {"type": self.error_type(err), "message": err.message}}
        )
        return f"event: error\ndata: {data}\n\n".encode()

    def malformed(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index\n\n'

    def read_body(self, body: Any) -> Captured:
        return messages_body(body)

    def read_stream(self, events: list[Event]) -> Captured:
        return messages_stream(events)


# --- reading an upstream's reply back (recording) -------------------------------------------

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def anthropic_usage(usage: Any) -> dict[str, int] | None:
    if not isinstance(usage, Mapping):
        return None
    return usage_of(
        [
            ("prompt_tokens", usage.get("input_tokens")),
            ("completion_tokens", usage.get("output_tokens")),
            ("cached_tokens", usage.get("cache_read_input_tokens")),
            ("cache_write_tokens", usage.get("cache_creation_input_tokens")),
        ]
    )


def messages_body(body: Any) -> Captured:
    text: list[str] = []
    thinking: list[str] = []
    calls = []
    for block in body.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "thinking":
            thinking.append(block.get("thinking", ""))
        elif kind == "tool_use":
            calls.append(scenario_call(block.get("id"), block.get("name"), block.get("input")))
    message = scenario_message(
        "".join(text) if text or not calls else None,
        "".join(thinking) if thinking else None,
        None,
        calls,
        _FINISH_REASONS.get(body.get("stop_reason") or ""),
    )
    return Captured([message], anthropic_usage(body.get("usage")), text_of(body.get("model")))


def messages_stream(events: list[Event]) -> Captured:
    """message_start, then content blocks (text, thinking, tool_use with input_json deltas),
    message_delta (stop reason, output tokens), message_stop."""
    blocks: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    out = Captured(complete=False)
    stop = None
    for event in events:
        data = json.loads(event.data)
        kind = data.get("type", event.name)
        if kind == "message_start":
            message = data.get("message") or {}
            out.model = text_of(message.get("model"))
            usage.update(message.get("usage") or {})
        elif kind == "content_block_start":
            block = dict(data.get("content_block") or {})
            block["parts"] = []
            block["call"] = sum(1 for b in blocks.values() if b.get("type") == "tool_use")
            blocks[data.get("index", len(blocks))] = block
        elif kind == "content_block_delta":
            block = blocks.get(data.get("index", 0), {"parts": [], "call": 0})
            delta = data.get("delta") or {}
            for key, piece in (("text", "text"), ("thinking", "reasoning"),
                               ("partial_json", "arguments")):  # fmt: skip
                if delta.get(key):
                    block["parts"].append(delta[key])
                    out.pieces.append(Piece(piece, delta[key], event.at, block["call"]))
        elif kind == "message_delta":
            stop = dig(data, "delta", "stop_reason") or stop
            usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            out.complete = True
        elif kind == "error":
            error = data.get("error") or {}
            out.error = {"kind": "stream_error", **error}
            break
    content: list[dict[str, Any]] = []
    for _, block in sorted(blocks.items()):
        joined = "".join(block["parts"])
        if block.get("type") == "text":
            content.append({"type": "text", "text": joined})
        elif block.get("type") == "thinking":
            content.append({"type": "thinking", "thinking": joined})
        elif block.get("type") == "tool_use":
            given = json.loads(joined) if joined else block.get("input") or {}
            content.append(
                {
                    "type": "tool_use",
                    "id": block.get("id"),
                    "name": block.get("name"),
                    "input": given,
                }
            )
    done = messages_body({"content": content, "stop_reason": stop, "usage": usage})
    out.choices, out.usage = done.choices, done.usage
    # Arguments are replayed as the JSON text the deltas spelled, not re-serialised.
    calls = out.choices[0].get("tool_calls") or []
    for k, call in enumerate(calls):
        spelled = "".join(p.text for p in out.pieces if p.kind == "arguments" and p.call == k)
        if spelled:
            call["arguments"] = spelled
    return out
