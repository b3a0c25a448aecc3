"""Reply x request -> the bytes a client receives: a completion body, or SSE frames.

Pure: ids, clock and randomness come in as arguments. The expensive part (templating,
stop sequences, truncation, tokenizing, cutting into chunks) is cached for replies that have no
template, so a repeated request only assembles bytes.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .profiles import Settings
from .request import ChatRequest
from .scenario import Cadence, Message, Reply, Text
from .templates import Context
from .tokens import count_tokens, split_tokens

if TYPE_CHECKING:
    from faker import Faker

_WORD = re.compile(r"\s*\S+\s*|\s+")
_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class Choice:
    """One choice, concrete: texts resolved, stop and limit applied, cut into stream pieces."""

    content: str | None
    reasoning: str | None
    refusal: str | None
    tool_calls: tuple[tuple[str | None, str, str], ...]  # (scripted id or None, name, arguments)
    finish_reason: str
    completion_tokens: int
    reasoning_tokens: int
    content_pieces: tuple[str, ...]
    reasoning_pieces: tuple[str, ...]
    refusal_pieces: tuple[str, ...]
    argument_pieces: tuple[tuple[str, ...], ...]
    piece_delays: tuple[float | None, ...] = ()


def cut(text: str, chunk: str | int) -> list[str]:
    """Cut text into stream pieces: by token, word, character, or fixed size."""
    if not text:
        return []
    if chunk == "token":
        return split_tokens(text)
    if chunk == "word":
        return _WORD.findall(text)
    if chunk == "char":
        return list(text)
    size = int(chunk)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _resolve(text: Text | None, ctx: Context | None) -> str | None:
    if text is None or isinstance(text, str):
        return text
    assert ctx is not None
    return text.render(ctx)


def _apply_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def build_choice(
    message: Message, settings: Settings, cadence: Cadence, ctx: Context | None
) -> Choice:
    content = _resolve(message.content, ctx)
    if cadence.chunks and content is None:
        content = "".join(text for text, _ in cadence.chunks)
    reasoning = _resolve(message.reasoning, ctx)
    refusal = _resolve(message.refusal, ctx)
    calls = tuple((c.id, c.name, _resolve(c.arguments, ctx) or "{}") for c in message.tool_calls)
    finish = message.finish_reason
    stopped = False
    if settings.stop and content:
        content, stopped = _apply_stop(content, settings.stop)
    reasoning_tokens = split_tokens(reasoning or "")
    content_tokens = split_tokens(content or "")
    tool_tokens = sum(count_tokens(n) + count_tokens(a) + 3 for _, n, a in calls)
    if settings.limit is not None:
        budget = settings.limit
        total = len(reasoning_tokens) + len(content_tokens) + count_tokens(refusal or "")
        if total + tool_tokens > budget:
            reasoning_tokens = reasoning_tokens[:budget]
            content_tokens = content_tokens[: max(0, budget - len(reasoning_tokens))]
            reasoning = "".join(reasoning_tokens) if reasoning is not None else None
            content = "".join(content_tokens) if content is not None or calls else None
            calls, tool_tokens, finish = (), 0, "length"
    if finish is None:
        finish = "tool_calls" if calls else "stop"
    elif stopped and finish == "length":
        finish = "stop"
    pieces = [(text, delay) for text, delay in cadence.chunks]
    if pieces and content is not None and "".join(t for t, _ in pieces) == content:
        content_pieces = tuple(t for t, _ in pieces)
        delays = tuple(d for _, d in pieces)
    else:
        content_pieces = tuple(
            content_tokens if cadence.chunk == "token" else cut(content or "", cadence.chunk)
        )
        delays = ()
    return Choice(
        content=content,
        reasoning=reasoning,
        refusal=refusal,
        tool_calls=calls,
        finish_reason=finish,
        completion_tokens=len(reasoning_tokens)
        + len(content_tokens)
        + count_tokens(refusal or "")
        + tool_tokens,
        reasoning_tokens=len(reasoning_tokens),
        content_pieces=content_pieces,
        reasoning_pieces=tuple(
            reasoning_tokens if cadence.chunk == "token" else cut(reasoning or "", cadence.chunk)
        ),
        refusal_pieces=tuple(cut(refusal or "", cadence.chunk)),
        argument_pieces=tuple(tuple(cut(a, cadence.chunk)) for _, _, a in calls),
        piece_delays=delays,
    )


Deltas = list[tuple[str, float | None]]
"""The ``choices`` JSON of each chunk of a stream, with its scripted delay."""


@dataclass(frozen=True)
class Rendered:
    """A reply's choices, with their JSON done ahead when it does not depend on the request's
    envelope (tool call ids): the ``choices`` array of a completion, and each chunk's."""

    choices: tuple[Choice, ...]
    choices_json: str | None = None
    deltas: Deltas | None = None


