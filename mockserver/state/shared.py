"""``SharedStore``: the state that decides answers kept by one owner for several processes.

With ``--workers N`` or ``--state redis://``, the same decisions the in-process ``LocalStore``
takes are taken by one owner: sequence positions, rate-limit windows, ``nth`` fault counters,
stored responses, and the journal. ``SharedStore`` turns each decision into the owner's small
atomic operations (``Backend``): the supervisor's ``Tables`` over a Unix socket
(``supervisor.py``), Redis commands and scripts (``redis_store.py``), or ``LocalBackend``, the
same ``Tables`` in this process (tests, and the reference the others must agree with).

Scenario objects are per process, so the owner never sees them: every key is a string built
from the scenario set's content digest and the scenario's rank in it, the same in every
process that loaded the same scenarios. API keys and conversations are hashed into keys, so
no credential or message text is stored by the owner (the journal aside: it keeps requests as
``/_mock/journal`` shows them, credentials redacted).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.errors import APIError
from ..core.request import Request
from ..protocols import NOWHERE, Protocol, Stored, Target
from ..scenarios.matching import (
    _NO_CAPTURES,
    Resolution,
    ScenarioSet,
    check_all,
    conversation,
    step_after,
)
from ..scenarios.ratelimit import RateLimit, Ticket, _refusal, _Window
from ..scenarios.scenario import Scenario
from .journal import Entry, Subscribers, found_empty, target_of
from .store import Feed, Host, Store
from .tables import Snapshot, Tables, Window, resume_after

Deliver = Callable[[int, str | None], None]
"""How a backend hands a followed journal's news to its store: an entry (its JSON text) at its
position, or ``(position, None)`` for a clear."""


def unavailable(detail: str) -> APIError:
    """What a request gets when the store is gone: never an answer from per-process state."""
    return APIError(
        503,
        f"mockserver: the shared state store is unreachable ({detail}); not answering from "
        "per-process state, which would break the promises of sequences and budgets.",
        code="state_store_unavailable",
    )


def _hash(*parts: object) -> str:
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Keys:
    """Stable names for one scenario set's scenarios and budgets, the same in every process."""

    set_id: str
    ranks: Mapping[Scenario, int]
    limits: Mapping[RateLimit, str]


_KEYS: weakref.WeakKeyDictionary[ScenarioSet, Keys] = weakref.WeakKeyDictionary()


def keys(scenarios: ScenarioSet) -> Keys:
    """The set's keys, computed once per set (a digest of what each scenario is and answers)."""
    found = _KEYS.get(scenarios)
    if found is None:
        described = [
            (s.name, s.where, s.priority, s.seed, s.after_last.value, s.conversation_header,
             repr(s.conditions), repr(s.steps), repr(s.rate_limit))
            for s in scenarios.scenarios
        ]  # fmt: skip
        set_id = _hash(repr(described), repr(scenarios.fallback and scenarios.fallback.steps))
        limits: dict[RateLimit, str] = {}
        for rank, s in enumerate(scenarios.scenarios):
            if s.rate_limit is not None and s.rate_limit not in limits:
                limits[s.rate_limit] = f"{set_id}:rl{rank}"
        ranks = {s: rank for rank, s in enumerate(scenarios.scenarios)}
        if scenarios.fallback is not None:
            ranks[scenarios.fallback] = -1
        found = _KEYS[scenarios] = Keys(set_id, ranks, limits)
    return found


class Backend(ABC):
    """The owner's operations, each atomic whichever process asks."""

    async def start(self, host: Host, deliver: Deliver) -> None:
        """Connect (after any fork); fail when the owner is away. ``deliver`` takes the
        journal's news while ``follow`` is on."""
        return None

    async def close(self) -> None:
        return None

    @abstractmethod
    async def advance(self, key: str) -> int:
        """Count one request of a conversation; how many came before it."""

    @abstractmethod
    async def fire(self, key: str) -> int:
        """Count one request of a step with an ``nth`` fault; how many so far, this one too."""

    @abstractmethod
    async def admit(self, slot: str, limit: RateLimit, prompt_tokens: int, now: float) -> Window:
        """Count a request in its budget window unless the window is spent."""

    @abstractmethod
    async def spend(self, slot: str, start: float, tokens: int) -> None:
        """Add a reply's tokens to the window ``start`` opened (if it is still the open one)."""

    @abstractmethod
    async def put_response(self, stored: Stored) -> None: ...

    @abstractmethod
    async def get_response(self, id: str) -> Stored | None: ...

    @abstractmethod
    async def cache(
        self, ask: Sequence[str], write: Sequence[tuple[str, float]], now: float
    ) -> list[bool]:
        """The prompt cache's exchange (``Store.cache``), atomic."""

    @abstractmethod
    async def push(self, items: list[tuple[str, int]]) -> None:
        """Journal entries (JSON text, with their body's size): the owner numbers them."""

    @abstractmethod
    async def journal(self) -> list[tuple[int, str]]:
        """Every entry kept, with its number, in the order recorded."""

    @abstractmethod
    async def entry(self, seq: int) -> str | None: ...

    @abstractmethod
    async def follow(self, last: int | None) -> Snapshot:
        """Deliver the journal's news from now on; where it stands, and what ``last`` missed."""

    @abstractmethod
    async def unfollow(self) -> None: ...

    @abstractmethod
    async def reset(self, what: str) -> None:
        """Clear ``what`` (all, sequences, limits, journal), and have every process forget it."""

    @abstractmethod
    async def scenarios(self, method: str, payload: Any) -> None:
        """Have every process load scenarios (``Host.load``); sequences rewound."""


