"""The supervisor owns the shared state of ``serve --workers N``; workers ask it over a Unix
socket.

Each operation is one small message answered in turn by one thread that owns ``Tables``, so
each is atomic and N workers answer exactly as one would. The journal is kept there too:
workers push their entries (those finished in one turn of a worker's loop go in one message),
and a worker with a live viewer open follows it (the supervisor sends it each new entry). The
supervisor also calls its workers, to carry a reset or new scenarios sent to any one worker's
admin API to all of them.

A worker's journal entries are notes (one-way): written to the socket before the reply they
journal is sent, so the supervisor reads them before any later request's call, and no worker
waits on them.

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
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from ..protocols import Stored
from ..scenarios.ratelimit import RateLimit
from .shared import Backend, Deliver, unavailable
from .store import Host
from .tables import Snapshot, Tables, Window

log = logging.getLogger("mockserver")

_HEADER = struct.Struct("!I")
Handler = Callable[["Peer", str, tuple[Any, ...]], Awaitable[Any]]


class Peer:
    """One end of a connection: calls the other end and answers its calls, both at once;
    a note is a call that wants no answer."""

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

    def note(self, op: str, *args: Any) -> None:
        if not self.closed:
            self._send(("call", 0, op, args))

    async def _answer(self, id: int, op: str, args: tuple[Any, ...]) -> None:
        try:
            result = await self.handler(self, op, args)
        except Exception as err:
            log.exception("mockserver: shared operation %s failed", op)
            if id:
                self._send(("reply", id, False, f"{type(err).__name__}: {err}"))
        else:
            if id:
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

    def __init__(self, listener: socket.socket, journal_size: int) -> None:
        self.listener = listener
        self.tables = Tables(journal_size)
        self.workers: list[Peer] = []
        self.followers: set[Peer] = set()
        self.ops: dict[str, Callable[..., Any]] = {
            "advance": self.tables.advance,
            "fire": self.tables.fire,
            "admit": self.tables.admit,
            "spend": self.tables.spend,
            "put_response": self.tables.responses.put,
            "get_response": self.tables.responses.get,
            "cache": self.tables.prompt_cache.exchange,
            "journal": self.tables.entries,
            "entry": self.tables.entry,
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
            self.followers.discard(peer)

    async def _handle(self, peer: Peer, op: str, args: tuple[Any, ...]) -> Any:
        simple = self.ops.get(op)
        if simple is not None:
            return simple(*args)
        if op == "push":
            for position, text in self.tables.push(*args):
                for follower in self.followers:
                    follower.note("entry", position, text)
            return None
        if op == "follow":
            self.followers.add(peer)
            return self.tables.snapshot(*args)
        if op == "unfollow":
            self.followers.discard(peer)
            return None
        if op == "reset":
            cleared = self.tables.reset(args[0])
            if cleared is not None:
                for follower in self.followers:
                    follower.note("cleared", cleared)
            await self._everyone("reset", *args)
            return None
        if op == "scenarios":
            await self._everyone("scenarios", *args)
            self.tables.reset("sequences")
            return None
        raise ValueError(f"unknown operation {op!r}")

    async def _everyone(self, op: str, *args: Any) -> list[Any]:
        return list(await asyncio.gather(*(w.call(op, *args) for w in list(self.workers))))


class SupervisorClient(Backend):
    """A worker's side: each operation is a call to the supervisor."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.peer: Peer | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, host: Host, deliver: Deliver) -> None:
        self.host = host
        self.deliver = deliver
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

    async def _handle(self, peer: Peer, op: str, args: tuple[Any, ...]) -> Any:
        """The supervisor's calls: this worker's part of a reset, new scenarios, journal news."""
        if op == "entry":
            self.deliver(*args)
            return None
        if op == "cleared":
            self.deliver(args[0], None)
            return None
        if op == "reset":
            self.host.forget(args[0])
            return None
        if op == "scenarios":
            self.host.load(*args)
            return None
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

    async def cache(
        self, ask: Sequence[str], write: Sequence[tuple[str, float]], now: float
    ) -> list[bool]:
        live: list[bool] = await self._call("cache", list(ask), list(write), now)
        return live

    async def push(self, items: list[tuple[str, int]]) -> None:
        """A note, not a call: written to the socket before the reply is sent, so the
        supervisor has it before any later request asks; nothing to wait for."""
        if self.peer is None or self.peer.closed:
            raise unavailable("the supervisor connection is closed")
        self.peer.note("push", items)

    async def journal(self) -> list[tuple[int, str]]:
        entries: list[tuple[int, str]] = await self._call("journal")
        return entries

    async def entry(self, seq: int) -> str | None:
        text: str | None = await self._call("entry", seq)
        return text

    async def follow(self, last: int | None) -> Snapshot:
        snapshot: Snapshot = await self._call("follow", last)
        return snapshot

    async def unfollow(self) -> None:
        if self.peer is not None:
            self.peer.note("unfollow")  # nothing to wait for

    async def reset(self, what: str) -> None:
        await self._call("reset", what)

    async def scenarios(self, method: str, payload: Any) -> None:
        await self._call("scenarios", method, payload)


class Socket:
    """The supervisor's listening socket, bound before the workers fork, in a private folder."""

    def __init__(self, journal_size: int = 1000) -> None:
        self.journal_size = journal_size
        self.folder = Path(tempfile.mkdtemp(prefix="mockserver-"))  # mode 0700
        self.path = str(self.folder / "state.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        os.chmod(self.path, 0o600)
        self.listener.listen(128)

    def serve(self) -> None:
        """In the supervisor, once the workers are forked: own the state, answer them."""
        Owner(self.listener, self.journal_size).start()

    def client(self) -> SupervisorClient:
        """In a worker: the ``Backend`` that asks the supervisor."""
        return SupervisorClient(self.path)

    def close(self) -> None:
        self.listener.close()
        shutil.rmtree(self.folder, ignore_errors=True)
