"""Shared test helpers: pytester, and a clock tests set by hand."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["pytester"]


class Clock:
    """An injectable ``Options.clock``: it says what ``now`` says."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def sdk_imported() -> None:
    """Make one real request with the openai SDK before any in-process pytester session.

    pytester removes the modules an inner session imported; the SDK's HTTP stack imports part
    of itself on the first request, so if that happened inside an inner session, the outer
    one would later hold two copies of its exception classes and mis-map connection errors."""
    import openai

    from mockserver import MockServer

    with MockServer([{"reply": {"content": "warm"}}]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        client.close()


@pytest.fixture(autouse=True)
def _close_sdk_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close the ``openai.OpenAI`` clients a test leaves open when it ends: otherwise their
    sockets are found by the garbage collector in a later test, whose run then fails on the
    ResourceWarning (warnings are errors here) though it did nothing wrong."""
    import openai

    opened: list[openai.OpenAI] = []
    original = openai.OpenAI.__init__

    def init(self: openai.OpenAI, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(openai.OpenAI, "__init__", init)
    yield
    for client in opened:
        client.close()


@pytest.fixture(autouse=True)
def _no_leftover_event_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Close an event loop a synchronous test left as the main thread's current loop (a
    library's ``asyncio.get_event_loop()`` makes one and never closes it): otherwise the
    garbage collector finds it in a later test, whose run then fails on the ResourceWarning."""
    yield
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        return  # an async test's loop is its runner's to close
    local = getattr(asyncio.get_event_loop_policy(), "_local", None)
    loop = getattr(local, "_loop", None)
    if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_running():
        if not loop.is_closed():
            loop.close()
        asyncio.set_event_loop(None)
