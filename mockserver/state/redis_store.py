"""``--state redis://HOST:PORT/DB``: the shared state in Redis, for replicas on several hosts.

Every operation is one atomic command or script: ``HINCRBY`` for sequence positions and fault
counters, a script for a budget window (open, count, refuse) and one for spending tokens in it,
a script for the prompt cache (which prefixes are live, then writes: a key each, with expiry),
a hash per stored response (kept a day), a stream capped at ``--journal-size`` for the journal
(its entry ids are ``0-N``: N numbers the entries in the order recorded, a counter no reset
rewinds). A replica with a live viewer open follows the stream (``XREAD BLOCK``). New scenarios
and resets are published on a channel; each replica applies them and says so, and the admin
request that sent them answers once all have. A command that fails (Redis stopped, unreachable,
timed out) is a 503 error object: never an answer from per-process state.

Needs the optional ``redis`` package: ``pip install 'mockserver[redis]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from ..protocols import Stored
from ..scenarios.ratelimit import RateLimit
from .shared import Backend, Deliver, unavailable
from .store import Host
from .tables import Snapshot, Window, resume_after

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

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


# KEYS: the asked prefix digests' keys, then the written ones; ARGV: now, how many were asked,
# then each written one's idle seconds. A key holds the time it stops being live (the mock's
# clock decides, not Redis's); Redis drops it a second after that.
_CACHE = """
local now, asked = tonumber(ARGV[1]), tonumber(ARGV[2])
local live = {}
for i = 1, asked do
  local till = tonumber(redis.call('GET', KEYS[i]) or '0')
  live[i] = till > now and 1 or 0
