"""Readers: an upstream's reply, in its wire format, back into the neutral scenario reply.

The protocols turn a scenario reply into JSON or stream events; a reader does the reverse for
what a real server answered, so a recording is an ordinary scenario: content, reasoning,
refusal, tool calls (arguments verbatim), finish reason, usage and model, plus, for a stream,
every piece of text with the time it arrived. One ``Reader`` per protocol, registered by the
protocol's name; a protocol without one is forwarded but not recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
# Replay order of the pieces of one choice (as the protocols write them).
PIECE_ORDER = {"reasoning": 0, "text": 1, "refusal": 2, "arguments": 3}


@dataclass(frozen=True)
class Event:
    """One stream event as it arrived: seconds since the request was sent, name, data."""

    at: float
    name: str | None
    data: str


@dataclass(frozen=True)
class Piece:
    """A piece of streamed text: ``text`` (content), ``reasoning``, ``refusal`` or
    ``arguments`` (of tool call ``call``), and when it arrived."""

    kind: str
    text: str
    at: float
    call: int = 0


@dataclass
class Captured:
    """What the upstream answered, neutral: the scenario's ``reply`` (``choices`` as scenario
    messages) and, for streams, the timed pieces and how the stream ended."""

    choices: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] | None = None
    model: str | None = None
    pieces: list[Piece] = field(default_factory=list)
    complete: bool = True
    """False when a stream ended without its closing event ([DONE], response.completed...)."""
    error: dict[str, Any] | None = None
    """An error the stream reported in its middle: ``{kind, message, type, code}``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Reply keys beyond the message ones (``embeddings``)."""

    def reply(self) -> dict[str, Any]:
        """The scenario's ``reply`` mapping."""
        out: dict[str, Any] = {}
        if len(self.choices) == 1:
            out.update(self.choices[0])
        elif self.choices:
            out["choices"] = self.choices
        out.update(self.extra)
        if "{{" in json.dumps(out):
            out["templates"] = False  # recorded text is literal, whatever braces it holds
        if self.usage is not None:
            out["usage"] = self.usage
        if self.model is not None:
            out["model"] = self.model
        return out


@dataclass(frozen=True)
class Reader:
    body: Callable[[Any], Captured]
    stream: Callable[[list[Event]], Captured] | None = None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _usage(pairs: Iterable[tuple[str, Any]]) -> dict[str, int] | None:
    out = {name: v for name, value in pairs if (v := _int(value)) is not None}
    return out or None


def _get(data: Any, *path: str) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, Mapping) else None
    return data


def openai_usage(usage: Any) -> dict[str, int] | None:
    """Chat's usage object, or the Responses one (``input_tokens``...), as scenario usage."""
    if not isinstance(usage, Mapping):
        return None
    if "input_tokens" in usage:
        return _usage(
            [
                ("prompt_tokens", usage.get("input_tokens")),
                ("completion_tokens", usage.get("output_tokens")),
                ("reasoning_tokens", _get(usage, "output_tokens_details", "reasoning_tokens")),
                ("cached_tokens", _get(usage, "input_tokens_details", "cached_tokens")),
                ("cache_write_tokens", _get(usage, "input_tokens_details", "cache_write_tokens")),
            ]
        )
    return _usage(
        [
            ("prompt_tokens", usage.get("prompt_tokens")),
            ("completion_tokens", usage.get("completion_tokens")),
            ("reasoning_tokens", _get(usage, "completion_tokens_details", "reasoning_tokens")),
            ("cached_tokens", _get(usage, "prompt_tokens_details", "cached_tokens")),
            ("cache_write_tokens", _get(usage, "prompt_tokens_details", "cache_write_tokens")),
        ]
    )


def _message(
    content: str | None,
    reasoning: str | None,
    refusal: str | None,
    calls: list[dict[str, Any]],
    finish: Any,
) -> dict[str, Any]:
    """A scenario message: keys only for what the upstream said."""
    out: dict[str, Any] = {"content": content}
    if reasoning is not None:
        out["reasoning"] = reasoning
    if refusal is not None:
        out["refusal"] = refusal
    if calls:
        out["tool_calls"] = calls
    if finish in FINISH_REASONS:
        out["finish_reason"] = finish
    return out


