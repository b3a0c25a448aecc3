"""Request and token budgets per API key and model, answered like OpenAI's rate limiter.

A budget is a fixed window: it opens at the first request of a key and model, counts requests
and the tokens replies spend (their ``usage.total_tokens``, scripted or computed), and refills
when ``per`` seconds have passed on the server's clock. ``--speed`` does not shorten windows:
tests that want a quick refill write a short ``per`` or reset the server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.errors import APIError

ORGANIZATION = "org-mockserver"


@dataclass(frozen=True, eq=False)
class RateLimit:
    """One declared budget. Requests that share the declaration share its windows."""

    requests: int | None = None
    tokens: int | None = None
    per: float = 60.0


@dataclass
class _Window:
    start: float
    requests: int = 0
    tokens: int = 0


def duration(seconds: float) -> str:
    """OpenAI's way of writing a reset time: ``120ms``, ``8.64s``, ``6m0s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest, 3):g}s"


@dataclass
class Ticket:
    """An admitted request's place in a window: spend tokens on it, then read its headers."""

    limit: RateLimit
    window: _Window
    now: float

    def spend(self, tokens: int) -> None:
        self.window.tokens += tokens

    def headers(self) -> dict[str, str]:
        limit, window = self.limit, self.window
        reset = duration(max(window.start + limit.per - self.now, 0.0))
        out = {}
        if limit.requests is not None:
            out["x-ratelimit-limit-requests"] = str(limit.requests)
            out["x-ratelimit-remaining-requests"] = str(max(limit.requests - window.requests, 0))
            out["x-ratelimit-reset-requests"] = reset
        if limit.tokens is not None:
            out["x-ratelimit-limit-tokens"] = str(limit.tokens)
            out["x-ratelimit-remaining-tokens"] = str(max(limit.tokens - window.tokens, 0))
            out["x-ratelimit-reset-tokens"] = reset
        return out


class Budgets:
    """The open windows of every declared budget, by API key and model."""

    def __init__(self, prune_above: int = 10_000) -> None:
        self._windows: dict[tuple[RateLimit, str, str], _Window] = {}
        self._prune_above = prune_above

    def clear(self) -> None:
        self._windows.clear()

    def admit(
        self, limit: RateLimit, key: str, model: str, prompt_tokens: int, now: float
    ) -> Ticket:
        """Count one request against ``limit``, or raise the 429 OpenAI would send."""
        slot = (limit, key, model)
        window = self._windows.get(slot)
        if window is None or now >= window.start + limit.per:
            if window is None and len(self._windows) >= self._prune_above:
                self._prune(now)
            window = self._windows[slot] = _Window(start=now)
        ticket = Ticket(limit, window, now)
        if limit.requests is not None and window.requests >= limit.requests:
            raise _refusal(ticket, model, "requests", "RPM", limit.requests, window.requests, 1)
        if limit.tokens is not None and window.tokens + prompt_tokens > limit.tokens:
            raise _refusal(
                ticket, model, "tokens", "TPM", limit.tokens, window.tokens, prompt_tokens
            )
        window.requests += 1
        return ticket

    def _prune(self, now: float) -> None:
        """Forget windows that have ended: a load test with endless keys or models must not
        grow this table without bound (an ended window would be opened afresh anyway)."""
        self._windows = {
            slot: w for slot, w in self._windows.items() if now < w.start + slot[0].per
        }
        self._prune_above = max(self._prune_above, 2 * len(self._windows))


def _refusal(
    ticket: Ticket, model: str, kind: str, short: str, limit: int, used: int, requested: int
) -> APIError:
    wait = max(ticket.window.start + ticket.limit.per - ticket.now, 0.001)
    per = f"min ({short})" if ticket.limit.per == 60 else f"{ticket.limit.per:g}s"
    return APIError(
        429,
        f"Rate limit reached for {model} in organization {ORGANIZATION} on {kind} per {per}: "
        f"Limit {limit}, Used {used}, Requested {requested}. Please try again in "
        f"{duration(wait)}. Visit https://platform.openai.com/account/rate-limits to learn more.",
        type=kind,
        code="rate_limit_exceeded",
        headers={
            **ticket.headers(),
            "retry-after": str(max(math.ceil(wait), 1)),
            "retry-after-ms": str(math.ceil(wait * 1000)),
        },
        ticket=ticket,
    )
