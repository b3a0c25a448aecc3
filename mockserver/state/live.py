"""What every handler shares: the server's settings (``Options``) and its live ``State``."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..protocols import Protocol
from ..scenarios.loader import load_data, load_text
from ..scenarios.matching import ScenarioSet
from ..scenarios.reload import Watcher
from ..scenarios.render import Renderer
from ..scenarios.scenario import Scenario
from .journal import Journal
from .memo import Memos
from .options import DEFAULT_MAX_BODY, Options, Recorder, Sleep
from .store import LocalStore, Store
from .tables import ResponseStore

__all__ = [
    "DEFAULT_MAX_BODY",
    "STATE",
    "Options",
    "Recorder",
    "ResponseStore",
    "Sleep",
    "State",
]


@dataclass
class State:
    """Everything the handlers share; one per application."""

    options: Options
    scenarios: ScenarioSet
    journal: Journal
    """This process's journal: where ``LocalStore`` keeps entries. A shared store keeps them
    with its owner; read them through ``store`` (``journal``, ``entry``, ``follow``)."""
    protocols: dict[str, Protocol] = field(default_factory=dict)
    """The protocols the server speaks, by name: its routes, and what explain parses with."""
    renderer: Renderer = field(default_factory=Renderer)
    memos: Memos = field(default_factory=Memos)
    tasks: dict[str, Any] = field(default_factory=dict)
    """How far each polled task has got, in this process (``protocols.tasks.Progress``)."""
    store: Store = field(default_factory=LocalStore)
    """The state that decides answers: in this process, or shared by several."""
    watcher: Watcher | None = None
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    other_ids: Iterator[int] = field(default_factory=itertools.count)
    """Numbers the replies outside the journal (errors, models, admin) for their request ids."""

    def __post_init__(self) -> None:
        self.store.bind(self)

    def replace(self, scenarios: Iterable[Scenario]) -> None:
        self.scenarios = ScenarioSet(scenarios, self.options.fallback)
        self.reset_sequences()

    def add(self, scenarios: Iterable[Scenario]) -> None:
        """After those loaded already: at equal priority, the earlier ones are tried first."""
        self.replace([*self.scenarios.scenarios, *scenarios])

    def reset_sequences(self) -> None:
        """Sequences rewound, fault counters zeroed, and the replies that depended on them."""
        self.scenarios.reset()
        self.store.rewind()
        self.memos.clear()

    def forget(self, what: str) -> None:
        """This process's part of a reset (the store clears its own tables)."""
        if what in ("all", "sequences"):
            self.reset_sequences()
        if what == "all":
            self.tasks.clear()

    def load(self, method: str, payload: Any) -> None:
        """Admin-sent scenarios (YAML text or JSON data), loaded into this process."""
        loaded = (
            load_text(payload, "<admin>")
            if isinstance(payload, str)
            else load_data(payload, "<admin>")
        )
        if method == "POST":
            self.add(loaded)
        else:
            self.replace(loaded)


STATE = web.AppKey("state", State)