end
for i = asked + 1, #KEYS do
  local old = tonumber(redis.call('GET', KEYS[i]) or '0')
  local till = math.max(old, now + tonumber(ARGV[i - asked + 2]))
  local keep = math.ceil((till - now) * 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%.17g', till), 'PX', keep)
end
return live
"""

# KEYS[1] the journal stream, KEYS[2] its counter; ARGV: the entry, the stream's cap.
_PUSH = """
local n = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '0-' .. n, 'e', ARGV[1])
return n
"""

# KEYS[1] the journal stream, KEYS[2] its counter, KEYS[3] where the last clear happened.
_CLEAR = """
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[3], n)
return n
"""


def _position(stream_id: Any) -> int:
    return int(_text(stream_id).partition("-")[2])


def _item(stream_id: Any, fields: Any) -> tuple[int, str]:
    """A stream entry: the position the stream gave it, and its JSON text."""
    return _position(stream_id), _text(fields[b"e"])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBackend(Backend):
    """The shared operations on a Redis server; keys under ``prefix``."""

    def __init__(self, url: str, prefix: str = "mockserver:") -> None:
        self.url = url
        self.prefix = prefix
        self.origin = uuid.uuid4().hex  # this process, to skip its own announcements
        self.client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._journal_size = 1000

    def _connect(self) -> Redis:
        try:
            from redis.asyncio import Redis
        except ImportError:
            raise RuntimeError(
                "--state redis:// needs the redis package: pip install 'mockserver[redis]'"
            ) from None
        return Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=2)

    async def start(self, host: Host, deliver: Deliver) -> None:
        """Connect and subscribe; raises when Redis cannot be reached (the server must not
        start on per-process state)."""
        self.host = host
        self.deliver = deliver
        self._journal_size = max(host.options.journal_size, 1)
        self.client = self._connect()
        await self._do(self.client.ping())
        self._admit = self.client.register_script(_ADMIT)
        self._spend = self.client.register_script(_SPEND)
        self._advance = self.client.register_script(_ADVANCE)
        self._push = self.client.register_script(_PUSH)
        self._cache = self.client.register_script(_CACHE)
        self._clear = self.client.register_script(_CLEAR)
        # A number for this process among all that share the store, so request ids stay
        # unique across replicas and ``x-mock-worker`` tells which one answered.
        number = await self._do(self.client.incr(self._key("processes")))
        host.options = replace(host.options, worker=int(number) - 1)
        self._pubsub = self.client.pubsub()
        await self._do(self._pubsub.subscribe(self._key("events")))
        # Scenarios sent through the admin API before this process started: it adopts them,
        # so a replica that joins (or restarts) answers like the others.
        for sent in await self._do(self.client.lrange(self._key("scenarios"), 0, -1)):
            method, payload = json.loads(sent)
            host.load(method, payload)
        self._listener = asyncio.create_task(self._listen())

    async def close(self) -> None:
        await self.unfollow()
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
        store = RedisBackend(url)
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

    async def cache(
        self, ask: Sequence[str], write: Sequence[tuple[str, float]], now: float
    ) -> list[bool]:
        keys = [self._key("pc", digest) for digest in [*ask, *(d for d, _ in write)]]
        args: list[str | int] = [repr(now), len(ask), *(repr(float(t)) for _, t in write)]
        live = await self._do(self._cache(keys=keys, args=args))
        return [bool(x) for x in live]

    async def push(self, items: list[tuple[str, int]]) -> None:
        """One pipeline for every entry of the batch (under load, many requests a trip)."""
        keys = [self._key("journal"), self._key("journal", "n")]
        pipe = self._redis().pipeline(transaction=False)
        for text, _ in items:
            await self._push(keys=keys, args=[text, self._journal_size], client=pipe)
        await self._do(pipe.execute())

    async def journal(self) -> list[tuple[int, str]]:
        rows = await self._do(self._redis().xrange(self._key("journal"))) or []
        return [_item(id, fields) for id, fields in rows if fields is not None]

    async def entry(self, seq: int) -> str | None:
        at = f"0-{seq}"
        rows = await self._do(self._redis().xrange(self._key("journal"), at, at)) or []
        return _item(rows[0][0], rows[0][1])[1] if rows and rows[0][1] is not None else None

    async def follow(self, last: int | None) -> Snapshot:
        """Where the journal stands, then a task that reads what comes after it."""
        pipe = self._redis().pipeline(transaction=True)
        pipe.get(self._key("journal", "n"))
        pipe.get(self._key("journal", "cleared"))
        pipe.xrange(self._key("journal"))
        got: list[Any] = await self._do(pipe.execute())
        recorded, cleared_at, rows = int(got[0] or 0), int(got[1] or 0), got[2]
        after = resume_after(last, recorded, cleared_at)
        items = [_item(id, fields) for id, fields in rows or [] if fields is not None]
        first = items[0][0] if items else recorded + 1
        if self._follower is None:
            self._follower = asyncio.create_task(self._follow(recorded))
        return Snapshot(recorded, cleared_at, first, [(p, i) for p, i in items if p > after])

    async def _follow(self, after: int) -> None:
        """Deliver each entry the stream gets; across outages, resume where it was."""
        cursor = f"0-{after}"
        while True:
            try:
                got: Any = await self._redis().xread({self._key("journal"): cursor}, block=1000)
                for _, rows in got or []:
                    for id, fields in rows:
                        cursor = _text(id)
                        if fields is not None:
                            self.deliver(*_item(id, fields))
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("mockserver: following the Redis journal: %s; retrying", err)
                await asyncio.sleep(0.5)

    async def unfollow(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None

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
            if what == "all":
                await self._delete("resp:*", "pc:*")

        await self._do(clear())
        event: dict[str, Any] = {"op": "reset", "what": what}
        if what in ("all", "journal"):
            journal = self._key("journal")
            keys = [journal, self._key("journal", "n"), self._key("journal", "cleared")]
            event["cleared"] = int(await self._do(self._clear(keys=keys)))
        self._forget(event)
        await self._announce(event)

    def _forget(self, event: dict[str, Any]) -> None:
        """This process's part of a reset: its own tables, and a clear its viewers see."""
        self.host.forget(event["what"])
        if "cleared" in event and self._follower is not None:
            self.deliver(event["cleared"], None)

    async def scenarios(self, method: str, payload: Any) -> None:
        self.host.load(method, payload)
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
                    self._forget(event)
                elif event["op"] == "scenarios":
                    self.host.load(event["method"], event["payload"])
                await self._redis().incr(event["ack"])
                await self._redis().expire(event["ack"], 60)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("mockserver: Redis events: %s; retrying", err)
                await asyncio.sleep(0.5)
