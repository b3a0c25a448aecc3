"""Hot reload for ``serve``: an edited scenario file takes effect without a restart.

A task polls the files' modification times (off the event loop) and reloads the whole set
when any changed, was added or was removed. A file modified within the last few seconds is
also compared by content, as git does for its "racy" files: a filesystem's clock has a grain
(milliseconds to two seconds), and a same-size save inside one grain keeps the mtime.
A broken edit keeps the last good set serving and logs every problem with its file and
line; the next good edit is picked up as usual. Reloading rewinds sequences, like any
replacement of the scenario set.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from ..core.errors import ScenarioError
from .loader import load_paths, scenario_files
from .scenario import Scenario

log = logging.getLogger("mockserver")

Snapshot = dict[Path, tuple[int, int, bytes]]

RACY_NS = 3 * 10**9  # wider than the coarsest common mtime grain (FAT's two seconds)


def _digest(file: Path) -> bytes:
    return hashlib.blake2b(file.read_bytes(), digest_size=16).digest()


def snapshot(paths: Sequence[str], included: Sequence[Path] = ()) -> Snapshot:
    """Modification time and size of every file the set depends on, includes too; and the
    content's digest for a file modified so recently that a later save could keep its mtime."""
    out: Snapshot = {}
    now = time.time_ns()
    for file in dict.fromkeys([*scenario_files(paths), *included]):
        try:
            stat = file.stat()
            racy = now - stat.st_mtime_ns < RACY_NS
            out[file] = (stat.st_mtime_ns, stat.st_size, _digest(file) if racy else b"")
        except OSError:
            continue
    return out


def differs(before: Snapshot, now: Snapshot) -> bool:
    """Whether a file was added, removed or changed; a file that was racy ``before`` and kept
    its mtime and size is compared by content."""
    if before.keys() != now.keys():
        return True
    for file, (mtime, size, digest) in before.items():
        later = now[file]
        if (mtime, size) != later[:2]:
            return True
        if digest:
            try:
                if digest != (later[2] or _digest(file)):
                    return True
            except OSError:
                return True
    return False


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
        # The files as they were when the serving set had just been loaded (this watcher is
        # made right after); learn_includes adds the files they include.
        self._seen: Snapshot = snapshot(self.paths)
        self.ready = asyncio.Event()

    def _load(self) -> list[Scenario]:
        """Load the set, and remember which files it read and how they looked, even on failure.
        The look is taken before the read: an edit in between reloads once more, not never."""
        before = snapshot(self.paths, self._read)
        read: list[Path] = []
        try:
            return load_paths(self.paths, read)
        finally:
            self._read = read
            self._seen = {**before, **snapshot((), [f for f in read if f not in before])}

    def _edited_since_start(self) -> bool:
        started = self._seen
        with contextlib.suppress(ScenarioError):
            self._load()
        return differs(started, snapshot(self.paths))

    async def learn_includes(self) -> None:
        """Read the set once in the background to learn which files it includes; a file edited
        since the serving set was loaded is news like any later edit."""
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(None, self._edited_since_start):
            await self.check(force=True)  # reported as any reload is
        self.ready.set()

    async def check(self, force: bool = False) -> bool:
        """Reload if anything changed since the last look (or, ``force``, in any case); True
        when a new set was applied."""
        loop = asyncio.get_running_loop()
        if not force:
            current = await loop.run_in_executor(None, snapshot, self.paths, self._read)
            if not await loop.run_in_executor(None, differs, self._seen, current):
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
