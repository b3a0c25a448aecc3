"""The state that decides answers, as plain in-memory tables: stored responses
(``ResponseStore``) and the owner's tables of shared state (``Tables``: sequence positions,
fault counters, budget windows, stored responses, the prompt cache, the journal).

``Tables`` is synchronous, so each operation is atomic in the one thread that runs it: the
supervisor of ``--workers`` owns one, and ``LocalBackend`` drives one in-process (tests of the
shared path). Keys are strings (see ``shared.keys``): the owner never sees scenario objects.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..protocols import Stored
from ..scenarios.ratelimit import RateLimit, _Window
from .journal import Kept
from .prompt_cache import PromptCache

_CONVERSATIONS = 100_000
_WINDOWS = 10_000


class ResponseStore:
    """Stored responses (Responses API ``store``), for ``previous_response_id`` and
    ``GET /v1/responses/{id}``; the oldest are forgotten past ``count`` or ``size`` bytes."""

    def __init__(self, count: int = 10_000, size: int = 64 * 1024 * 1024) -> None:
        # Ordered: dropping the oldest of a plain dict walks past every slot freed before it
        # (15 µs a request at 10,000 responses, on every request once the store is full).
        self._kept: OrderedDict[str, Stored] = OrderedDict()
        self._count = count
        self._limit = size
        self._bytes = 0

    def put(self, stored: Stored) -> None:
        kept, id = self._kept, stored.id
        if id in kept:  # put again (a memo's replay): now the newest
            self._bytes -= kept.pop(id).size
        while kept and (len(kept) >= self._count or self._bytes > self._limit):
            self._bytes -= kept.popitem(last=False)[1].size
        kept[id] = stored
        self._bytes += stored.size

    def get(self, id: str) -> Stored | None:
        return self._kept.get(id)

    def conversation(self, id: str) -> tuple[dict[str, Any], ...] | None:
        stored = self._kept.get(id)
        return stored.messages if stored is not None else None

    def clear(self) -> None:
        self._kept.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._kept)


@dataclass(frozen=True)
class Window:
    """A budget window as the owner reports it; ``refused`` names the exhausted budget."""

    start: float
    requests: int
    tokens: int
    refused: str = ""


@dataclass(frozen=True)
class Snapshot:
    """Where a shared journal stands, for a viewer that starts following it: its counters
    (as ``Journal`` keeps them) and the entries after the viewer's resume point."""

    recorded: int
    cleared_at: int
    first_position: int
    items: list[tuple[int, str]]


def resume_after(last: int | None, recorded: int, cleared_at: int) -> int:
    """The position a viewer that last saw ``last`` gets entries after: 0 (everything kept)
    for a new viewer, or one whose view is stale (a restarted store, a clear it missed)."""
    if last is None or last > recorded or last < cleared_at:
        return 0
    return last


def _admit_window(
    window: _Window | None, limit: RateLimit, prompt_tokens: int, now: float
) -> tuple[_Window, str]:
    """The rule of ``Budgets.admit`` on a window that is not in this process."""
    if window is None or now >= window.start + limit.per:
        window = _Window(start=now)
    if limit.requests is not None and window.requests >= limit.requests:
        return window, "requests"
    if limit.tokens is not None and window.tokens + prompt_tokens > limit.tokens:
        return window, "tokens"
    window.requests += 1
    return window, ""


class Tables:
    """The in-memory owner of shared state; synchronous, so each operation is atomic in the
    one thread that runs them. Bounded like the per-process tables it stands in for."""

    def __init__(self, journal_size: int = 1000) -> None:
        self.positions: dict[str, int] = {}
        self.faults: dict[str, int] = {}
        self.windows: dict[str, _Window] = {}
        self._window_ends: dict[str, float] = {}
        self.responses = ResponseStore()
        self.prompt_cache = PromptCache()
        self.journal: Kept[str] = Kept(journal_size)

    def advance(self, key: str) -> int:
        seen = self.positions.get(key, 0)
        if not seen and len(self.positions) >= _CONVERSATIONS:
            del self.positions[next(iter(self.positions))]
        self.positions[key] = seen + 1
        return seen

    def fire(self, key: str) -> int:
        count = self.faults[key] = self.faults.get(key, 0) + 1
        return count

    def admit(self, slot: str, limit: RateLimit, prompt_tokens: int, now: float) -> Window:
        old = self.windows.get(slot)
        if old is None and len(self.windows) >= _WINDOWS:
            live = {s: w for s, w in self.windows.items() if now < self._window_ends[s]}
            self._window_ends = {s: self._window_ends[s] for s in live}
            self.windows = live
        window, refused = _admit_window(old, limit, prompt_tokens, now)
        self.windows[slot] = window
        self._window_ends[slot] = window.start + limit.per
        return Window(window.start, window.requests, window.tokens, refused)

    def spend(self, slot: str, start: float, tokens: int) -> None:
        window = self.windows.get(slot)
        if window is not None and window.start == start:
            window.tokens += tokens

    def push(self, items: list[tuple[str, int]]) -> list[tuple[int, str]]:
        """Journal entries (JSON text, kept as it came: the owner never decodes them, with
        their request body's size), numbered in the order recorded: that number is their
        ``seq`` in a shared journal (each process numbers its own requests' ids apart)."""
        return [(self.journal.record(text, size), text) for text, size in items]

    def entries(self) -> list[tuple[int, str]]:
        return self.journal.since(0)

    def entry(self, seq: int) -> str | None:
        return next((text for p, text in self.journal.since(seq - 1) if p == seq), None)

    def snapshot(self, last: int | None) -> Snapshot:
        journal = self.journal
        after = resume_after(last, journal.recorded, journal.cleared_at)
        return Snapshot(
            journal.recorded, journal.cleared_at, journal.first_position, journal.since(after)
        )

    def reset(self, what: str) -> int | None:
        """Clear ``what``; the journal position of the clear, when the journal was cleared."""
        if what in ("all", "sequences"):
            self.positions.clear()
            self.faults.clear()
        if what in ("all", "limits"):
            self.windows.clear()
            self._window_ends.clear()
        if what == "all":
            self.responses.clear()
            self.prompt_cache.clear()
        if what in ("all", "journal"):
            self.journal.clear()
            return self.journal.cleared_at
        return None