class Renderer:
    """Builds concrete choices; those of template-free replies once, JSON included."""

    def __init__(self, faker_factory: Callable[[], Faker] | None = None) -> None:
        self._cache: dict[tuple[Any, ...], Rendered] = {}
        self._faker_factory = faker_factory
        self._faker: Faker | None = None

    def _fake(self, seed: int) -> Callable[[], Faker]:
        def get() -> Faker:
            if self._faker is None:
                if self._faker_factory is None:
                    from faker import Faker

                    self._faker = Faker()
                else:
                    self._faker = self._faker_factory()
            self._faker.seed_instance(seed)
            return self._faker

        return get

    def render(
        self,
        reply: Reply,
        request: ChatRequest,
        settings: Settings,
        cadence: Cadence,
        captures: Mapping[str, str],
        seed: int,
    ) -> Rendered:
        static = reply.static
        key = (reply, request.n, settings.limit, settings.stop, cadence)
        if static:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
        ctx = None if static else Context(request, captures, self._fake(seed))
        messages = reply.choices
        out = tuple(
            build_choice(messages[i % len(messages)], settings, cadence, ctx)
            for i in range(request.n)
        )
        if not static:
            return Rendered(out)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        rendered = self._cache[key] = (
            Rendered(out, choices_json(None, out), deltas_json(None, out))
            if env_free(out)
            else Rendered(out)
        )
        return rendered


def digest(*parts: bytes | str | int) -> str:
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()


