"""The request journal: what each request sent, which scenario answered, and how it ended.

Bounded (oldest entries drop first) so a long load test cannot exhaust memory. Credentials are
redacted before anything is stored. Live viewers (the inspector) subscribe: each gets a bounded
buffer that ``record`` fills without waiting, so a slow viewer never slows a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl

from ..core.errors import APIError
from ..core.request import Request, parse_json_body
from ..core.secrets import redact_headers
from ..protocols import NO_QUERY, Protocol, Target
from ..scenarios.render import Choice, Envelope

T = TypeVar("T")


_SHOWN = (
    "seq", "time", "method", "path", "request_id", "body", "scenario", "step", "unmatched",
    "adjusted", "status", "outcome", "duration_ms", "extra", "api", "reply", "worker",
)  # fmt: skip
"""What ``to_dict`` and ``repr`` show, in this order (the order the journal's JSON has)."""
_FROM_DICT = frozenset(_SHOWN)

_JOURNAL_TEXT = 16_384


def journal_body(raw: bytes) -> Any:
    """A rejected request's body for the journal: its JSON when it has any, else its text (the
    start of it: a refused upload of megabytes is not kept whole)."""
    try:
        return parse_json_body(raw)
    except APIError:
        text = raw[:_JOURNAL_TEXT].decode("utf-8", "replace")
        return text if len(raw) <= _JOURNAL_TEXT else f"{text}... ({len(raw)} bytes)"


def found_empty(_: str) -> tuple[dict[str, Any], ...]:
    """A lookup for parsing a request again where its stored responses are not at hand: any
    response it names counts as found and empty."""
    return ()


def reply_summary(
    choice: Choice, prompt: int, completion: int, reasoning: int, cached: int, env: Envelope | None
) -> dict[str, Any]:
    """What the mock answered (its first choice), protocol-neutral, as the journal shows it
    (``env`` names the tool calls; None when there are none)."""
    return {
        "content": choice.content,
        "reasoning": choice.reasoning,
        "refusal": choice.refusal,
        "tool_calls": [
            {"id": env.call_id(i, 0, k), "name": n, "arguments": a}
            for k, (i, n, a) in enumerate(choice.tool_calls)
            if env is not None
        ],
        "finish_reason": choice.finish_reason,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "reasoning_tokens": reasoning,
            "cached_tokens": cached,
            "total_tokens": prompt + completion,
        },
    }


