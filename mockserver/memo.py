"""Replies already rendered, for requests already seen byte for byte.

Same input, same output: when a request's bytes (and the headers some scenario looks at) were
answered before by a scenario that keeps no state, the reply is the same bytes again, except
for ``created``, the current second. Load generators send the same body over and over; those
requests skip parsing, matching and rendering. Whatever keeps state (sequences, faults, rate
limits, delays) is never memoized, and any change to the scenarios or their state clears it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .request import ChatRequest

_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Memo:
    """One rendered reply and what the journal needs to record it again."""

    created: int
    body: bytes
    headers: Mapping[str, str]
    request_id: str
    chat: ChatRequest
    scenario: str
    adjusted: tuple[str, ...]


class Memos:
    def __init__(self) -> None:
        self._memos: dict[Any, Memo] = {}

    def clear(self) -> None:
        self._memos.clear()

    def get(self, key: Any, created: int) -> Memo | None:
        memo = self._memos.get(key)
        return memo if memo is not None and memo.created == created else None

    def put(self, key: Any, memo: Memo) -> None:
        if len(self._memos) >= _SIZE and key not in self._memos:
            self._memos.pop(next(iter(self._memos)))
        self._memos[key] = memo
