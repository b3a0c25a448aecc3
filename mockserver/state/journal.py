"""The request journal: what each request sent, which scenario answered, and how it ended.

Bounded (oldest entries drop first) so a long load test cannot exhaust memory. Credentials are
redacted before anything is stored. Live viewers (the inspector) subscribe: each gets a bounded
buffer that ``record`` fills without waiting, so a slow viewer never slows a request.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..core.secrets import redact_headers

if TYPE_CHECKING:
    from ..core.request import Request

T = TypeVar("T")


@dataclass(slots=True)
class Entry:
    """One request as the journal keeps it."""

    seq: int
    time: float
    method: str
    path: str
    request_id: str
    raw_headers: Mapping[str, str] = field(repr=False)
    body: Any = None
    scenario: str | None = None
    step: int | None = None
    unmatched: str | None = None
    adjusted: tuple[str, ...] = ()
    status: int = 0
    outcome: str = "ok"
    duration_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    api: str = "chat"
    """Which protocol the request spoke: chat, responses, messages or embeddings."""
    reply: dict[str, Any] | None = None
    """What the mock answered, protocol-neutral: ``{"content", "reasoning", "refusal",
    "tool_calls": [{"id", "name", "arguments"}], "finish_reason", "usage"}`` or
    ``{"error": {...}}``."""
    request: Request | None = field(default=None, repr=False)
    worker: int | None = None
    """Which process answered (``--workers``, replicas on one ``--state``); None for one."""
    size: int = field(default=0, repr=False)
    """The request body's size in bytes (what the journal's byte bound counts)."""

    @property
    def headers(self) -> dict[str, str]:
        """The request's headers, credentials redacted."""
        return redact_headers(self.raw_headers)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation as the matcher saw it (chat-shaped, whatever the protocol)."""
        if self.request is not None:
            return self.request.messages
        body = self.body
        return body.get("messages", []) if isinstance(body, dict) else []

    @property
    def last_user(self) -> str:
        """The text of the last user message ("" for a request that was not valid)."""
        return self.request.last_user if self.request else ""

    @property
    def tool_names(self) -> list[str]:
        return self.request.tool_names if self.request else []

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _HIDDEN}
        out["headers"] = self.headers
        out["adjusted"] = list(self.adjusted)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], request: Request | None = None) -> Entry:
        """An entry back from ``to_dict`` (as a shared journal keeps it), headers redacted;
        ``request`` is its body parsed again, when it parses."""
        known = {f.name for f in fields(cls)} - _HIDDEN
        values = {k: v for k, v in data.items() if k in known}
        values["adjusted"] = tuple(data.get("adjusted") or ())
        return cls(raw_headers=dict(data.get("headers") or {}), request=request, **values)


_HIDDEN = frozenset({"raw_headers", "request", "size"})


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
        self._entries: deque[tuple[T, int]] = deque()
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._seq = 0
        # Positions in recording order (``seq`` is arrival order; a slow stream records late).
        self._positions: deque[int] = deque()
        self.recorded = 0
        self.cleared_at = 0
        self._subscribers = Subscribers()
        self._listening = self._subscribers.active

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def record(self, entry: T, weight: int = 0) -> int:
        """Keep ``entry``, whose request body was ``weight`` bytes; its position."""
        self._entries.append((entry, weight))
        self.recorded += 1
        self._positions.append(self.recorded)
        self._bytes += weight
        while self._entries and (len(self._entries) > self._size or self._bytes > self._max_bytes):
            self._bytes -= self._entries.popleft()[1]
            self._positions.popleft()
        if self._listening:
            self._subscribers.notify((self.recorded, entry))  # type: ignore[arg-type]
        return self.recorded

    def clear(self) -> None:
        self._entries.clear()
        self._positions.clear()
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
        return [
            (p, entry)
            for p, (entry, _) in zip(self._positions, self._entries, strict=True)
            if p > position
        ]

    @property
    def first_position(self) -> int:
        """The position of the oldest entry kept (``recorded + 1`` when there is none)."""
        return self._positions[0] if self._positions else self.recorded + 1

    def __iter__(self) -> Iterator[T]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[T]:
        return [entry for entry, _ in self._entries]


class Journal(Kept[Entry]):
    """A process's journal: its requests as ``Entry`` objects."""
