"""Shared test helpers: pytester, and a clock tests set by hand."""

from __future__ import annotations

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
