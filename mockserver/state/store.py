"""``Store``: the one interface to the state that decides answers, and its in-process strategy.

The pipeline asks the store once per decision and never which store it has:

- stored responses (Responses API ``store``): ``parse`` (a request that names a stored
  response finds it), ``put_response``, ``get_response``;
- sequence positions: ``resolve``;
- budgets (rate limits): ``admit``, then ``spend`` with the reply's tokens;
- fault counters (``nth``): ``fires_nth``;
- the prompt cache (``serve --prompt-cache``): ``cache``, which prefixes are live, and writes;
- the journal: ``record``, read back by ``journal`` and ``entry``, followed live by ``follow``;
- what every process must do: ``reset``, ``load`` (scenarios sent to the admin API).

Two strategies: ``LocalStore`` keeps it all in this process (plain tables, no IO), and
``shared.SharedStore`` keeps it with one owner for every process (the supervisor of
``--workers``, or Redis for ``--state redis://``). Every method is a coroutine, so one
pipeline serves both: awaiting a coroutine that returns at once costs about 60 ns, and a plain
chat request awaits three (parse, resolve, record); budgets, faults and stored responses are
only asked about when a scenario has them. Measured: no difference in instructions per
request beyond noise (see ``docs/scaling.md``).

A new kind of state that decides answers goes here the same way the prompt cache did: a
coroutine on ``Store``; ``LocalStore`` over a bounded table of its own; ``SharedStore`` through
one ``Backend`` operation of the same name (``tables.Tables`` for the supervisor and tests, one
Redis command or script), keyed by hashed strings (``shared.keys`` builds those that name
scenarios); cleared by ``reset("all")``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from typing import Protocol as Interface

from ..core.request import Request
from ..protocols import NOWHERE, Lookup, Protocol, Stored, Target
from ..scenarios.matching import Resolution, ScenarioSet
from ..scenarios.ratelimit import Budgets, RateLimit, Ticket
from ..scenarios.scenario import Scenario, Step
from .journal import Entry, Journal, Subscription
from .options import Options
from .prompt_cache import PromptCache
from .tables import ResponseStore, resume_after


class Host(Interface):
    """What a store needs of the process it serves (``live.State`` is the one there is)."""

    options: Options
    scenarios: ScenarioSet
    protocols: dict[str, Protocol]
    journal: Journal

    def forget(self, what: str) -> None:
        """This process's own part of a reset: its memos and sequence positions."""

    def load(self, method: str, payload: Any) -> None:
        """Load admin-sent scenarios (YAML text or JSON data) into this process."""


@dataclass
class Feed:
    """What a live viewer gets from ``follow``: where the journal stood when it started
    following, the entries after its resume point, and the subscription that brings the rest
    (items at positions up to ``recorded`` may come twice: skip them)."""

    recorded: int
    cleared_at: int
    first_position: int
    after: int
    backlog: list[tuple[int, Entry]]
    subscription: Subscription


class Store(ABC):
    """The state that decides answers, whichever process asks (see the module's docstring)."""

    def bind(self, host: Host) -> None:
        """Serve ``host`` (once, when the application is built)."""
        self.host = host

    async def start(self) -> None:
        """Connect, in the serving process (after any fork); fail when the store is away."""
        return None

    async def close(self) -> None:
        return None

    def rewind(self) -> None:
        """This process loaded scenarios anew: counters it keeps for the old ones go."""
        return None

    # stored responses

    @abstractmethod
    async def parse(
        self, protocol: Protocol, raw: bytes, headers: Mapping[str, str], target: Target = NOWHERE
    ) -> Request:
        """``protocol.parse`` (``target``: the URL's path and query, for protocols whose URL
        says what the body does not), with the stored responses a request refers to."""

    @abstractmethod
    async def put_response(self, stored: Stored) -> None: ...

    @abstractmethod
    async def get_response(self, id: str) -> Stored | None: ...

    # sequence positions

    @abstractmethod
    async def resolve(self, scenarios: ScenarioSet, request: Request) -> Resolution:
        """``ScenarioSet.resolve``: which scenario and step answer, a conversation advanced."""

    # budgets

    @abstractmethod
    async def admit(
        self, server: RateLimit | None, scenario: Scenario, key: str, request: Request, now: float
    ) -> list[Ticket]:
        """Count the request against the server's budget and the scenario's; 429 when over."""

    @abstractmethod
    async def spend(self, tickets: list[Ticket], tokens: int) -> None:
        """Add a reply's tokens to the windows its tickets were admitted in."""

    # fault counters

    @abstractmethod
    async def fires_nth(self, resolution: Resolution, nth: int) -> bool:
        """Whether this is the ``nth`` request of the step (its fault fires)."""

    # the prompt cache

    @abstractmethod
    async def cache(
        self, ask: Sequence[str], write: Sequence[tuple[str, float]], now: float
    ) -> list[bool]:
        """Which prefix digests of ``ask`` are live at ``now``; then each of ``write`` is
        (digest, seconds it lives idle) written or refreshed."""

    # the journal

    @abstractmethod
    async def record(self, entry: Entry) -> None:
        """Keep the entry; raises the 503 of a lost store when it cannot."""

    @abstractmethod
    async def journal(self) -> list[Entry]:
        """Every entry kept, in the order recorded."""

    @abstractmethod
    async def entry(self, seq: int) -> Entry | None: ...

    @abstractmethod
    async def follow(self, last: int | None, limit: int) -> Feed:
        """Start following the journal; ``last`` is the position a viewer saw last."""

    @abstractmethod
    def unfollow(self, feed: Feed) -> None: ...

    # every process

    @abstractmethod
    async def reset(self, what: str) -> None:
        """Clear ``what`` (all, sequences, limits, journal) for every process."""

    @abstractmethod
    async def load(self, method: str, payload: Any) -> None:
        """Replace (PUT) or extend (POST) the scenarios of every process, sequences rewound."""


