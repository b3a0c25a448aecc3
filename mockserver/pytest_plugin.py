"""pytest plugin: one mock server per session (or xdist worker), reset before every test.

Fixtures: ``mockserver`` (the server, reset per test), ``openai_client`` and
``async_openai_client`` (ready clients; they need the ``openai`` package), ``anthropic_client``
(it needs ``anthropic``), and
``mockserver_options`` (override it to change server settings for a whole suite).
Marker: ``@pytest.mark.mockserver("scenarios.yaml", ..., speed=0.01, unmatched="ignore")``.
"""

from __future__ import annotations

import importlib
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from .core.errors import Problem, ScenarioError
from .scenarios.lint import duplicate_names
from .scenarios.loader import load_paths
from .scenarios.scenario import Scenario
from .server import MockServer
from .state.live import Options

if TYPE_CHECKING:
    import openai

_CACHE: dict[tuple[str, float], list[Scenario]] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "mockserver_scenarios", "scenario files or folders loaded for every test", type="paths"
    )
    parser.addini("mockserver_speed", "delay factor for scripted delays (0: none)", default="0")
    parser.addini(
        "mockserver_prompt_cache",
        "simulate prompt caching by each provider's rules (as serve --prompt-cache)",
        type="bool",
        default=False,
    )
    parser.addini(
        "mockserver_unmatched",
        "'fail' (a test whose requests matched no scenario fails) or 'ignore'",
        default="fail",
    )


UNMATCHED = ("fail", "ignore")
MARKER_KWARGS = ("speed", "unmatched")


def _unmatched(value: object, where: str) -> str:
    """A typo must not silently turn the unmatched-request check off."""
    if value not in UNMATCHED:
        raise ValueError(f"{where}: {value!r} is not one of: {', '.join(map(repr, UNMATCHED))}")
    return str(value)


def _speed(value: object, where: str) -> float:
    try:
        speed = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a number (0: no delays)") from None
    if not speed >= 0:  # also refuses nan
        raise ValueError(f"{where}: must be >= 0, got {value!r}")
    return speed


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mockserver(*paths, speed=None, unmatched=None): scenario files for this test, "
        "relative to the test file or the rootdir",
    )
    try:
        _unmatched(config.getini("mockserver_unmatched"), "ini mockserver_unmatched")
        _speed(config.getini("mockserver_speed"), "ini mockserver_speed")
    except ValueError as err:
        raise pytest.UsageError(str(err)) from None


def _marker_settings(marker: pytest.Mark, unmatched: str, speed: float) -> tuple[str, float]:
    """The marker's ``unmatched`` and ``speed`` (or the given ones), checked before use."""
    unknown = sorted(set(marker.kwargs) - set(MARKER_KWARGS))
    if unknown:
        raise ValueError(
            f"mockserver marker: unknown argument(s) {', '.join(unknown)}; "
            f"expected: {', '.join(MARKER_KWARGS)}"
        )
    if marker.kwargs.get("unmatched") is not None:
        unmatched = _unmatched(marker.kwargs["unmatched"], "mockserver marker unmatched=")
    if marker.kwargs.get("speed") is not None:
        speed = _speed(marker.kwargs["speed"], "mockserver marker speed=")
    return unmatched, speed


def _load(path: Path) -> list[Scenario]:
    key = (str(path), path.stat().st_mtime if path.exists() else 0.0)
    if key not in _CACHE:
        _CACHE[key] = load_paths([path])
    return _CACHE[key]


def _resolve(arg: str | os.PathLike[str], item: pytest.Item) -> Path:
    """A marker's path: as given when absolute, else beside the test file, else under the
    rootdir; a missing file is an error naming every place tried."""
    path = Path(arg)
    tried = [path] if path.is_absolute() else [Path(item.path).parent / path]
    if not path.is_absolute():
        tried.append(Path(item.config.rootpath) / path)
    for place in tried:
        if place.exists():
            return place
    places = ", ".join(dict.fromkeys(str(p) for p in tried))
    raise ScenarioError([Problem(str(arg), None, "", f"not found; tried {places}")])


@pytest.fixture(scope="session")
def mockserver_options(pytestconfig: pytest.Config) -> Options:
    """Settings of the session's server. Override this fixture to change them: it must return
    an ``Options``; its ``speed`` is restored after each test a marker changed it for."""
    return Options(
        speed=_speed(pytestconfig.getini("mockserver_speed"), "mockserver_speed"),
        prompt_cache=bool(pytestconfig.getini("mockserver_prompt_cache")),
    )


