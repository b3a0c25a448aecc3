"""The server's settings (``Options``), shared by the CLI, the pytest plugin and ``MockServer``."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from typing import Protocol as Interface

from aiohttp import web

from ..core.profiles import APIFACTORY, Profile
from ..core.request import Request
from ..protocols import Lookup, Protocol
from ..scenarios.matching import Resolution
from ..scenarios.ratelimit import RateLimit
from ..scenarios.scenario import Scenario
from .journal import Entry

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