def _call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": call_id} if isinstance(call_id, str) and call_id else {}
    out["name"] = str(name or "")
    out["arguments"] = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return out


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --- chat completions ------------------------------------------------------------------------


def chat_body(body: Any) -> Captured:
    choices = []
    for choice in body.get("choices") or []:
        m = choice.get("message") or {}
        calls = [
            _call(c.get("id"), _get(c, "function", "name"), _get(c, "function", "arguments"))
            for c in m.get("tool_calls") or []
        ]
        reasoning = _text(m.get("reasoning_content")) or _text(m.get("reasoning"))
        choices.append(
            _message(
                _text(m.get("content")),
                reasoning,
                _text(m.get("refusal")),
                calls,
                choice.get("finish_reason"),
            )
        )
    return Captured(choices, openai_usage(body.get("usage")), _text(body.get("model")))


class _Choice:
    """One choice of a stream being put together."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: Any = None
        self.spoke = False  # content was sent (even "") rather than null

    def message(self) -> dict[str, Any]:
        calls = [
            _call(c["id"], c["name"], "".join(c["arguments"]))
            for _, c in sorted(self.calls.items())
        ]
        content = "".join(self.content) if self.content or not calls else None
        return _message(
            content,
            "".join(self.reasoning) if self.reasoning else None,
            "".join(self.refusal) if self.refusal else None,
            calls,
            self.finish,
        )


def chat_stream(events: list[Event]) -> Captured:
    out = Captured(complete=False)
    choices: dict[int, _Choice] = {}
    calls_seen: dict[tuple[int, int], int] = {}  # (choice, index) -> call number
    for event in events:
        if event.data.strip() == "[DONE]":
            out.complete = True
            break
        data = json.loads(event.data)
        if "error" in data and not data.get("choices"):
            error = data["error"] if isinstance(data["error"], dict) else {"message": data["error"]}
            out.error = {"kind": "stream_error", **error}
            break
        out.model = out.model or _text(data.get("model"))
        if data.get("usage"):
            out.usage = openai_usage(data["usage"])
        for choice in data.get("choices") or []:
            i = choice.get("index", 0)
            c = choices.setdefault(i, _Choice())
            delta = choice.get("delta") or {}
            if choice.get("finish_reason"):
                c.finish = choice["finish_reason"]
            reasoning = _text(delta.get("reasoning_content")) or _text(delta.get("reasoning"))
            for kind, text, into in (
                ("reasoning", reasoning, c.reasoning),
                ("text", _text(delta.get("content")), c.content),
                ("refusal", _text(delta.get("refusal")), c.refusal),
            ):
                if text:
                    into.append(text)
                    if i == 0:
                        out.pieces.append(Piece(kind, text, event.at))
            for call in delta.get("tool_calls") or []:
                index = call.get("index", 0)
                k = calls_seen.setdefault((i, index), len([1 for x in calls_seen if x[0] == i]))
                slot = c.calls.setdefault(k, {"id": None, "name": None, "arguments": []})
                slot["id"] = slot["id"] or call.get("id")
                fn = call.get("function") or {}
                slot["name"] = slot["name"] or fn.get("name")
                if fn.get("arguments"):
                    slot["arguments"].append(fn["arguments"])
                    if i == 0:
                        out.pieces.append(Piece("arguments", fn["arguments"], event.at, k))
    out.choices = [c.message() for _, c in sorted(choices.items())]
    if len(out.choices) > 1:
        out.pieces = []  # one cadence serves every choice: keep the rhythm of single replies only
    return out


# --- responses -------------------------------------------------------------------------------


def responses_body(body: Any) -> Captured:
    reasoning: list[str] = []
    content: list[str] = []
    refusal: list[str] = []
    calls = []
    for item in body.get("output") or []:
        kind = item.get("type")
        if kind == "reasoning":
            reasoning += [s.get("text", "") for s in item.get("summary") or []]
        elif kind == "message":
            for part in item.get("content") or []:
                if part.get("type") == "refusal":
                    refusal.append(part.get("refusal", ""))
                elif isinstance(part.get("text"), str):
                    content.append(part["text"])
        elif kind == "function_call":
            calls.append(_call(item.get("call_id"), item.get("name"), item.get("arguments")))
    finish = None
    if body.get("status") == "incomplete":
        reason = _get(body, "incomplete_details", "reason")
        finish = "content_filter" if reason == "content_filter" else "length"
    message = _message(
        "".join(content) if content or not (calls or refusal) else None,
        "\n\n".join(reasoning) if reasoning else None,
        "".join(refusal) if refusal else None,
        calls,
        finish,
    )
    return Captured([message], openai_usage(body.get("usage")), _text(body.get("model")))


_RESPONSES_DELTAS = {
    "response.output_text.delta": "text",
    "response.reasoning_summary_text.delta": "reasoning",
    "response.reasoning_text.delta": "reasoning",
    "response.refusal.delta": "refusal",
    "response.function_call_arguments.delta": "arguments",
}


def responses_stream(events: list[Event]) -> Captured:
    """Pieces from the delta events; the reply itself from the final response object."""
    pieces: list[Piece] = []
    calls: dict[str, int] = {}  # function call item id -> call number
    final: Any = None
    error: dict[str, Any] | None = None
    for event in events:
        data = json.loads(event.data)
        kind = data.get("type", event.name)
        if kind == "response.output_item.added" and _get(data, "item", "type") == "function_call":
            calls[data["item"].get("id", "")] = len(calls)
        piece = _RESPONSES_DELTAS.get(kind)
        if piece and data.get("delta"):
            call = calls.get(data.get("item_id", ""), 0)
            pieces.append(Piece(piece, data["delta"], event.at, call))
        elif kind in ("response.completed", "response.incomplete"):
            final = data.get("response")
        elif kind == "response.failed":
            failure = _get(data, "response", "error") or {}
            error = {"kind": "failed", **failure}
            final = data.get("response")
            break
        elif kind == "error":
            nested = data.get("error") if isinstance(data.get("error"), dict) else data
            error = {
                "kind": "stream_error",
                **{k: nested.get(k) for k in ("message", "type", "code")},
            }
            break
    if final is not None and error is None:
        out = responses_body(final)
        out.pieces = pieces
        return out
    # Cut short: what the deltas said.
    texts = {k: "".join(p.text for p in pieces if p.kind == k) for k in PIECE_ORDER}
    message = _message(
        texts["text"] if texts["text"] or not texts["refusal"] else None,
        texts["reasoning"] or None,
        texts["refusal"] or None,
        [],
        None,
    )
    model = _text(_get(final, "model")) if final is not None else None
    return Captured([message], None, model, pieces, complete=False, error=error)


# --- messages (Anthropic) --------------------------------------------------------------------

_STOP_REASONS = {
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
    return _usage(
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
            calls.append(_call(block.get("id"), block.get("name"), block.get("input")))
    message = _message(
        "".join(text) if text or not calls else None,
        "".join(thinking) if thinking else None,
        None,
        calls,
        _STOP_REASONS.get(body.get("stop_reason") or ""),
    )
    return Captured([message], anthropic_usage(body.get("usage")), _text(body.get("model")))


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
            out.model = _text(message.get("model"))
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
            stop = _get(data, "delta", "stop_reason") or stop
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


# --- embeddings ------------------------------------------------------------------------------


def embeddings_body(body: Any) -> Captured:
    """``reply.embeddings``: one vector (or base64 string) per input, in input order."""
    data = sorted(body.get("data") or [], key=lambda d: d.get("index", 0))
    usage = _usage([("prompt_tokens", _get(body, "usage", "prompt_tokens"))])
    return Captured(
        [],
        usage,
        _text(body.get("model")),
        extra={"embeddings": [d.get("embedding") for d in data]},
    )


READERS: dict[str, Reader] = {
    "chat": Reader(chat_body, chat_stream),
    "responses": Reader(responses_body, responses_stream),
    "messages": Reader(messages_body, messages_stream),
    "embeddings": Reader(embeddings_body),
}
