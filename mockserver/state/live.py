"""What every handler shares: the server's settings (``Options``) and its live ``State``."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from typing import Protocol as Interface

from aiohttp import web

from ..core.profiles import APIFACTORY, Profile
from ..core.request import Request
from ..protocols import Lookup, Protocol, Stored
from ..scenarios.matching import Resolution, ScenarioSet
from ..scenarios.ratelimit import Budgets, RateLimit
from ..scenarios.reload import Watcher
from ..scenarios.render import Renderer
from ..scenarios.scenario import Scenario, Step
from .journal import Entry, Journal
from .memo import Memos
from .prompt_cache import PromptCache

if TYPE_CHECKING:
    from .shared import Shared

Sleep = Callable[[float], Awaitable[Any]]
DEFAULT_MAX_BODY = 8 * 1024 * 1024


class Recorder(Interface):
    """What the pipeline asks of a recorder (``recording.record.Recorder`` is the one there
    is): state holds it without knowing recording, which sits above it."""

    forward_all: bool

    def lenient(self, lookup: Lookup) -> Lookup: ...

    def resolve(self, request: Request) -> Resolution | None: ...

    async def forward(
        self, request: web.Request, protocol: Protocol, req: Request, raw: bytes, entry: Entry
    ) -> web.StreamResponse: ...


@dataclass
class Options:
    """Server settings shared by the CLI, the pytest plugin and ``MockServer``."""

    profile: Profile = APIFACTORY
    api_keys: frozenset[str] = frozenset()
    speed: float = 1.0
    max_body: int = DEFAULT_MAX_BODY
    journal_size: int = 1000
    fallback: Scenario | None = None
    quiet: bool = True
    clock: Callable[[], float] = time.time
    sleep: Sleep = asyncio.sleep
    keepalive: float = 15.0
    system_fingerprint: str = "fp_mockserver"
    responses_usage: str = "responses"
    """``chat`` names Responses usage as the relay's documented example does (prompt_tokens...)."""
    rate_limit: RateLimit | None = None
    watch: tuple[str, ...] = ()
    reload_interval: float = 0.25
    idle_timeout: float = 15.0
    admin_token: str | None = None
    admin_enabled: bool = True
    workers: int = 1
    worker: int | None = None
    body_timeout: float = 30.0
    shutdown_timeout: float = 5.0
    prompt_cache: bool = False
    """Simulate prompt caching by each provider's rules (``serve --prompt-cache``)."""
    prompt_cache_ttl: float = 300.0
    """Idle seconds an automatic (OpenAI, Gemini) cache entry lives."""
    recorder: Recorder | None = None
    """Forwards requests to an upstream and records them (``mockserver record``, and
    ``serve --record-missing``): all of them, or those no scenario answers."""
    run: int = field(default_factory=lambda: secrets.randbits(32))
    """Drawn once per server (workers share it, and differ by ``worker``): what makes
    ``x-request-id`` unique across servers and runs. Body ids stay deterministic; set it for
    repeatable request ids too."""


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
        old = self._kept.pop(stored.id, None)
        if old is not None:
            self._bytes -= len(old.body)
        while self._kept and (len(self._kept) >= self._count or self._bytes > self._limit):
            self._bytes -= len(self._kept.popitem(last=False)[1].body)
        self._kept[stored.id] = stored
        self._bytes += len(stored.body)

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


@dataclass
class State:
    """Everything the handlers share; one per application."""

    options: Options
    scenarios: ScenarioSet
    journal: Journal
    protocols: dict[str, Protocol] = field(default_factory=dict)
    """The protocols the server speaks, by name: its routes, and what explain parses with."""
    renderer: Renderer = field(default_factory=Renderer)
    fault_counts: dict[Step, int] = field(default_factory=dict)
    budgets: Budgets = field(default_factory=Budgets)
    memos: Memos = field(default_factory=Memos)
    responses: ResponseStore = field(default_factory=ResponseStore)
    prompt_cache: PromptCache = field(default_factory=PromptCache)
    tasks: dict[str, Any] = field(default_factory=dict)
    """How far each polled task has got, in this process (``protocols.tasks.Progress``)."""
    watcher: Watcher | None = None
    shared: Shared | None = None
    """The owner of the state that decides answers when several processes serve (else None)."""
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    other_ids: Iterator[int] = field(default_factory=itertools.count)
    """Numbers the replies outside the journal (errors, models, admin) for their request ids."""

    def replace(self, scenarios: Iterable[Scenario]) -> None:
        self.scenarios = ScenarioSet(scenarios, self.options.fallback)
        self.reset_sequences()

    def add(self, scenarios: Iterable[Scenario]) -> None:
        """After those loaded already: at equal priority, the earlier ones are tried first."""
        self.replace([*self.scenarios.scenarios, *scenarios])

    def reset_sequences(self) -> None:
        """Sequences rewound, fault counters zeroed, and the replies that depended on them."""
        self.scenarios.reset()
        self.fault_counts.clear()
        self.memos.clear()

    def reset(self) -> None:
        self.reset_sequences()
        self.budgets.clear()
        self.journal.clear()
        self.responses.clear()
        self.prompt_cache.clear()
        self.tasks.clear()


STATE = web.AppKey("state", State)