class Entry:
    """One request as the journal keeps it.

    Kept compact (``compact``, when the store takes it): the request's bytes, its headers as
    aiohttp read them, and scalars (the reply's each in its own slot, the path the pipeline's
    one string for it). A journal of a thousand entries frees what each keeps a thousand
    requests later, found cold: the parsed body, the ``Request``, the reply summary and
    ``extra`` once cost ~10% of a request's CPU time. ``body``, ``request``, ``reply`` and
    ``extra`` are built when first read, then kept; what they show is what the request path
    saw. (The headers are kept as they came: packing them into one string cost 6k
    instructions a request, 1.5%, and saved no cache misses measurably.)
    """

    __slots__ = (
        "_body", "_cached", "_choice", "_completion", "_described", "_env", "_extra",
        "_prompt", "_raw", "_reasoning", "_reply", "_request", "_source", "_stream", "_target",
        "adjusted", "api", "elapsed", "method", "outcome", "path", "raw_headers", "request_id",
        "scenario", "seq", "size", "status", "step", "time", "unmatched", "worker",
    )  # fmt: skip
    _prompt: int
    _completion: int
    _reasoning: int
    _cached: int
    _env: Envelope | None

    def __init__(
        self,
        seq: int,
        time: float,
        method: str,
        path: str,
        request_id: str,
        raw_headers: Mapping[str, str],
        api: str = "chat",
        worker: int | None = None,
        body: Any = None,
        scenario: str | None = None,
        step: int | None = None,
        unmatched: str | None = None,
        adjusted: tuple[str, ...] = (),
        status: int = 0,
        outcome: str = "ok",
        duration_ms: float = 0.0,
        extra: dict[str, Any] | None = None,
        reply: dict[str, Any] | None = None,
        request: Request | None = None,
        size: int = 0,
    ) -> None:
        """The request path passes the first eight by position: a class called with keywords
        gathers them into a dict first (``__init__`` is a slot), which cost as much again."""
        self.seq = seq
        self.time = time
        self.method = method
        self.path = path
        self.request_id = request_id
        self.raw_headers = raw_headers
        """The request's headers as they came (credentials included)."""
        self._body = body
        self.scenario = scenario
        self.step = step
        self.unmatched = unmatched
        self.adjusted = adjusted
        self.status = status
        self.outcome = outcome
        self.elapsed = duration_ms / 1000
        """Seconds the request took, as measured (``duration_ms`` rounds it when read:
        rounding a float to 3 places formats it in decimal, a cost no request needs)."""
        self._extra = extra
        self.api = api
        """Which protocol the request spoke: chat, responses, messages, gemini, embeddings..."""
        self._reply = reply
        self._request = request
        self.worker = worker
        """Which process answered (``--workers``, replicas on one ``--state``); None for one."""
        self.size = size
        """The request body's size in bytes (what the journal's byte bound counts)."""
        self._raw: bytes | None = None
        """The request's bytes, while ``body`` and ``request`` can be built from them."""
        self._source: Protocol | None = None
        """The protocol that parsed ``_raw``; None for a body that was not parsed."""
        self._target: Target | None = None
        self._stream = False
        self._choice: Choice | None = None
        """What ``reply`` is made from, until it is read, with ``_prompt`` ... ``_env`` (set by
        ``answered``, read only while this is set): ``reply_summary``'s arguments, each in its
        slot (a tuple of them was one more object kept per entry)."""
        self._described: dict[str, Any] | None = None

    # The request path's side: what it hands over, as cheaply as it can.

    def parsed(self, request: Request, raw: bytes, protocol: Protocol, target: Target) -> None:
        """The request parsed from ``raw`` by ``protocol``: ``compact`` can drop it, for
        reading it parses ``raw`` again."""
        self._request = request
        self._body = request.body
        self._raw = raw
        self._source = protocol
        if target.query:  # a URL with a query string (Gemini's ``?alt=sse``): kept as it came
            self._target = target
        elif self.path == target.path:  # the pipeline's one string for this path, not its own
            self.path = target.path

    def replayed(self, request: Request, reply: dict[str, Any] | None) -> None:
        """A memo hit: the first such request's parsed form and reply summary, shared with the
        memo (kept as they are: they cost this entry nothing)."""
        self._request = request
        self._body = request.body
        self._reply = reply

    def rejected(self, raw: bytes) -> None:
        """The request was refused before it parsed: its body as it came (``journal_body``),
        made now from a large one, which is not kept whole."""
        if self._body is None and self._request is None:
            if len(raw) > _JOURNAL_TEXT:
                self._body = journal_body(raw)
            else:
                self._raw = raw
                self._source = None

    def answered(self, choice: Choice, prompt: int, completion: int, reasoning: int,
                 cached: int, env: Envelope | None) -> None:  # fmt: skip
        """The reply rendered, as scalars: its first choice, its usage figures, and (for tool
        calls) what names the calls. Its summary is made from these when ``reply`` is read."""
        self._reply = self._described = None
        self._choice = choice
        self._prompt = prompt
        self._completion = completion
        self._reasoning = reasoning
        self._cached = cached
        self._env = env if choice.tool_calls else None

    def describe(self, described: dict[str, Any]) -> None:
        """What the protocol adds to the reply's summary (``Protocol.reply_summary``; most
        add nothing)."""
        if not described:
            return
        if self._choice is None and self._reply is not None:
            self._reply.update(described)
        elif self._described is None:
            self._described = described
        else:
            self._described.update(described)

    def compact(self) -> Entry:
        """Drop what can be built again when read (the journal keeps the entry from now on).

        A request parsed with the help of stored responses (``previous_response_id``) keeps
        its parsed form: the store may not have them when the entry is read."""
        request = self._request
        if self._raw is not None and request is not None:
            if request.context:
                self._raw = None
            else:
                self._stream = request.stream
                self._request = self._body = None
        return self

    # The readers' side: built on first read, then kept.

    @property
    def duration_ms(self) -> float:
        """How long the request took, in milliseconds (to the microsecond)."""
        return round(self.elapsed * 1000, 3)

    @duration_ms.setter
    def duration_ms(self, value: float) -> None:
        self.elapsed = value / 1000

    def _build(self) -> None:
        """``body`` and ``request`` from the bytes. Set in this order, ``_raw`` last, so that
        a reader on another thread (a test reading while the inspector does) sees either the
        bytes or the whole view; at worst two readers both parse, to equal views."""
        raw, protocol = self._raw, self._source
        assert raw is not None
        request = None
        if protocol is not None:
            target = self._target or target_of(self.path)
            with contextlib.suppress(APIError):  # it parsed once; were it not to, the bytes
                request = protocol.parse(raw, self.raw_headers, found_empty, target)
        self._request = request
        self._body = request.body if request is not None else journal_body(raw)
        self._raw = None

    @property
    def body(self) -> Any:
        """The request body as parsed JSON (as sent, for a request that did not parse)."""
        if self._raw is not None and self._body is None:
            self._build()
        return self._body

    @body.setter
    def body(self, value: Any) -> None:
        self._body = value
        self._raw = None

    @property
    def request(self) -> Request | None:
        """The neutral request; None for a request that did not parse."""
        if self._raw is not None and self._body is None:
            self._build()
        return self._request

    @request.setter
    def request(self, value: Request | None) -> None:
        self._request = value
        self._raw = None

    @property
    def stream(self) -> bool:
        """Whether the request asked for a stream (known without parsing it again)."""
        request = self._request
        return request.stream if request is not None else self._stream

    @property
    def reply(self) -> dict[str, Any] | None:
        """What the mock answered, protocol-neutral: ``{"content", "reasoning", "refusal",
        "tool_calls": [{"id", "name", "arguments"}], "finish_reason", "usage"}`` or
        ``{"error": {...}}``."""
        choice = self._choice
        if choice is not None:  # made whole before it is shown (see ``_build``)
            reply = reply_summary(choice, self._prompt, self._completion, self._reasoning,
                                  self._cached, self._env)  # fmt: skip
            if self._described is not None:
                reply.update(self._described)
            self._reply = reply
            self._choice = self._env = self._described = None
        return self._reply

    @reply.setter
    def reply(self, value: dict[str, Any] | None) -> None:
        self._reply = value
        self._choice = self._env = self._described = None

    @property
    def extra(self) -> dict[str, Any]:
        """More, when it applies: ``delays`` of a stream, ``prompt_cache``, ``recording``."""
        if self._extra is None:
            self._extra = {}
        return self._extra

    @extra.setter
    def extra(self, value: dict[str, Any]) -> None:
        self._extra = value

    @property
    def headers(self) -> dict[str, str]:
        """The request's headers, credentials redacted."""
        return redact_headers(self.raw_headers)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation as the matcher saw it (chat-shaped, whatever the protocol)."""
        request = self.request
        if request is not None:
            return request.messages
        body = self.body
        return body.get("messages", []) if isinstance(body, dict) else []

    @property
    def last_user(self) -> str:
        """The text of the last user message ("" for a request that was not valid)."""
        request = self.request
        return request.last_user if request else ""

    @property
    def tool_names(self) -> list[str]:
        request = self.request
        return request.tool_names if request else []

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _SHOWN}
        out["headers"] = self.headers
        out["adjusted"] = list(self.adjusted)
        return out

    def __eq__(self, other: object) -> bool:
        """Equal when everything a reader sees is (as the dataclass this was compared)."""
        if not isinstance(other, Entry):
            return NotImplemented
        mine = (self.to_dict(), dict(self.raw_headers), self.request, self.size)
        return mine == (other.to_dict(), dict(other.raw_headers), other.request, other.size)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _SHOWN)
        return f"Entry({shown})"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], request: Request | None = None) -> Entry:
        """An entry back from ``to_dict`` (as a shared journal keeps it), headers redacted;
        ``request`` is its body parsed again, when it parses."""
        values = {k: v for k, v in data.items() if k in _FROM_DICT}
        values["adjusted"] = tuple(data.get("adjusted") or ())
        return cls(raw_headers=dict(data.get("headers") or {}), request=request, **values)


def target_of(path: str) -> Target:
    """The URL a journalled path stands for (Gemini reads its model and method in the path,
    the stream's framing in the query; a credential there was redacted, which none reads)."""
    path, _, query = path.partition("?")
    return Target(path, dict(parse_qsl(query)) if query else NO_QUERY)


Recorded = tuple[int, Entry | None]
"""A subscriber's item: the entry's position in recording order, or ``(position, None)`` when
the journal was cleared at that position."""


class Subscription:
    """One live viewer's bounded buffer. ``record`` never waits on it: when it is full, the
    viewer is cut off (``overflowed``) and must resume from its last position."""

    def __init__(self, limit: int) -> None:
        self.items: deque[Recorded] = deque()
        self.limit = limit
        self.overflowed = False
        self.closed = False
        self.writing = False
        self.ready = asyncio.Event()

    def push(self, item: Recorded) -> bool:
        """False when the buffer is full: the subscriber is then dropped, not waited for."""
        if len(self.items) >= self.limit:
            self.overflowed = True
            self.ready.set()
            return False
        self.items.append(item)
        self.ready.set()
        return True

    def close(self) -> None:
        """Wake the viewer for good: the server is stopping."""
        self.closed = True
        self.ready.set()

    async def wait(self) -> None:
        await self.ready.wait()
        self.ready.clear()


class Subscribers:
    """Live viewers' buffers, filled without waiting: a full one is dropped, not waited for."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self.active = self._subscribers
        """Truthy while anyone listens (a plain set: checked on every request, no call)."""

    def notify(self, item: Recorded) -> None:
        for subscriber in [s for s in self._subscribers if not s.push(item)]:
            self._subscribers.discard(subscriber)

    def subscribe(self, limit: int = 256) -> Subscription:
        """A buffer of at most ``limit`` items that every later ``notify`` fills."""
        subscription = Subscription(limit)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)


class Kept(Generic[T]):
    """The last ``size`` entries, and no more than ``max_bytes`` of request bodies, oldest out;
    each numbered by its position in recording order. ``Journal`` keeps ``Entry`` objects; the
    owner of a shared journal (``tables.Tables``) keeps their dicts."""

    def __init__(self, size: int = 1000, max_bytes: int = 64 * 1024 * 1024) -> None:
        # The entries and their weights side by side: a (entry, weight) pair per entry was one
        # more object each kept. Their positions are consecutive (added one at a time, dropped
        # from the oldest or all at once), so the last one's is ``recorded``: none is kept.
        self._entries: deque[T] = deque()
        self._weights: deque[int] = deque()
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self.next_seq: Callable[[], int] = itertools.count(1).__next__
        """The next request's number, from 1 (a C call: one per request)."""
        # Positions are in recording order (``seq`` is arrival order; a slow stream records late).
        self.recorded = 0
        self.cleared_at = 0
        self._subscribers = Subscribers()
        self._listening = self._subscribers.active

    def record(self, entry: T, weight: int = 0) -> int:
        """Keep ``entry``, whose request body was ``weight`` bytes; its position."""
        entries, weights = self._entries, self._weights
        entries.append(entry)
        weights.append(weight)
        self.recorded += 1
        self._bytes += weight
        while entries and (len(entries) > self._size or self._bytes > self._max_bytes):
            entries.popleft()
            self._bytes -= weights.popleft()
        if self._listening:
            self._subscribers.notify((self.recorded, entry))  # type: ignore[arg-type]
        return self.recorded

    def clear(self) -> None:
        self._entries.clear()
        self._weights.clear()
        self._bytes = 0
        self.cleared_at = self.recorded
        if self._listening:
            self._subscribers.notify((self.recorded, None))

    def subscribe(self, limit: int = 256) -> Subscription:
        """A buffer of at most ``limit`` items that every later ``record`` and ``clear`` fills."""
        return self._subscribers.subscribe(limit)

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.unsubscribe(subscription)

    def since(self, position: int) -> list[tuple[int, T]]:
        """The entries kept that were recorded after ``position``, oldest first."""
        first = self.first_position
        skip = max(0, position + 1 - first)
        return list(enumerate(itertools.islice(self._entries, skip, None), first + skip))

    @property
    def first_position(self) -> int:
        """The position of the oldest entry kept (``recorded + 1`` when there is none)."""
        return self.recorded - len(self._entries) + 1

    def __iter__(self) -> Iterator[T]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[T]:
        return list(self._entries)


class Journal(Kept[Entry]):
    """A process's journal: its requests as ``Entry`` objects (``LocalStore`` compacts them)."""