class SharedTicket(Ticket):
    """A ticket whose window lives with the owner: ``slot`` names it there."""

    def __init__(self, limit: RateLimit, window: _Window, now: float, slot: str) -> None:
        super().__init__(limit, window, now)
        self.slot = slot


class SharedStore(Store):
    """The decisions of ``LocalStore``, taken through a ``Backend``."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._viewers = Subscribers()
        self._following = False
        self._batch: list[tuple[str, int]] = []
        self._flushed: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.backend.start(self.host, self._deliver)

    async def close(self) -> None:
        await self.backend.close()

    async def parse(
        self, protocol: Protocol, raw: bytes, headers: Mapping[str, str], target: Target = NOWHERE
    ) -> Request:
        """Parse, fetching any stored response the request refers to from the owner first."""
        wanted: list[str] = []

        def missing(id: str) -> None:
            wanted.append(id)

        try:
            return protocol.parse(raw, headers, missing, target)
        except APIError:
            if not wanted:
                raise
        found = {id: await self.backend.get_response(id) for id in wanted}

        def lookup(id: str) -> Sequence[dict[str, Any]] | None:
            stored = found.get(id)
            return stored.messages if stored is not None else None

        return protocol.parse(raw, headers, lookup, target)

    async def put_response(self, stored: Stored) -> None:
        await self.backend.put_response(stored)

    async def get_response(self, id: str) -> Stored | None:
        return await self.backend.get_response(id)

    async def resolve(self, scenarios: ScenarioSet, request: Request) -> Resolution:
        """``ScenarioSet.resolve`` with sequence positions kept by the owner."""
        named = keys(scenarios)
        passed_over = False
        for rank, scenario, conditions, answer in scenarios.candidates(request):
            captures = check_all(conditions, request)
            if captures is None:
                continue
            if answer is not None:  # stateless
                return Resolution(scenario, answer.step, 0, captures, not passed_over)
            talk = _hash(conversation(scenario, request))
            seen = await self.backend.advance(f"{named.set_id}:{rank}:{talk}")
            step = step_after(scenario, seen)
            if step is not None:
                return Resolution(scenario, scenario.steps[step], step, captures, False)
            passed_over = True
        fallback = scenarios.fallback_for(request)
        if fallback is not None:
            return Resolution(fallback, fallback.steps[0], 0, _NO_CAPTURES, not passed_over)
        raise scenarios.no_match(request)

    async def admit(
        self, server: RateLimit | None, scenario: Scenario, key: str, request: Request, now: float
    ) -> list[Ticket]:
        who = _hash(key, request.model)
        tickets: list[Ticket] = []
        for limit in (server, scenario.rate_limit):
            if limit is None:
                continue
            name = (
                f"server:{limit.requests}:{limit.tokens}:{limit.per}"
                if limit is server
                else keys(self.host.scenarios).limits[limit]
            )
            slot = f"{name}:{who}"
            got = await self.backend.admit(slot, limit, request.prompt_tokens, now)
            ticket = SharedTicket(limit, _Window(got.start, got.requests, got.tokens), now, slot)
            if got.refused == "requests":
                assert limit.requests is not None
                raise _refusal(
                    ticket, request.model, "requests", "RPM", limit.requests, got.requests, 1
                )
            if got.refused == "tokens":
                assert limit.tokens is not None
                raise _refusal(
                    ticket, request.model, "tokens", "TPM", limit.tokens, got.tokens,
                    request.prompt_tokens,
                )  # fmt: skip
            tickets.append(ticket)
        return tickets

    async def spend(self, tickets: list[Ticket], tokens: int) -> None:
        for ticket in tickets:
            ticket.spend(tokens)  # this reply's headers
            if isinstance(ticket, SharedTicket):
                await self.backend.spend(ticket.slot, ticket.window.start, tokens)

    async def fires_nth(self, resolution: Resolution, nth: int) -> bool:
        """Whether this is the ``nth`` request of the step, counted across every process."""
        named = keys(self.host.scenarios)
        rank = named.ranks.get(resolution.scenario, -2)
        return await self.backend.fire(f"{named.set_id}:{rank}:{resolution.step_index}") == nth

    async def cache(
        self, ask: Sequence[str], write: Sequence[tuple[str, float]], now: float
    ) -> list[bool]:
        return await self.backend.cache(ask, write, now)

    # the journal

    async def record(self, entry: Entry) -> None:
        """Entries recorded in the same turn of the loop go to the owner together (under load,
        one round trip for many requests); each caller returns once its entry is kept."""
        self._batch.append((json.dumps(entry.to_dict(), default=str), entry.size))
        if self._flushed is None:
            self._flushed = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.shield(self._flushed)

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the handlers that are ready add their entries
        batch, flushed = self._batch, self._flushed
        self._batch, self._flushed = [], None
        assert flushed is not None
        try:
            await self.backend.push(batch)
        except Exception as err:
            flushed.set_exception(err)
            flushed.exception()  # retrieved here too: no "never retrieved" warning
        else:
            flushed.set_result(None)

    @staticmethod
    def _item(seq: int, text: str) -> dict[str, Any]:
        item: dict[str, Any] = json.loads(text)
        item["seq"] = seq
        return item

    def _entry(self, seq: int, text: str) -> Entry:
        """A journal entry as the owner keeps it, its body parsed again by the protocol it
        spoke (a stored response it named counts as empty: only its own input is shown)."""
        item = self._item(seq, text)
        protocol = self.host.protocols.get(item.get("api", ""))
        request = None
        if protocol is not None and item.get("body") is not None:
            raw = json.dumps(item["body"]).encode()
            with contextlib.suppress(APIError):
                target = target_of(item.get("path") or "")
                request = protocol.parse(raw, item.get("headers") or {}, found_empty, target)
        return Entry.from_dict(item, request)

    async def journal(self) -> list[Entry]:
        return [Entry.from_dict(self._item(*kept)) for kept in await self.backend.journal()]

    async def entry(self, seq: int) -> Entry | None:
        text = await self.backend.entry(seq)
        return self._entry(seq, text) if text is not None else None

    async def follow(self, last: int | None, limit: int) -> Feed:
        subscription = self._viewers.subscribe(limit)  # news from now on, some maybe twice
        try:
            self._following = True
            got = await self.backend.follow(last)
        except BaseException:
            self._viewers.unsubscribe(subscription)
            raise
        after = resume_after(last, got.recorded, got.cleared_at)
        backlog = [(p, self._entry(p, text)) for p, text in got.items]
        return Feed(got.recorded, got.cleared_at, got.first_position, after, backlog, subscription)

    def unfollow(self, feed: Feed) -> None:
        self._viewers.unsubscribe(feed.subscription)
        if not self._viewers.active and self._following:
            self._following = False
            task = asyncio.create_task(self._unfollow())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _unfollow(self) -> None:
        """An owner that is gone has forgotten its followers already."""
        with contextlib.suppress(APIError):
            await self.backend.unfollow()

    def _deliver(self, position: int, text: str | None) -> None:
        if self._viewers.active:
            self._viewers.notify((position, None if text is None else self._entry(position, text)))

    # every process

    async def reset(self, what: str) -> None:
        await self.backend.reset(what)

    async def load(self, method: str, payload: Any) -> None:
        await self.backend.scenarios(method, payload)


class LocalBackend(Backend):
    """``Tables`` in this process: the shared code path without another process (tests)."""

    def __init__(self, journal_size: int = 1000) -> None:
        self.tables = Tables(journal_size)
        self._following = False

    async def start(self, host: Host, deliver: Deliver) -> None:
        self.host = host
        self.deliver = deliver

    async def advance(self, key: str) -> int:
        return self.tables.advance(key)

    async def fire(self, key: str) -> int:
        return self.tables.fire(key)

    async def admit(self, slot: str, limit: RateLimit, prompt_tokens: int, now: float) -> Window:
        return self.tables.admit(slot, limit, prompt_tokens, now)

    async def spend(self, slot: str, start: float, tokens: int) -> None:
        self.tables.spend(slot, start, tokens)

    async def put_response(self, stored: Stored) -> None:
        self.tables.responses.put(stored)

    async def get_response(self, id: str) -> Stored | None:
        return self.tables.responses.get(id)

    async def cache(
        self, ask: Sequence[str], write: Sequence[tuple[str, float]], now: float
    ) -> list[bool]:
        return self.tables.prompt_cache.exchange(ask, write, now)

    async def push(self, items: list[tuple[str, int]]) -> None:
        for position, text in self.tables.push(items):
            if self._following:
                self.deliver(position, text)

    async def journal(self) -> list[tuple[int, str]]:
        return self.tables.entries()

    async def entry(self, seq: int) -> str | None:
        return self.tables.entry(seq)

    async def follow(self, last: int | None) -> Snapshot:
        self._following = True
        return self.tables.snapshot(last)

    async def unfollow(self) -> None:
        self._following = False

    async def reset(self, what: str) -> None:
        cleared = self.tables.reset(what)
        if cleared is not None and self._following:
            self.deliver(cleared, None)
        self.host.forget(what)

    async def scenarios(self, method: str, payload: Any) -> None:
        self.host.load(method, payload)
        self.tables.reset("sequences")
