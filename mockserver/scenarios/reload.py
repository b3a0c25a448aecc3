"""Hot reload for ``serve``: an edited scenario file takes effect without a restart.

A task polls the files' modification times (off the event loop) and reloads the whole set
when any changed, was added or was removed. A broken edit keeps the last good set serving and
logs every problem with its file and line; the next good edit is picked up as usual. Reloading
rewinds sequences, like any replacement of the scenario set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from ..core.errors import ScenarioError
from .loader import load_paths, scenario_files
from .scenario import Scenario

log = logging.getLogger("mockserver")

Snapshot = dict[Path, tuple[int, int]]


def snapshot(paths: Sequence[str], included: Sequence[Path] = ()) -> Snapshot:
    """Modification time and size of every file the set depends on, includes too."""
    out: Snapshot = {}
    for file in [*scenario_files(paths), *included]:
        try:
            stat = file.stat()
        except OSError:
            continue
        out[file] = (stat.st_mtime_ns, stat.st_size)
    return out


class Watcher:
    """Reloads ``paths`` into ``apply`` whenever their files change."""

    def __init__(
        self, paths: Sequence[str], apply: Callable[[list[Scenario]], None], interval: float
    ) -> None:
        self.paths = list(paths)
        self.apply = apply
        self.interval = interval
        self.error: ScenarioError | None = None
        self._read: list[Path] = []
        self._seen: Snapshot = {}  # filled by learn_includes, before the first check
        self.ready = asyncio.Event()

    def _load(self) -> list[Scenario]:
        """Load the set, and remember which files it read and how they looked, even on failure."""
        read: list[Path] = []
        try:
            return load_paths(self.paths, read)
        finally:
            self._read = read
            self._seen = snapshot(self.paths, read)

    async def learn_includes(self) -> None:
        """Read the set once in the background to learn which files it includes."""
        with contextlib.suppress(ScenarioError):
            await asyncio.get_running_loop().run_in_executor(None, self._load)
        self.ready.set()

    async def check(self) -> bool:
        """Reload if anything changed since the last look; True when a new set was applied."""
        loop = asyncio.get_running_loop()
        current = await loop.run_in_executor(None, snapshot, self.paths, self._read)
        if current == self._seen:
            return False
        try:
            scenarios = await loop.run_in_executor(None, self._load)
        except ScenarioError as err:
            self.error = err
            log.error("mockserver: reload failed; still serving the last good set:\n%s", err)
            return False
        self.error = None
        self.apply(scenarios)
        log.info("mockserver: reloaded %d scenario(s)", len(scenarios))
        return True

    async def run(self) -> None:
        await self.learn_includes()
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:
                log.exception("mockserver: the scenario watcher failed; it keeps watching")

    async def running(self) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx``: watch while the application runs."""
        task = asyncio.create_task(self.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