@pytest.fixture(scope="session")
def _mockserver_session(
    pytestconfig: pytest.Config, mockserver_options: Options
) -> Iterator[MockServer]:
    if not isinstance(mockserver_options, Options):
        raise pytest.UsageError(
            "the mockserver_options fixture must return mockserver.Options, got "
            f"{type(mockserver_options).__name__}"
        )
    try:
        initial = [s for p in pytestconfig.getini("mockserver_scenarios") for s in _load(Path(p))]
        clashes = duplicate_names(initial)
        if clashes:
            raise ScenarioError(clashes)
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
    unmatched = str(request.config.getini("mockserver_unmatched"))
    try:
        if marker is not None:
            failure: str | None
            try:
                unmatched, options.speed = _marker_settings(marker, unmatched, speed)
                added = [s for arg in marker.args for s in _load(_resolve(arg, request.node))]
                clashes = duplicate_names([*server._initial, *added])
                if clashes:  # the same rule as within one file: a name is a scenario's identity
                    raise ScenarioError(clashes)
                server.add(*added)
            except ValueError as err:  # its message names the marker already
                failure = str(err)
            except (ScenarioError, OSError) as err:
                failure = f"mockserver marker: {err}"  # the first problem on the summary line
            else:
                failure = None
            if failure:  # outside the except: the report shows the problem, not a chain
                pytest.fail(failure, pytrace=False)
        yield server
    finally:
        # Also when setup failed: the next test must find the session's settings.
        options.speed = speed
    if unmatched == "fail" and server.unmatched:
        try:
            server.check()
        except AssertionError as err:
            failure = str(err)
        else:
            failure = None
        if failure:  # outside the except, or pytest prints the message twice, chained
            pytest.fail(failure, pytrace=False)


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


def _sdk(package: str, fixtures: str) -> Any:
    """The SDK package, or a failure that says how to get it: a client fixture that skipped
    instead would let a whole suite pass without running."""
    try:
        return importlib.import_module(package)
    except ImportError:
        pytest.fail(
            f"the {fixtures} need the {package} package: pip install {package}", pytrace=False
        )


def _openai() -> Any:
    return _sdk("openai", "openai_client and async_openai_client fixtures")


@pytest.fixture
def openai_client(
    mockserver: MockServer, _mockserver_tls: ssl.SSLContext
) -> Iterator[openai.OpenAI]:
    """A sync ``openai.OpenAI`` pointed at the mock, strict about the replies it accepts."""
    sdk = _openai()
    http = sdk.DefaultHttpxClient(verify=_mockserver_tls)
    with sdk.OpenAI(**_client_settings(mockserver), http_client=http) as client:
        yield client


@pytest.fixture
def async_openai_client(
    mockserver: MockServer, _mockserver_tls: ssl.SSLContext
) -> openai.AsyncOpenAI:
    """An ``openai.AsyncOpenAI`` pointed at the mock, for any async test runner.

    A plain (sync) fixture on purpose: async fixtures need a plugin to run them, and
    pytest-asyncio's default strict mode ignores ours ("requested an async fixture ... with
    no plugin or hook that handled it"), while anyio only runs those of its own tests. The
    client opens its connections on the test's event loop when the test uses it; keep-alive
    is off, so each connection closes on that loop as its response ends, and nothing is left
    to close after the loop is gone."""
    sdk = _openai()
    # The SDK's own HTTP library (httpx, or httpx2 in later releases), through its limits
    # object: the user's project may not have the other one.
    limits = sdk.DEFAULT_CONNECTION_LIMITS
    http = sdk.DefaultAsyncHttpxClient(
        verify=_mockserver_tls,
        limits=type(limits)(max_connections=limits.max_connections, max_keepalive_connections=0),
    )
    return cast(
        "openai.AsyncOpenAI", sdk.AsyncOpenAI(**_client_settings(mockserver), http_client=http)
    )


@pytest.fixture
def anthropic_client(mockserver: MockServer, _mockserver_tls: ssl.SSLContext) -> Iterator[Any]:
    """A sync ``anthropic.Anthropic`` pointed at the mock's Messages API (its base URL has no
    ``/v1``: the SDK adds it), strict about replies, no retries."""
    sdk = _sdk("anthropic", "anthropic_client fixture")
    http = sdk.DefaultHttpxClient(verify=_mockserver_tls)
    settings = {**_client_settings(mockserver), "base_url": mockserver.url}
    with sdk.Anthropic(**settings, http_client=http) as client:
        yield client


@pytest.fixture
def gemini_client(mockserver: MockServer, _mockserver_tls: ssl.SSLContext) -> Iterator[Any]:
    """A ``google.genai.Client`` pointed at the mock's Gemini API (its base URL is the bare
    root: the SDK adds the version), with the SDK's default of no retries."""
    sdk = _sdk("google.genai", "gemini_client fixture")
    options = {"base_url": mockserver.url, "client_args": {"verify": _mockserver_tls}}
    client = sdk.Client(api_key=mockserver.api_key, http_options=options)
    try:
        yield client
    finally:
        client.close()
