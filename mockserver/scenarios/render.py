"""Reply x request -> concrete choices: texts resolved, limits applied, cut into stream pieces.

Knows no wire format (each protocol turns these into its bytes). Pure: ids, clock and
randomness come in as arguments. The expensive part (templating, stop sequences, truncation,
tokenizing, cutting into chunks) is cached for replies that have no template, so a repeated
request only assembles bytes; such replies' bytes are compiled once and kept in ``wire``
(``protocols.compiled``).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.bounded import keep
from ..core.profiles import Settings
from ..core.request import Request
from ..core.tokens import count_tokens, split_tokens
from .scenario import Cadence, Message, Reply, Text
from .templates import Context

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
    stop_sequence: str | None = None
    """The stop sequence that cut the content, if one did."""
    reasoning_delays: tuple[float | None, ...] = ()
    refusal_delays: tuple[float | None, ...] = ()
    argument_delays: tuple[tuple[float | None, ...], ...] = ()
    """Each piece's own scripted delay, when the cadence lists explicit pieces (else empty)."""


def paced(
    pieces: Sequence[str], delays: Sequence[float | None]
) -> Iterator[tuple[str, float | None]]:
    """Pieces with their own delays (None: the cadence's), for the protocols' stream loops."""
    return zip(pieces, delays or (None,) * len(pieces), strict=True)


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


def _apply_stop(text: str, stops: tuple[str, ...]) -> tuple[str, str | None]:
    """The text up to the first stop sequence in it, and that sequence."""
    cuts = [(i, s) for i, s in ((text.find(s), s) for s in stops) if i >= 0]
    if not cuts:
        return text, None
    at, stop = min(cuts)
    return text[:at], stop


def build_choice(
    message: Message, settings: Settings, cadence: Cadence, ctx: Context | None
) -> Choice:
    content = _resolve(message.content, ctx)
    if cadence.chunks and content is None:
        content = "".join(text for text, _ in cadence.chunks)
    reasoning = _resolve(message.reasoning, ctx)
    refusal = _resolve(message.refusal, ctx)
    calls = tuple((c.id, c.name, _resolve(c.arguments, ctx) or "{}") for c in message.tool_calls)
    if settings.empty:  # a profile quirk: the provider answers, with nothing in it
        content, reasoning, refusal, calls = "", None, None, ()
    finish = message.finish_reason
    stopped = None
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
    elif stopped is not None and finish == "length":
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
    reasoning_pieces, reasoning_delays = _explicit(cadence, "reasoning", 0, reasoning)
    refusal_pieces, refusal_delays = _explicit(cadence, "refusal", 0, refusal)
    arguments = [_explicit(cadence, "arguments", k, a) for k, (_, _, a) in enumerate(calls)]
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
        reasoning_pieces=reasoning_pieces
        or tuple(
            reasoning_tokens if cadence.chunk == "token" else cut(reasoning or "", cadence.chunk)
        ),
        refusal_pieces=refusal_pieces or tuple(cut(refusal or "", cadence.chunk)),
        argument_pieces=tuple(
            pieces or tuple(cut(a, cadence.chunk))
            for (pieces, _), (_, _, a) in zip(arguments, calls, strict=True)
        ),
        piece_delays=delays,
        stop_sequence=stopped if finish == "stop" else None,
        reasoning_delays=reasoning_delays,
        refusal_delays=refusal_delays,
        argument_delays=tuple(d for _, d in arguments) if any(d for _, d in arguments) else (),
    )


def _explicit(
    cadence: Cadence, kind: str, call: int, text: str | None
) -> tuple[tuple[str, ...], tuple[float | None, ...]]:
    """The cadence's explicit pieces of one text and their delays, when they spell it exactly
    (a limit or stop sequence that cut the text falls back to the ``chunk`` setting)."""
    if not cadence.pieces or not text:
        return (), ()
    mine = [(t, d) for k, c, t, d in cadence.pieces if k == kind and c == call]
    if not mine or "".join(t for t, _ in mine) != text:
        return (), ()
    return tuple(t for t, _ in mine), tuple(d for _, d in mine)