def usage(request: ChatRequest, choices: tuple[Choice, ...], fixed: Any) -> dict[str, Any]:
    """OpenAI's usage object; figures the scenario states win over computed ones."""
    fixed = fixed or {}
    prompt = fixed.get("prompt_tokens")
    if prompt is None:
        prompt = request.prompt_tokens
    completion = fixed.get("completion_tokens", sum(c.completion_tokens for c in choices))
    reasoning = fixed.get("reasoning_tokens", sum(c.reasoning_tokens for c in choices))
    cached = fixed.get("cached_tokens", 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": cached,
            "text_tokens": prompt,
            "audio_tokens": 0,
            "image_tokens": 0,
        },
        "completion_tokens_details": {
            "text_tokens": max(0, completion - reasoning),
            "audio_tokens": 0,
            "reasoning_tokens": reasoning,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


@dataclass(slots=True)
class Envelope:
    """What every body or chunk of one reply shares."""

    id: str
    created: int
    model: str
    system_fingerprint: str
    call_id_seed: str

    def call_id(self, scripted: str | None, choice: int, call: int) -> str:
        return scripted or f"call_{self.call_id_seed}{choice}{call}"


def choices_json(env: Envelope | None, choices: tuple[Choice, ...]) -> str:
    """The ``choices`` array of a completion, as JSON text."""
    out = []
    for i, c in enumerate(choices):
        message: dict[str, Any] = {"role": "assistant", "content": c.content, "refusal": c.refusal}
        if c.reasoning is not None:
            message["reasoning_content"] = c.reasoning
        if c.tool_calls:
            message["tool_calls"] = [
                {"id": call_id or _require(env).call_id(call_id, i, k), "type": "function",
                 "function": {"name": name, "arguments": args}}
                for k, (call_id, name, args) in enumerate(c.tool_calls)
            ]  # fmt: skip
        out.append(
            {"index": i, "message": message, "logprobs": None, "finish_reason": c.finish_reason}
        )
    return json.dumps(out, ensure_ascii=False)


def _require(env: Envelope | None) -> Envelope:
    if env is None:
        raise ValueError("these choices need the request's envelope (tool call ids)")
    return env


def env_free(choices: tuple[Choice, ...]) -> bool:
    """True when no part of the choices depends on the request's envelope (tool call ids)."""
    return all(call_id is not None for c in choices for call_id, _, _ in c.tool_calls)


def completion_body(env: Envelope, rendered: Rendered, usage_: dict[str, Any]) -> bytes:
    """The JSON body of a completion."""
    body = rendered.choices_json
    if body is None:
        body = choices_json(env, rendered.choices)
    return (
        f'{{"id": "{env.id}", "object": "chat.completion", "created": {env.created}, '
        f'"model": {json.dumps(env.model, ensure_ascii=False)}, "choices": {body}, '
        f'"usage": {usage_json(usage_)}, '
        f'"system_fingerprint": {json.dumps(env.system_fingerprint, ensure_ascii=False)}}}'
    ).encode()


def usage_json(u: dict[str, Any]) -> str:
    """``json.dumps`` of a ``usage()`` object, written out: it is on every reply's path."""
    p, c = u["prompt_tokens_details"], u["completion_tokens_details"]
    return (
        f'{{"prompt_tokens": {u["prompt_tokens"]}, "completion_tokens": '
        f'{u["completion_tokens"]}, "total_tokens": {u["total_tokens"]}, '
        f'"prompt_tokens_details": {{"cached_tokens": {p["cached_tokens"]}, '
        f'"text_tokens": {p["text_tokens"]}, "audio_tokens": {p["audio_tokens"]}, '
        f'"image_tokens": {p["image_tokens"]}}}, "completion_tokens_details": '
        f'{{"text_tokens": {c["text_tokens"]}, "audio_tokens": {c["audio_tokens"]}, '
        f'"reasoning_tokens": {c["reasoning_tokens"]}, "accepted_prediction_tokens": '
        f'{c["accepted_prediction_tokens"]}, "rejected_prediction_tokens": '
        f"{c['rejected_prediction_tokens']}}}}}"
    )


def _delta(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def stream_deltas(
    env: Envelope | None, choices: tuple[Choice, ...]
) -> list[tuple[list[Any], float | None]]:
    """The ``choices`` array of every chunk, in order, with a scripted delay where one is set."""
    frames: list[tuple[list[Any], float | None]] = [
        ([_delta(i, {"role": "assistant", "content": ""}) for i in range(len(choices))], None)
    ]
    for i, c in enumerate(choices):
        frames += [([_delta(i, {"reasoning_content": p})], None) for p in c.reasoning_pieces]
        delays = c.piece_delays or (None,) * len(c.content_pieces)
        frames += [
            ([_delta(i, {"content": p})], d) for p, d in zip(c.content_pieces, delays, strict=True)
        ]
        frames += [([_delta(i, {"refusal": p})], None) for p in c.refusal_pieces]
        for k, ((call_id, name, _), pieces) in enumerate(
            zip(c.tool_calls, c.argument_pieces, strict=True)
        ):
            head = {"index": k, "id": call_id or _require(env).call_id(call_id, i, k),
                    "type": "function",
                    "function": {"name": name, "arguments": ""}}  # fmt: skip
            frames.append(([_delta(i, {"tool_calls": [head]})], None))
            frames += [
                ([_delta(i, {"tool_calls": [{"index": k, "function": {"arguments": p}}]})], None)
                for p in pieces
            ]
    frames += [([_delta(i, {}, c.finish_reason)], None) for i, c in enumerate(choices)]
    return frames


def deltas_json(env: Envelope | None, choices: tuple[Choice, ...]) -> Deltas:
    """The ``choices`` JSON of every chunk, with its scripted delay."""
    return [
        (json.dumps(deltas, ensure_ascii=False), d) for deltas, d in stream_deltas(env, choices)
    ]


def sse_frames(
    env: Envelope, rendered: Rendered, usage_: dict[str, Any] | None
) -> list[tuple[bytes, float | None]]:
    """Every ``data:`` frame of a stream, ``[DONE]`` excluded, with scripted per-piece delays."""
    deltas = rendered.deltas
    if deltas is None:
        deltas = deltas_json(env, rendered.choices)
    head = json.dumps(
        {"id": env.id, "object": "chat.completion.chunk", "created": env.created,
         "model": env.model, "system_fingerprint": env.system_fingerprint},
        ensure_ascii=False,
    )[:-1]  # fmt: skip
    tail = ',"usage":null}\n\n' if usage_ is not None else "}\n\n"
    out = [(f'data: {head},"choices":{chunk}{tail}'.encode(), d) for chunk, d in deltas]
    if usage_ is not None:
        out.append((f'data: {head},"choices":[],"usage":{usage_json(usage_)}}}\n\n'.encode(), None))
    return out


DONE = b"data: [DONE]\n\n"
JSON = "application/json"
SSE = "text/event-stream"


def delays(cadence: Cadence, scripted: list[float | None], seed: int) -> list[float]:
    """Scripted seconds before each frame: first_delay, then delay (+/- seeded jitter) each."""
    if cadence.instant:
        return [0.0] * len(scripted)
    rng = random.Random(seed) if cadence.jitter else None
    out = []
    for i, explicit in enumerate(scripted):
        wait = (
            explicit if explicit is not None else (cadence.first_delay if i == 0 else cadence.delay)
        )
        if rng is not None and i > 0:
            wait = max(0.0, wait + rng.uniform(-cadence.jitter, cadence.jitter))
        out.append(round(wait, 6))
    return out
