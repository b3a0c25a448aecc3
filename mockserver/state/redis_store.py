"""``--state redis://HOST:PORT/DB``: the shared state in Redis, for replicas on several hosts.

Every operation is one atomic command or script: ``HINCRBY`` for sequence positions and fault
counters, a script for a budget window (open, count, refuse) and one for spending tokens in it,
a hash per stored response (kept a day), a stream capped at ``--journal-size`` for the journal.
New scenarios and resets are published on a channel; each replica applies them and says so, and
the admin request that sent them answers once all have. A command that fails (Redis stopped,
unreachable, timed out) is a 503 error object: never an answer from per-process state.

Needs the optional ``redis`` package: ``pip install 'mockserver[redis]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from ..protocols import Stored
from ..scenarios.ratelimit import RateLimit
from .shared import Shared, Window, apply_scenarios, reset_local, unavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

    from .journal import Entry
    from .live import State

log = logging.getLogger("mockserver")
T = TypeVar("T")

_STORED_SECONDS = 24 * 3600
_POSITIONS_SECONDS = 24 * 3600
_ACK_SECONDS = 5.0

# KEYS[1] the window; ARGV: per, now, requests limit (-1: none), tokens limit (-1), prompt.
_ADMIT = """
local start = redis.call('HGET', KEYS[1], 's')
local per, now = tonumber(ARGV[1]), tonumber(ARGV[2])
if not start or now >= tonumber(start) + per then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 's', ARGV[2], 'r', 0, 't', 0)
  redis.call('PEXPIRE', KEYS[1], math.ceil(per * 1000) + 1000)
  start = ARGV[2]
end
local used = tonumber(redis.call('HGET', KEYS[1], 'r'))
local tokens = tonumber(redis.call('HGET', KEYS[1], 't'))
local rpm, tpm, prompt = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local refused = ''
if rpm >= 0 and used >= rpm then
  refused = 'requests'
elseif tpm >= 0 and tokens + prompt > tpm then
  refused = 'tokens'
else
  used = redis.call('HINCRBY', KEYS[1], 'r', 1)
