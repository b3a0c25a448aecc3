"""The request journal: what each request sent, which scenario answered, and how it ended.

Bounded (oldest entries drop first) so a long load test cannot exhaust memory. Credentials are
redacted before anything is stored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .request import Request

_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "openai-organization"})


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS:
            scheme, _, token = value.partition(" ")
            value = f"{scheme} ***" if token else "***"
        out[name] = value
    return out


@dataclass
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
    """What the mock answered: content, reasoning, refusal, tool_calls, finish_reason and
    usage, or ``{"error": {...}}``."""
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


class Journal:
    """The last ``size`` entries, and no more than ``max_bytes`` of request bodies, oldest out."""

    def __init__(self, size: int = 1000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._entries: deque[tuple[Entry, int]] = deque()
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._seq = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def record(self, entry: Entry, weight: int = 0) -> None:
        """Keep ``entry``; ``weight`` is the size of its request body in bytes."""
        self._entries.append((entry, weight))
        self._bytes += weight
        while self._entries and (len(self._entries) > self._size or self._bytes > self._max_bytes):
            self._bytes -= self._entries.popleft()[1]

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[Entry]:
        return [entry for entry, _ in self._entries]