class LocalStore(Store):
    """One process: plain tables, every answer at once (no IO, nothing awaited inside)."""

    def __init__(self) -> None:
        self.responses = ResponseStore()
        self.budgets = Budgets()
        self.fault_counts: dict[Step, int] = {}
        self.prompt_cache = PromptCache()
        self._lookup: Lookup = self.responses.conversation

    def bind(self, host: Host) -> None:
        super().bind(host)
        self._journal = host.journal
        recorder = host.options.recorder
        if recorder is not None:  # recording tolerates ids this run never stored
            self._lookup = recorder.lenient(self.responses.conversation)

    def rewind(self) -> None:
        self.fault_counts.clear()

    async def parse(
        self, protocol: Protocol, raw: bytes, headers: Mapping[str, str], target: Target = NOWHERE
    ) -> Request:
        return protocol.parse(raw, headers, self._lookup, target)

    async def put_response(self, stored: Stored) -> None:
        self.responses.put(stored)

    async def get_response(self, id: str) -> Stored | None:
        return self.responses.get(id)

    async def resolve(self, scenarios: ScenarioSet, request: Request) -> Resolution:
        return scenarios.resolve(request)

    async def admit(
        self, server: RateLimit | None, scenario: Scenario, key: str, request: Request, now: float
    ) -> list[Ticket]:
        budgets, model, prompt = self.budgets, request.model, request.prompt_tokens
        return [
            budgets.admit(limit, key, model, prompt, now)
            for limit in (server, scenario.rate_limit)
            if limit is not None
        ]

    async def spend(self, tickets: list[Ticket], tokens: int) -> None:
        for ticket in tickets:
            ticket.spend(tokens)

    async def fires_nth(self, resolution: Resolution, nth: int) -> bool:
        step = resolution.step
        count = self.fault_counts[step] = self.fault_counts.get(step, 0) + 1
        return count == nth

    async def cache(
        self, ask: Sequence[str], write: Sequence[tuple[str, float]], now: float
    ) -> list[bool]:
        return self.prompt_cache.exchange(ask, write, now)

    async def record(self, entry: Entry) -> None:
        self._journal.record(entry.compact(), entry.size)

    async def journal(self) -> list[Entry]:
        return self._journal.entries

    async def entry(self, seq: int) -> Entry | None:
        return next((e for e in self._journal if e.seq == seq), None)

    async def follow(self, last: int | None, limit: int) -> Feed:
        # Subscribing and reading the backlog with no await between: every entry is in
        # exactly one of them.
        journal = self._journal
        subscription = journal.subscribe(limit)
        after = resume_after(last, journal.recorded, journal.cleared_at)
        return Feed(
            journal.recorded, journal.cleared_at, journal.first_position, after,
            journal.since(after), subscription,
        )  # fmt: skip

    def unfollow(self, feed: Feed) -> None:
        self._journal.unsubscribe(feed.subscription)

    async def reset(self, what: str) -> None:
        if what in ("all", "limits"):
            self.budgets.clear()
        if what in ("all", "journal"):
            self._journal.clear()
        if what == "all":
            self.responses.clear()
            self.prompt_cache.clear()
        self.host.forget(what)  # sequences: positions, memos, and ``rewind``

    async def load(self, method: str, payload: Any) -> None:
        self.host.load(method, payload)