@dataclass(frozen=True)
class Rendered:
    """A reply's concrete choices. ``wire`` keeps what is made of them once for every request
    (a template-free reply's compiled bytes, per protocol and request shape)."""

    choices: tuple[Choice, ...]
    wire: dict[Any, Any] = field(default_factory=dict, compare=False)
    cached: bool = False
    pieces: int = field(init=False, compare=False)
    """How many stream pieces the choices hold: what writing them out costs, roughly."""
    completion_tokens: int = field(init=False, compare=False)
    reasoning_tokens: int = field(init=False, compare=False)
    """The choices' counts, summed once (usage asks for them on every request)."""

    def __post_init__(self) -> None:
        choices = self.choices
        pieces = sum(
            len(c.content_pieces) + len(c.reasoning_pieces) + len(c.refusal_pieces)
            + sum(map(len, c.argument_pieces))
            for c in choices
        )  # fmt: skip
        object.__setattr__(self, "pieces", pieces)
        object.__setattr__(self, "completion_tokens", sum(c.completion_tokens for c in choices))
        object.__setattr__(self, "reasoning_tokens", sum(c.reasoning_tokens for c in choices))


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
        request: Request,
        settings: Settings,
        cadence: Cadence,
        captures: Mapping[str, str],
        seed: int,
    ) -> Rendered:
        static = reply.static
        key = (reply, request.n, settings.limit, settings.stop, settings.empty, cadence)
        if static:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
        ctx = None if static else Context(request, captures, self._fake(seed))
        messages = reply.choices
        # The same message gives the same choice (fake data is seeded per request, not per
        # choice): each is built once, however large ``n`` is.
        built = [build_choice(m, settings, cadence, ctx) for m in messages[: request.n]]
        out = tuple(built[i % len(built)] for i in range(request.n))
        if not static:
            return Rendered(out)
        return keep(self._cache, key, Rendered(out, cached=True), _CACHE_LIMIT)


def digest(*parts: bytes | str | int) -> str:
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()


def reply_seed(scenario_seed: int, raw: bytes, step: int) -> str:
    """``digest(scenario_seed, raw, step)``, what a reply's id and seeded choices derive from:
    the same bytes hashed (each part and a NUL), from a copy of the hash of the scenario's seed
    made once (``_SEEDED``), not the request's bytes copied into one string first (a third of
    the work)."""
    seeded = _SEEDED.get(scenario_seed)
    if seeded is None:
        start = hashlib.blake2b(b"%d\0" % scenario_seed, digest_size=12)
        seeded = keep(_SEEDED, scenario_seed, start, _SEEDS)
    h = seeded.copy()
    h.update(raw)
    h.update(b"\0%d\0" % step)
    return h.hexdigest()


_SEEDED: dict[int, hashlib.blake2b] = {}
"""The hash of each scenario seed and its NUL, copied for each request (``reply_seed``)."""
_SEEDS = 4096


@dataclass(slots=True)
class Usage:
    """Token counts of one reply, before a protocol names them its way (one per request: not
    frozen, which would set each field through ``object.__setattr__``)."""

    prompt: int
    completion: int
    reasoning: int = 0
    cached: int = 0
    cache_write: int = 0
    cache_split: tuple[int, int] | None = None
    """``cache_write`` split into 5-minute and 1-hour writes, when caching was simulated."""

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def usage(request: Request, rendered: Rendered, fixed: Any, counted: int | None = None) -> Usage:
    """Counted usage; the figures a scenario states win over computed ones. ``counted`` stands
    for the request's prompt tokens when given (a compiled reply's probe)."""
    if not fixed:  # the common case: every figure counted
        return Usage(
            request.prompt_tokens if counted is None else counted,
            rendered.completion_tokens,
            rendered.reasoning_tokens,
        )
    prompt = fixed.get("prompt_tokens")
    if prompt is None:
        prompt = request.prompt_tokens if counted is None else counted
    return Usage(
        prompt=prompt,
        completion=fixed.get("completion_tokens", rendered.completion_tokens),
        reasoning=fixed.get("reasoning_tokens", rendered.reasoning_tokens),
        cached=fixed.get("cached_tokens", 0),
        cache_write=fixed.get("cache_write_tokens", 0),
    )


@dataclass(slots=True)
class Envelope:
    """What every body or chunk of one reply shares."""

    id: str
    created: int
    model: str
    system_fingerprint: str
    call_id_seed: str

    def call_id(self, scripted: str | None, choice: int, call: int) -> str:
        return call_id(self.call_id_seed, scripted, choice, call)


def call_id(seed: str, scripted: str | None, choice: int, call: int) -> str:
    """A tool call's id: the scenario's, or one made from the reply's call ids' ``seed``."""
    return scripted or f"call_{seed}{choice}{call}"


def delays(cadence: Cadence, frames: Sequence[tuple[bool, float | None]], seed: int) -> list[float]:
    """Scripted seconds before each frame of a stream, given whether it is ``paced`` (carries
    output) and its own scripted delay: frames that carry no output go at once, the first that
    does after ``first_delay`` (the time to the first token), each later one after ``delay``
    (+/- seeded jitter)."""
    if cadence.instant:
        return [0.0] * len(frames)
    rng = random.Random(seed) if cadence.jitter else None
    out = []
    first = True
    for paced, explicit in frames:
        if not paced:
            out.append(0.0)
            continue
        wait = (
            explicit if explicit is not None else (cadence.first_delay if first else cadence.delay)
        )
        if rng is not None and not first:
            wait = max(0.0, wait + rng.uniform(-cadence.jitter, cadence.jitter))
        first = False
        out.append(round(wait, 6))
    return out
