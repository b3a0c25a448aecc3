"""The one way a cache on the request path stays bounded: forgotten whole when full.

What these caches hold is made again in a few microseconds (a step's headers, a path's
target, a seed's hash state), and a client uses a handful of each; an order to evict by would
cost every request a move, where a rare clear costs one rebuild of each entry.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def keep(cache: dict[K, V], key: K, value: V, limit: int) -> V:
    """``value`` kept in ``cache`` under ``key`` (everything forgotten first when ``cache``
    holds ``limit``); returned, for ``found = keep(...)`` where a lookup missed."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value
