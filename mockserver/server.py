"""``MockServer``: the mock on a real socket, in-process, for tests, scripts and notebooks.

It runs the aiohttp application on its own event loop in a daemon thread, so synchronous and
asynchronous callers (any event loop, any test framework) use it the same way.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web

from .app import create_app
from .scenarios.loader import load_data, load_paths, load_text
from .scenarios.matching import ScenarioSet
from .scenarios.scenario import Scenario
from .serving import make_runner
from .state.journal import Entry
from .state.live import STATE, Options, State
from .state.store import Store

T = TypeVar("T")
ScenarioSource = str | os.PathLike[str] | Mapping[str, Any] | list[Any] | Scenario


def scenarios_from(sources: Iterable[ScenarioSource]) -> list[Scenario]:
    """Scenarios from paths, YAML text, dicts shaped like a file, or ``Scenario`` objects."""
    out: list[Scenario] = []
    for source in sources:
        if isinstance(source, Scenario):
            out.append(source)
        elif isinstance(source, Mapping | list):
            out.extend(load_data(source))
        elif isinstance(source, str) and "\n" in source:
            out.extend(load_text(source))
        else:
            out.extend(load_paths([source]))
    return out


class MockServer:
    """A mock chat completions server on ``host:port`` (port 0: a free one).

    with MockServer(["fixtures/tools.yaml"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key)
    """

    api_key = "sk-mockserver"

    def __init__(
        self,
        scenarios: Iterable[ScenarioSource] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        options: Options | None = None,
        store: Store | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.options = options or Options()
        self.store = store
        """The state that decides answers (default: in this process; a ``SharedStore``)."""
        self._initial = scenarios_from(scenarios)
        self._initial_set: ScenarioSet | None = None  # the set built from ``_initial``
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to give an OpenAI client as ``base_url``."""
        return f"{self.url}/v1"

    @property
    def state(self) -> State:
        if self._app is None:
            raise RuntimeError("MockServer is not started; call start() or use 'with'")
        return self._app[STATE]

    def start(self) -> MockServer:
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        ready: Future[None] = Future()
        self._loop = loop
        self._app = create_app(self._initial, self.options, self.store)
        self._initial_set = self._app[STATE].scenarios

        async def boot() -> None:
            assert self._app is not None
            self._runner = make_runner(self._app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
            self.port = self._runner.addresses[0][1]

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(boot())
            except BaseException as exc:
                ready.set_exception(exc)
                return
            ready.set_result(None)
            loop.run_forever()

        thread = self._thread = threading.Thread(target=run, name="mockserver", daemon=True)
        thread.start()
        try:
            ready.result(timeout=10)
        except BaseException:  # it did not start (a busy port, an unreachable store)
            if thread.is_alive():
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self._loop = self._thread = None
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop, so state never changes under a running handler."""

        async def call() -> T:
            return fn()

        return self._run(call())

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the server's loop (or here, when it is not started)."""
        if self._loop is None:
            return asyncio.run(work)
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=10)

    def add(self, *sources: ScenarioSource) -> list[Scenario]:
        """Add scenarios (paths, YAML text or dicts shaped like the YAML), after those loaded."""
        new = scenarios_from(sources)
        self._call(lambda: self.state.add(new))
        return new

    def replace(self, *sources: ScenarioSource) -> None:
        new = scenarios_from(sources)
        self._call(lambda: self.state.replace(new))

    def reset(self) -> None:
        """Initial scenarios only, sequences rewound, journal empty."""

        async def reset() -> None:
            if self.state.scenarios is not self._initial_set:
                self.state.replace(self._initial)
                self._initial_set = self.state.scenarios
            await self.state.store.reset("all")

        self._run(reset())

    @property
    def journal(self) -> list[Entry]:
        return self._run(self.state.store.journal())

    @property
    def unmatched(self) -> list[Entry]:
        return [e for e in self.journal if e.unmatched]

    def requests(self, scenario: str | None = None) -> list[Entry]:
        """Chat requests received, optionally only those answered by ``scenario``."""
        return [e for e in self.journal if scenario is None or e.scenario == scenario]

    @property
    def last(self) -> Entry:
        entries = self.journal
        if not entries:
            raise AssertionError("mockserver received no request")
        return entries[-1]

    def assert_called(self, scenario: str, times: int | None = None) -> list[Entry]:
        hits = self.requests(scenario)
        if times is None and not hits:
            raise AssertionError(f"scenario {scenario!r} was never matched")
        if times is not None and len(hits) != times:
            raise AssertionError(
                f"scenario {scenario!r} was matched {len(hits)} time(s), expected {times}"
            )
        return hits

    def check(self) -> None:
        """Raise ``AssertionError`` explaining every request that matched no scenario."""
        misses = self.unmatched
        if misses:
            lines = [f"mockserver: {len(misses)} request(s) matched no scenario:"]
            lines += [f"  {e.method} {e.path}: {e.unmatched}" for e in misses]
            raise AssertionError("\n".join(lines))
