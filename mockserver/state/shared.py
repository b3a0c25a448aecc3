"""State that decides answers, kept in one place for several processes or hosts.

One process keeps its state in plain in-process tables (``ScenarioSet`` positions,
``Budgets``, fault counts, ``ResponseStore``) and the pipeline touches them synchronously: that
path has no await and no IO. With ``--workers N`` or ``--state redis://``, the same decisions
are taken by one owner through the async ``Shared`` interface instead: sequence positions,
rate-limit windows, ``nth`` fault counters and stored responses. ``Tables`` is the in-memory
implementation of those operations; the supervisor owns one for its workers
(``supervisor.py``), and ``LocalShared`` drives one in-process (tests of the shared path).

Scenario objects are per process, so the owner never sees them: every key is a string built
from the scenario set's content digest and the scenario's rank in it, the same in every
process that loaded the same scenarios. API keys and conversations are hashed into keys, so
no credential or message text is stored by the owner.
"""

from __future__ import annotations

import hashlib
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.errors import APIError
from ..core.request import Request
from ..protocols import NOWHERE, Protocol, Stored, Target
from ..scenarios.loader import load_data, load_text
from ..scenarios.matching import (
    _NO_CAPTURES,
    Resolution,
    ScenarioSet,
    _check_all,
    _stateless,
    conversation,
    step_after,
)
from ..scenarios.ratelimit import RateLimit, Ticket, _refusal, _Window
from ..scenarios.scenario import Scenario
from .live import ResponseStore

if TYPE_CHECKING:
    from .journal import Entry
    from .live import State

_CONVERSATIONS = 100_000
_WINDOWS = 10_000


def unavailable(detail: str) -> APIError:
    """What a request gets when the store is gone: never an answer from per-process state."""
    return APIError(
        503,
        f"mockserver: the shared state store is unreachable ({detail}); not answering from "
        "per-process state, which would break the promises of sequences and budgets.",
        type="server_error",
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


@dataclass(frozen=True)
class Window:
    """A budget window as the owner reports it; ``refused`` names the exhausted budget."""

    start: float
    requests: int
    tokens: int
    refused: str = ""


class Shared(ABC):
    """The operations whose outcome must be the same whichever process asks."""

    pushes_journal = False
    """True when each journal entry is sent to the store; else entries stay in their process
    and ``journal()`` gathers them."""

    async def start(self, state: State) -> None:
        """Connect, in the serving process (after any fork); fail when the store is away."""
        return None

    async def close(self) -> None:
        """Disconnect."""
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
    async def reset(self, what: str) -> None:
        """Clear ``what`` (all, sequences, limits, journal) for every process."""

    @abstractmethod
    async def scenarios(self, method: str, payload: Any) -> None:
        """Replace (PUT) or extend (POST) the scenarios of every process, sequences rewound."""

    @abstractmethod
    async def journal(self) -> list[dict[str, Any]]:
        """Every process's journal, as dicts, in the order requests arrived."""

    async def record(self, entry: Entry) -> None:
        """Keep one journal entry in the store (only when ``pushes_journal``)."""
        return None


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

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}
        self.faults: dict[str, int] = {}
        self.windows: dict[str, _Window] = {}
        self._window_ends: dict[str, float] = {}
        self.responses = ResponseStore()

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

    def reset(self, what: str) -> None:
        if what in ("all", "sequences"):
            self.positions.clear()
            self.faults.clear()
        if what in ("all", "limits"):
            self.windows.clear()
            self._window_ends.clear()
        if what == "all":
            self.responses.clear()


class LocalShared(Shared):
    """``Tables`` behind the async interface, in this process: the shared code path without
    another process (tests), and the reference the other owners must agree with."""

    def __init__(self) -> None:
        self.tables = Tables()
        self.state: State | None = None

    async def start(self, state: State) -> None:
        self.state = state

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

    async def reset(self, what: str) -> None:
        self.tables.reset(what)
        assert self.state is not None
        reset_local(self.state, what)

    async def scenarios(self, method: str, payload: Any) -> None:
        assert self.state is not None
        apply_scenarios(self.state, method, payload)
        self.tables.reset("sequences")

    async def journal(self) -> list[dict[str, Any]]:
        assert self.state is not None
        return journal_dicts(self.state)


# What each process does for its own part of a shared operation.


