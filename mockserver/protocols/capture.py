"""What reading an upstream's reply back produces, and the pieces every protocol's reader shares.

The protocols turn a scenario reply into JSON or stream events; each also does the reverse for
what a real server answered (``Protocol.read_body`` and ``read_stream``, in its own module), so
a recording is an ordinary scenario: content, reasoning, refusal, tool calls (arguments
verbatim), finish reason, usage and model, plus, for a stream, every piece of text with the
time it arrived. A protocol that reads nothing back is forwarded but not recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.request import arguments_json

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
    files: dict[str, bytes] = field(default_factory=dict)
    """Binary bodies the reply names (``images``), by file name: the recorder writes them
    beside the scenario file, which refers to them by that name."""

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


def count_of(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def usage_of(pairs: Iterable[tuple[str, Any]]) -> dict[str, int] | None:
    out = {name: v for name, value in pairs if (v := count_of(value)) is not None}
    return out or None


def dig(data: Any, *path: str) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, Mapping) else None
    return data


def openai_usage(usage: Any) -> dict[str, int] | None:
    """Chat's usage object, or the Responses one (``input_tokens``...), as scenario usage."""
    if not isinstance(usage, Mapping):
        return None
    if "input_tokens" in usage:
        return usage_of(
            [
                ("prompt_tokens", usage.get("input_tokens")),
                ("completion_tokens", usage.get("output_tokens")),
                ("reasoning_tokens", dig(usage, "output_tokens_details", "reasoning_tokens")),
                ("cached_tokens", dig(usage, "input_tokens_details", "cached_tokens")),
                ("cache_write_tokens", dig(usage, "input_tokens_details", "cache_write_tokens")),
            ]
        )
    return usage_of(
        [
            ("prompt_tokens", usage.get("prompt_tokens")),
            ("completion_tokens", usage.get("completion_tokens")),
            ("reasoning_tokens", dig(usage, "completion_tokens_details", "reasoning_tokens")),
            ("cached_tokens", dig(usage, "prompt_tokens_details", "cached_tokens")),
            ("cache_write_tokens", dig(usage, "prompt_tokens_details", "cache_write_tokens")),
        ]
    )


def scenario_message(
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


def scenario_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": call_id} if isinstance(call_id, str) and call_id else {}
    out["name"] = str(name or "")
    out["arguments"] = arguments if isinstance(arguments, str) else arguments_json(arguments or {})
    return out


def text_of(value: Any) -> str | None:
    return value if isinstance(value, str) else None
