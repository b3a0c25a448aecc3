"""pytest plugin: one mock server per session (or xdist worker), reset before every test.

Fixtures: ``mockserver`` (the server, reset per test), ``openai_client`` and
``async_openai_client`` (ready clients, when the ``openai`` package is installed), and
``mockserver_options`` (override it to change server settings for a whole suite).
Marker: ``@pytest.mark.mockserver("scenarios.yaml", ..., speed=0.01, unmatched="ignore")``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .errors import ScenarioError
from .loader import load_paths
from .scenario import Scenario
from .server import MockServer
from .state import Options

if TYPE_CHECKING:
    import openai

_CACHE: dict[tuple[str, float], list[Scenario]] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "mockserver_scenarios", "scenario files or folders loaded for every test", type="paths"
    )
    parser.addini("mockserver_speed", "delay factor for scripted delays (0: none)", default="0")
    parser.addini(
        "mockserver_unmatched",
        "'fail' (a test whose requests matched no scenario fails) or 'ignore'",
        default="fail",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mockserver(*paths, speed=None, unmatched=None): scenario files for this test, "
        "relative to the test file or the rootdir",
    )


def _load(path: Path) -> list[Scenario]:
    key = (str(path), path.stat().st_mtime if path.exists() else 0.0)
    if key not in _CACHE:
        _CACHE[key] = load_paths([path])
    return _CACHE[key]


def _resolve(arg: str | os.PathLike[str], item: pytest.Item) -> Path:
    path = Path(arg)
    if path.is_absolute():
        return path
    beside = Path(item.path).parent / path
    return beside if beside.exists() else Path(item.config.rootpath) / path


@pytest.fixture(scope="session")
def mockserver_options(pytestconfig: pytest.Config) -> Options:
    """Settings of the session's server. Override this fixture to change them."""
    return Options(speed=float(pytestconfig.getini("mockserver_speed")))


@pytest.fixture(scope="session")
def _mockserver_session(
    pytestconfig: pytest.Config, mockserver_options: Options
) -> Iterator[MockServer]:
    try:
        initial = [s for p in pytestconfig.getini("mockserver_scenarios") for s in _load(Path(p))]
    except ScenarioError as err:
        raise pytest.UsageError(f"mockserver_scenarios:\n{err}") from None
    server = MockServer(initial, options=mockserver_options)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mockserver(
    request: pytest.FixtureRequest, _mockserver_session: MockServer
) -> Iterator[MockServer]:
    """The session's server, reset for this test, with the marker's scenarios loaded.

    def test_reply(mockserver, openai_client):
        mockserver.add({"reply": {"content": "hi"}})
    """
    server = _mockserver_session
    options = server.options
    speed = options.speed
    server.reset()
    marker = request.node.get_closest_marker("mockserver")
    unmatched = request.config.getini("mockserver_unmatched")
    if marker is not None:
        try:
            for arg in marker.args:
                server.add(*_load(_resolve(arg, request.node)))
        except ScenarioError as err:
            pytest.fail(f"mockserver marker:\n{err}", pytrace=False)
        if marker.kwargs.get("speed") is not None:
            options.speed = float(marker.kwargs["speed"])
        unmatched = marker.kwargs.get("unmatched") or unmatched
    try:
        yield server
    finally:
        options.speed = speed
    if unmatched == "fail" and server.unmatched:
        try:
            server.check()
        except AssertionError as err:
            pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def _mockserver_tls() -> ssl.SSLContext:
    """One TLS context for every client: building one per client costs ~25 ms per test."""
    return ssl.create_default_context()


def _client_settings(server: MockServer) -> dict[str, Any]:
    """No retries (a scripted error surfaces at once) and strict checks of every reply."""
    return {
        "base_url": server.base_url,
        "api_key": server.api_key,
        "max_retries": 0,
        "_strict_response_validation": True,
    }


@pytest.fixture
def openai_client(
    mockserver: MockServer, _mockserver_tls: ssl.SSLContext
) -> Iterator[openai.OpenAI]:
    """A sync ``openai.OpenAI`` pointed at the mock, strict about the replies it accepts."""
    openai = pytest.importorskip("openai")
    http = openai.DefaultHttpxClient(verify=_mockserver_tls)
    with openai.OpenAI(**_client_settings(mockserver), http_client=http) as client:
        yield client


@pytest.fixture
async def async_openai_client(
    mockserver: MockServer, _mockserver_tls: ssl.SSLContext
) -> AsyncIterator[Any]:
    """An ``openai.AsyncOpenAI`` pointed at the mock (needs an async test runner)."""
    openai = pytest.importorskip("openai")
    http = openai.DefaultAsyncHttpxClient(verify=_mockserver_tls)
    async with openai.AsyncOpenAI(**_client_settings(mockserver), http_client=http) as client:
        yield client