def reset_local(state: State, what: str) -> None:
    """The per-process part of a reset: memos, local sequences, this process's journal."""
    if what in ("all", "sequences"):
        state.reset_sequences()
    if what in ("all", "limits"):
        state.budgets.clear()
    if what in ("all", "journal"):
        state.journal.clear()
    if what == "all":
        state.responses.clear()
        state.prompt_cache.clear()


def apply_scenarios(state: State, method: str, payload: Any) -> None:
    """Load admin-sent scenarios (YAML text or JSON data) into this process."""
    loaded = (
        load_text(payload, "<admin>") if isinstance(payload, str) else load_data(payload, "<admin>")
    )
    if method == "POST":
        state.add(loaded)
    else:
        state.replace(loaded)


def journal_dicts(state: State) -> list[dict[str, Any]]:
    worker = state.options.worker
    out = []
    for entry in state.journal:
        item = entry.to_dict()
        item["worker"] = worker
        out.append(item)
    return out


def merged(journals: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Several processes' journals as one, in the order the requests arrived."""
    entries = [e for journal in journals for e in journal]
    entries.sort(key=lambda e: (e["time"], e.get("worker") or 0, e["seq"]))
    return entries


# The pipeline's stateful steps, done through a ``Shared`` owner.


async def resolve(state: State, shared: Shared, request: Request) -> Resolution:
    """``ScenarioSet.resolve`` with sequence positions kept by the owner."""
    scenarios = state.scenarios
    named = keys(scenarios)
    passed_over = False
    for rank, scenario in scenarios._candidates(request):
        captures = _check_all(scenario, request)
        if captures is None:
            continue
        if _stateless(scenario):
            step: int | None = 0
        else:
            talk = _hash(conversation(scenario, request))
            step = step_after(scenario, await shared.advance(f"{named.set_id}:{rank}:{talk}"))
        if step is not None:
            stateless = _stateless(scenario) and not passed_over
            return Resolution(scenario, scenario.steps[step], step, captures, stateless)
        passed_over = True
    fallback = scenarios.fallback_for(request)
    if fallback is not None:
        return Resolution(fallback, fallback.steps[0], 0, _NO_CAPTURES, not passed_over)
    raise scenarios.no_match(request)


class SharedTicket(Ticket):
    """A ticket whose window lives with the owner: ``slot`` names it there."""

    def __init__(self, limit: RateLimit, window: _Window, now: float, slot: str) -> None:
        super().__init__(limit, window, now)
        self.slot = slot


async def admit(
    state: State, shared: Shared, key: str, request: Request, scenario: Scenario
) -> list[Ticket]:
    """``_admit`` of the pipeline, with windows kept by the owner."""
    server, own = state.options.rate_limit, scenario.rate_limit
    if server is None and own is None:
        return []
    now = state.options.clock()
    who = _hash(key, request.model)
    tickets: list[Ticket] = []
    for limit in (server, own):
        if limit is None:
            continue
        name = (
            f"server:{limit.requests}:{limit.tokens}:{limit.per}"
            if limit is server
            else keys(state.scenarios).limits[limit]
        )
        slot = f"{name}:{who}"
        got = await shared.admit(slot, limit, request.prompt_tokens, now)
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


async def spend(shared: Shared, tickets: Sequence[Ticket], tokens: int) -> None:
    for ticket in tickets:
        if isinstance(ticket, SharedTicket):
            await shared.spend(ticket.slot, ticket.window.start, tokens)


async def fires_nth(state: State, shared: Shared, resolution: Resolution, nth: int) -> bool:
    """Whether this is the ``nth`` request of the step, counted across every process."""
    named = keys(state.scenarios)
    rank = named.ranks.get(resolution.scenario, -2)
    return await shared.fire(f"{named.set_id}:{rank}:{resolution.step_index}") == nth


async def parse(
    protocol: Protocol,
    raw: bytes,
    headers: Mapping[str, str],
    shared: Shared,
    target: Target = NOWHERE,
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
    found = {id: await shared.get_response(id) for id in wanted}

    def lookup(id: str) -> Sequence[dict[str, Any]] | None:
        stored = found.get(id)
        return stored.messages if stored is not None else None

    return protocol.parse(raw, headers, lookup, target)


async def record(shared: Shared, entry: Entry) -> None:
    """Push a journal entry; a 503 for a plain reply when the store is gone (a stream has
    already been sent: it is only logged)."""
    try:
        await shared.record(entry)
    except APIError:
        if entry.status and not (entry.request is not None and entry.request.stream):
            raise
