"""Replies already rendered, for requests already seen byte for byte.

Same input, same output: when a request's bytes (and the headers some scenario looks at) were
answered before by a scenario that keeps no state, the reply is the same bytes again, except
for ``created``, the current second. Load generators send the same body over and over; those
requests skip parsing, matching and rendering. Whatever keeps state (sequences, faults, rate
limits, delays) is never memoized, and any change to the scenarios or their state clears it.
The memos are bounded in count and in bytes, oldest out first.

A body is memoized the second time it comes, not the first: under real load (a new user
message on every request) most bodies never come again, and remembering each would cost an
insert and an eviction per request for nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.request import Request
from ..protocols import Stored

_COUNT = 1024
_BYTES = 32 * 1024 * 1024
_SEEN = 8 * _COUNT


@dataclass(frozen=True, slots=True)
class Memo:
    """One rendered reply and what the journal needs to record it again."""

    created: int
    body: bytes
    headers: Mapping[str, str]
    request: Request
    scenario: str
    adjusted: tuple[str, ...]
    reply: dict[str, Any] | None = None
    stored: Stored | None = None
    """A stored response the reply made: kept again on replay (the store is bounded)."""
    wire: bytes | None = None
    """The reply's status line and headers as aiohttp writes them, the ids aside
    (``Pipeline._head``)."""


def _size(key: Any, memo: Memo) -> int:
    raw = key[0]  # (body bytes, api, target, headers a condition reads...)
    return len(raw) * 2 + len(memo.body)  # the request bytes, its parsed copy, the reply


class Memos:
    def __init__(self, count: int = _COUNT, size: int = _BYTES, seen: int = _SEEN) -> None:
        # Ordered: dropping the oldest of a plain dict walks past every slot freed before it.
        self._memos: OrderedDict[Any, Memo] = OrderedDict()
        self._count = count
        self._limit = size
        self._bytes = 0
        self._seen: set[int] = set()
        self._seen_limit = seen

    def __len__(self) -> int:
        return len(self._memos)

    def clear(self) -> None:
        self._memos.clear()
        self._seen.clear()
        self._bytes = 0

    def again(self, key: Any) -> bool:
        """True when ``key`` was offered before (since the last few thousand new ones): only
        then is its reply worth remembering. Hashes only, forgotten all at once when full; a
        collision merely memoizes a body seen once."""
        mark = hash(key)
        if mark in self._seen:
            return True
        if len(self._seen) >= self._seen_limit:
            self._seen.clear()
        self._seen.add(mark)
        return False

    def get(self, key: Any, created: int) -> Memo | None:
        memo = self._memos.get(key)
        return memo if memo is not None and memo.created == created else None

    def put(self, key: Any, memo: Memo) -> None:
        size = _size(key, memo)
        if size > self._limit // 16:
            return  # a huge request is rarely repeated, and would crowd out the rest
        old = self._memos.pop(key, None)
        if old is not None:
            self._bytes -= _size(key, old)
        while self._memos and (len(self._memos) >= self._count or self._bytes + size > self._limit):
            oldest, dropped = self._memos.popitem(last=False)
            self._bytes -= _size(oldest, dropped)
        self._memos[key] = memo
        self._bytes += size
