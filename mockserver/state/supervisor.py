"""The supervisor owns the shared state of ``serve --workers N``; workers ask it over a Unix
socket.

Each operation is one small message answered in turn by one thread that owns ``Tables``, so
each is atomic and N workers answer exactly as one would. The supervisor also calls its
workers: to gather their journals (they keep them, so a request costs no extra message for
it), and to carry a reset or new scenarios sent to any one worker's admin API to all of them.

Frames are a 4-byte length and a pickle: both ends are this program, on one host, and the
socket lives in a directory only this user can enter.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..protocols import Stored
from ..scenarios.ratelimit import RateLimit
from .shared import (
    Shared,
    Tables,
    Window,
    apply_scenarios,
    journal_dicts,
    merged,
    reset_local,
    unavailable,
)

if TYPE_CHECKING:
    from .live import State

log = logging.getLogger("mockserver")

_HEADER = struct.Struct("!I")
Handler = Callable[[str, tuple[Any, ...]], Awaitable[Any]]


class Peer:
    """One end of a connection: calls the other end and answers its calls, both at once."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)
        self.closed = False

    def _send(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.write(_HEADER.pack(len(data)) + data)

    async def call(self, op: str, *args: Any) -> Any:
        if self.closed:
            raise unavailable("the supervisor connection is closed")
        id = next(self.ids)
        future = self.pending[id] = asyncio.get_running_loop().create_future()
        self._send(("call", id, op, args))
        return await future

    async def _answer(self, id: int, op: str, args: tuple[Any, ...]) -> None:
        try:
            result = await self.handler(op, args)
        except Exception as err:
            log.exception("mockserver: shared operation %s failed", op)
            self._send(("reply", id, False, f"{type(err).__name__}: {err}"))
        else:
            self._send(("reply", id, True, result))

    async def run(self) -> None:
        """Read until the other end goes; then every pending call fails with a 503."""
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                size = _HEADER.unpack(await self.reader.readexactly(_HEADER.size))[0]
                message = pickle.loads(await self.reader.readexactly(size))
                if message[0] == "reply":
                    _, id, ok, value = message
                    future = self.pending.pop(id, None)
                    if future is not None and not future.done():
                        if ok:
                            future.set_result(value)
                        else:
                            future.set_exception(unavailable(f"the owner failed: {value}"))
                else:
                    _, id, op, args = message
                    task = asyncio.create_task(self._answer(id, op, args))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(unavailable("the supervisor connection was lost"))
            self.pending.clear()
            self.writer.close()


class Owner:
    """The supervisor's side: ``Tables`` and the connected workers, on a thread of its own."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.tables = Tables()
        self.workers: list[Peer] = []
        self.ops: dict[str, Callable[..., Any]] = {
            "advance": self.tables.advance,
            "fire": self.tables.fire,
            "admit": self.tables.admit,
            "spend": self.tables.spend,
            "put_response": self.tables.responses.put,
            "get_response": self.tables.responses.get,
        }

    def start(self) -> None:
        """Serve on a daemon thread (the supervisor's main thread watches the workers)."""
        threading.Thread(target=self._run, name="mockserver-state", daemon=True).start()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        server = await asyncio.start_unix_server(self._connected, sock=self.listener)
        async with server:
            await server.serve_forever()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer, self._handle)
        self.workers.append(peer)
        try:
            await peer.run()
        finally:
            self.workers.remove(peer)

    async def _handle(self, op: str, args: tuple[Any, ...]) -> Any:
        simple = self.ops.get(op)
        if simple is not None:
            return simple(*args)
        if op == "reset":
            self.tables.reset(args[0])
            await self._everyone("reset", *args)
            return None
        if op == "scenarios":
            await self._everyone("scenarios", *args)
            self.tables.reset("sequences")
            return None
        if op == "journal":
            return merged(await self._everyone("journal"))
        raise ValueError(f"unknown operation {op!r}")

    async def _everyone(self, op: str, *args: Any) -> list[Any]:
        return list(await asyncio.gather(*(w.call(op, *args) for w in list(self.workers))))


class SupervisorClient(Shared):
    """A worker's side: each operation is a call to the supervisor."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.peer: Peer | None = None
        self.state: State | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, state: State) -> None:
        self.state = state
        reader, writer = await asyncio.open_unix_connection(self.path)
        self.peer = Peer(reader, writer, self._handle)
        self._reader = asyncio.create_task(self.peer.run())

    async def close(self) -> None:
        if self.peer is not None:
            self.peer.writer.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _handle(self, op: str, args: tuple[Any, ...]) -> Any:
        """The supervisor's calls: this worker's part of a reset, new scenarios, its journal."""
        assert self.state is not None
        if op == "reset":
            reset_local(self.state, args[0])
            return None
        if op == "scenarios":
            apply_scenarios(self.state, *args)
            return None
        if op == "journal":
            return journal_dicts(self.state)
        raise ValueError(f"unknown operation {op!r}")

    async def _call(self, op: str, *args: Any) -> Any:
        if self.peer is None:
            raise unavailable("not connected to the supervisor")
        return await self.peer.call(op, *args)

    async def advance(self, key: str) -> int:
        return int(await self._call("advance", key))

    async def fire(self, key: str) -> int:
        return int(await self._call("fire", key))

    async def admit(self, slot: str, limit: RateLimit, prompt_tokens: int, now: float) -> Window:
        window: Window = await self._call("admit", slot, limit, prompt_tokens, now)
        return window

    async def spend(self, slot: str, start: float, tokens: int) -> None:
        await self._call("spend", slot, start, tokens)

    async def put_response(self, stored: Stored) -> None:
        await self._call("put_response", stored)

    async def get_response(self, id: str) -> Stored | None:
        stored: Stored | None = await self._call("get_response", id)
        return stored

    async def reset(self, what: str) -> None:
        await self._call("reset", what)

    async def scenarios(self, method: str, payload: Any) -> None:
        await self._call("scenarios", method, payload)

    async def journal(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = await self._call("journal")
        size = self.state.options.journal_size if self.state is not None else len(entries)
        return entries[-size:] if size else []


class Socket:
    """The supervisor's listening socket, bound before the workers fork, in a private folder."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mockserver-"))  # mode 0700
        self.path = str(self.folder / "state.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        os.chmod(self.path, 0o600)
        self.listener.listen(128)

    def serve(self) -> None:
        """In the supervisor, once the workers are forked: own the state, answer them."""
        Owner(self.listener).start()

    def client(self) -> SupervisorClient:
        """In a worker: the ``Shared`` that asks the supervisor."""
        return SupervisorClient(self.path)

    def close(self) -> None:
        self.listener.close()
        shutil.rmtree(self.folder, ignore_errors=True)
