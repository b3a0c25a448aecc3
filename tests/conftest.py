"""Shared test helpers: pytester, and a clock tests set by hand."""

from __future__ import annotations

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
