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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.request import Request

_SECRET_HEADERS = frozenset(
    {"authorization", "api-key", "x-api-key", "x-goog-api-key", "aikey", "openai-organization"}
)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS:
            scheme, _, token = value.partition(" ")
            value = f"{scheme} ***" if token else "***"
        out[name] = value
    return out


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
        hidden = ("raw_headers", "request")
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in hidden}
        out["headers"] = self.headers
        out["adjusted"] = list(self.adjusted)
        return out


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


class Journal:
    """The last ``size`` entries, and no more than ``max_bytes`` of request bodies, oldest out."""

    def __init__(self, size: int = 1000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._entries: deque[tuple[Entry, int]] = deque()
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._seq = 0
        # Positions in recording order (``seq`` is arrival order; a slow stream records late).
        self._positions: deque[int] = deque()
        self.recorded = 0
        self.cleared_at = 0
        self._subscribers: set[Subscription] = set()

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def record(self, entry: Entry, weight: int = 0) -> None:
        """Keep ``entry``; ``weight`` is the size of its request body in bytes."""
        self._entries.append((entry, weight))
        self.recorded += 1
        self._positions.append(self.recorded)
        self._bytes += weight
        while self._entries and (len(self._entries) > self._size or self._bytes > self._max_bytes):
            self._bytes -= self._entries.popleft()[1]
            self._positions.popleft()
        if self._subscribers:
            self._notify((self.recorded, entry))

    def clear(self) -> None:
        self._entries.clear()
        self._positions.clear()
        self._bytes = 0
        self.cleared_at = self.recorded
        if self._subscribers:
            self._notify((self.recorded, None))

    def _notify(self, item: Recorded) -> None:
        for subscriber in [s for s in self._subscribers if not s.push(item)]:
            self._subscribers.discard(subscriber)

    def subscribe(self, limit: int = 256) -> Subscription:
        """A buffer of at most ``limit`` items that every later ``record`` and ``clear`` fills."""
        subscription = Subscription(limit)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def since(self, position: int) -> list[tuple[int, Entry]]:
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

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[Entry]:
        return [entry for entry, _ in self._entries]
