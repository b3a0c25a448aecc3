"""The prompt cache's memory: which prefix digests are live, until when.

``core.caching`` decides which digests a request asks about and writes; this keeps them, one
process's worth (the shared stores keep theirs the same way: a key with an expiry). Bounded:
the oldest written are forgotten first, so a load test of endless new prompts cannot grow it
without limit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class PromptCache:
    """Digests with the time each stops being live; a write refreshes (idle TTL)."""

    def __init__(self, size: int = 200_000) -> None:
        self._until: OrderedDict[str, float] = OrderedDict()
        self._size = size

    def exchange(
        self, ask: Sequence[str], write: Sequence[tuple[str, float]], now: float
    ) -> list[bool]:
        """Which of ``ask`` are live at ``now``; then ``write`` each (digest, seconds) pair."""
        until = self._until
        live = [until.get(key, 0.0) > now for key in ask]
        for key, ttl in write:
            until[key] = max(until.pop(key, 0.0), now + ttl)
        while len(until) > self._size:
            until.popitem(last=False)
        return live

    def clear(self) -> None:
        self._until.clear()

    def __len__(self) -> int:
        return len(self._until)