end
return {start, used, tokens, refused}
"""

# KEYS[1] the window; ARGV: the start the ticket saw, tokens.
_SPEND = """
if redis.call('HGET', KEYS[1], 's') == ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 't', ARGV[2])
end
return 0
"""

# KEYS[1] the positions hash; ARGV: field, seconds to keep the hash.
_ADVANCE = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return n
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisShared(Shared):
    """The ``Shared`` operations on a Redis server; keys under ``prefix``."""

    pushes_journal = True

    def __init__(self, url: str, prefix: str = "mockserver:") -> None:
        self.url = url
        self.prefix = prefix
        self.origin = uuid.uuid4().hex  # this process, to skip its own announcements
        self.client: Redis | None = None
        self.state: State | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._journal_size = 1000
        self._batch: list[str] = []
        self._flushed: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _connect(self) -> Redis:
        try:
            from redis.asyncio import Redis
        except ImportError:
            raise RuntimeError(
                "--state redis:// needs the redis package: pip install 'mockserver[redis]'"
            ) from None
        return Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=2)

    async def start(self, state: State) -> None:
        """Connect and subscribe; raises when Redis cannot be reached (the server must not
        start on per-process state)."""
        self.state = state
        self._journal_size = max(state.options.journal_size, 1)
        self.client = self._connect()
        await self._do(self.client.ping())
        self._admit = self.client.register_script(_ADMIT)
        self._spend = self.client.register_script(_SPEND)
        self._advance = self.client.register_script(_ADVANCE)
        # A number for this process among all that share the store, so request ids stay
        # unique across replicas and ``x-mock-worker`` tells which one answered.
        number = await self._do(self.client.incr(self._key("processes")))
        state.options = replace(state.options, worker=int(number) - 1)
        self._pubsub = self.client.pubsub()
        await self._do(self._pubsub.subscribe(self._key("events")))
        # Scenarios sent through the admin API before this process started: it adopts them,
        # so a replica that joins (or restarts) answers like the others.
        for sent in await self._do(self.client.lrange(self._key("scenarios"), 0, -1)):
            method, payload = json.loads(sent)
            apply_scenarios(state, method, payload)
        self._listener = asyncio.create_task(self._listen())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self.client is not None:
            await self.client.aclose()

    @staticmethod
    async def check(url: str) -> None:
        """Raise unless Redis at ``url`` answers PING (before serving: fail closed)."""
        store = RedisShared(url)
        client = store._connect()
        try:
            await store._do(client.ping())
        finally:
            await client.aclose()

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _redis(self) -> Redis:
        if self.client is None:
            raise unavailable("not connected to Redis")
        return self.client

    async def _do(self, command: Awaitable[T]) -> T:
        """Run one Redis command; any failure to reach Redis is the 503 of a lost store."""
        from redis.exceptions import RedisError

        try:
            return await command
        except (RedisError, OSError, TimeoutError) as err:
            raise unavailable(f"Redis at {self.url}: {err}") from None

    async def advance(self, key: str) -> int:
        hits = await self._do(
            self._advance(keys=[self._key("pos")], args=[key, _POSITIONS_SECONDS])
        )
        return int(hits) - 1

    async def fire(self, key: str) -> int:
        return int(await self._do(self._redis().hincrby(self._key("faults"), key, 1)))

    async def admit(self, slot: str, limit: RateLimit, prompt_tokens: int, now: float) -> Window:
        requests = -1 if limit.requests is None else limit.requests
        tokens = -1 if limit.tokens is None else limit.tokens
        start, used, spent, refused = await self._do(
            self._admit(
                keys=[self._key("rl", slot)],
                args=[limit.per, repr(now), requests, tokens, prompt_tokens],
            )
        )
        return Window(float(_text(start)), int(used), int(spent), _text(refused))

    async def spend(self, slot: str, start: float, tokens: int) -> None:
        await self._do(self._spend(keys=[self._key("rl", slot)], args=[repr(start), tokens]))

    async def put_response(self, stored: Stored) -> None:
        key = self._key("resp", stored.id)
        pipe = self._redis().pipeline(transaction=True)
        pipe.hset(key, mapping={"m": json.dumps(stored.messages), "b": stored.body})
        pipe.expire(key, _STORED_SECONDS)
        await self._do(pipe.execute())

    async def get_response(self, id: str) -> Stored | None:
        messages, body = await self._do(self._redis().hmget(self._key("resp", id), ["m", "b"]))
        if messages is None or body is None:
            return None
        data = body.encode() if isinstance(body, str) else body
        return Stored(id, tuple(json.loads(messages)), data)

    async def record(self, entry: Entry) -> None:
        """Entries recorded in the same turn of the loop go in one pipeline (under load, one
        round trip for many requests); each caller returns once its entry is in Redis."""
        item = entry.to_dict()
        item["worker"] = self.state.options.worker if self.state is not None else None
        self._batch.append(json.dumps(item, default=str))
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
        pipe = self._redis().pipeline(transaction=False)
        for item in batch:
            pipe.xadd(
                self._key("journal"), {"e": item}, maxlen=self._journal_size, approximate=False
            )
        try:
            await self._do(pipe.execute())
        except Exception as err:
            flushed.set_exception(err)
            flushed.exception()  # retrieved here too: no "never retrieved" warning
        else:
            flushed.set_result(None)

    async def journal(self) -> list[dict[str, Any]]:
        rows = await self._do(self._redis().xrange(self._key("journal"))) or []
        return [json.loads(fields[b"e"]) for _, fields in rows if fields is not None]

    async def _delete(self, *patterns: str) -> None:
        client = self._redis()
        for pattern in patterns:
            keys = [k async for k in client.scan_iter(match=self._key(pattern), count=1000)]
            if keys:
                await client.delete(*keys)

    async def reset(self, what: str) -> None:
        async def clear() -> None:
            if what in ("all", "sequences"):
                await self._delete("pos", "faults")
            if what in ("all", "limits"):
                await self._delete("rl:*")
            if what in ("all", "journal"):
                await self._delete("journal")
            if what == "all":
                await self._delete("resp:*")

        await self._do(clear())
        assert self.state is not None
        reset_local(self.state, what)
        await self._announce({"op": "reset", "what": what})

    async def scenarios(self, method: str, payload: Any) -> None:
        assert self.state is not None
        apply_scenarios(self.state, method, payload)
        pipe = self._redis().pipeline(transaction=True)
        if method != "POST":
            pipe.delete(self._key("scenarios"))
        pipe.rpush(self._key("scenarios"), json.dumps([method, payload]))
        pipe.delete(self._key("pos"), self._key("faults"))
        await self._do(pipe.execute())
        await self._announce({"op": "scenarios", "method": method, "payload": payload})

    async def _announce(self, event: dict[str, Any]) -> None:
        """Publish to every replica and wait (a few seconds at most) until each applied it."""
        client = self._redis()
        ack = self._key("ack", uuid.uuid4().hex)
        event = {**event, "origin": self.origin, "ack": ack}
        receivers = await self._do(client.publish(self._key("events"), json.dumps(event)))
        others = int(receivers) - 1  # this process hears itself, and skips it
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _ACK_SECONDS
        while others > 0 and loop.time() < deadline:
            done = await self._do(client.get(ack))
            if done is not None and int(done) >= others:
                break
            await asyncio.sleep(0.005)
        else:
            if others > 0:
                log.warning("mockserver: not every replica confirmed %s", event["op"])
        await self._do(client.delete(ack))

    async def _listen(self) -> None:
        """Apply what other replicas announce; keep listening across Redis outages."""
        assert self._pubsub is not None
        assert self.state is not None
        while True:
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
                if message is None or message.get("type") != "message":
                    continue
                event = json.loads(message["data"])
                if event.get("origin") == self.origin:
                    continue
                if event["op"] == "reset":
                    reset_local(self.state, event["what"])
                elif event["op"] == "scenarios":
                    apply_scenarios(self.state, event["method"], event["payload"])
                await self._redis().incr(event["ack"])
                await self._redis().expire(event["ack"], 60)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("mockserver: Redis events: %s; retrying", err)
                await asyncio.sleep(0.5)
