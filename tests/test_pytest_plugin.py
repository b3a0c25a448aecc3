"""The pytest plugin, driven through real pytest sessions (pytester)."""

from __future__ import annotations

import openai
import pytest

from mockserver import MockServer

pytestmark = pytest.mark.usefixtures("sdk_imported")

INNER = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:faker",
    "-p",
    "no:schemathesis",
    "-o",
    "asyncio_default_fixture_loop_scope=function",
)

SCENARIO = """
scenarios:
  - name: hello
    match: {last_user: {contains: hello}}
    reply: {content: "Hello from the fixture file."}
"""


def test_marker_fixture_and_client(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", hello=SCENARIO)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.mockserver("hello.yaml")
        def test_file(mockserver, openai_client):
            reply = openai_client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "hello?"}])
            assert reply.choices[0].message.content == "Hello from the fixture file."
            assert mockserver.assert_called("hello", times=1)[0].messages[-1]["content"] == "hello?"
            assert mockserver.base_url.endswith("/v1")

        def test_inline(mockserver, openai_client):
            mockserver.add({"reply": {"content": "inline"}})
            reply = openai_client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "x"}])
            assert reply.choices[0].message.content == "inline"
            assert mockserver.last.body["model"] == "gpt-4"

        def test_reset_between_tests(mockserver):
            assert mockserver.journal == []
            assert len(mockserver.state.scenarios) == 0

        async def test_async(mockserver, async_openai_client):
            mockserver.add("- reply: {content: async}\\n")
            reply = await async_openai_client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "x"}])
            assert reply.choices[0].message.content == "async"
        """
    )
    result = pytester.runpytest_subprocess(*INNER, "-o", "asyncio_mode=auto")
    result.assert_outcomes(passed=4)


def test_unmatched_request_fails_the_test_with_an_explanation(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", hello=SCENARIO)
    pytester.makepyfile(
        """
        import openai, pytest

        @pytest.mark.mockserver("hello.yaml")
        def test_miss(openai_client):
            with pytest.raises(openai.NotFoundError):
                openai_client.chat.completions.create(
                    model="gpt-4", messages=[{"role": "user", "content": "goodbye"}])

        @pytest.mark.mockserver("hello.yaml", unmatched="ignore")
        def test_miss_allowed(openai_client):
            with pytest.raises(openai.NotFoundError):
                openai_client.chat.completions.create(
                    model="gpt-4", messages=[{"role": "user", "content": "goodbye"}])
        """
    )
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*mockserver: 1 request(s) matched no scenario:",
            "*POST /v1/chat/completions: mockserver: no scenario matched this request (last user "
            "message 'goodbye', model 'gpt-4'). Nearest: 'hello' (*hello.yaml:2): "
            "last_user contains 'hello', got 'goodbye'",
        ]
    )


def test_broken_scenario_file_is_a_located_failure(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", broken="- reply: {contents: x}\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.mockserver("broken.yaml")
        def test_it(mockserver):
            pass
        """
    )
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*broken.yaml:1: [[]0[]].reply.contents: unknown key*"])


def test_ini_scenarios_and_speed(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", hello=SCENARIO)
    pytester.makeini("[pytest]\nmockserver_scenarios = hello.yaml\nmockserver_speed = 0\n")
    pytester.makepyfile(
        """
        def test_default_scenarios(mockserver, openai_client):
            reply = openai_client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "hello"}])
            assert reply.choices[0].message.content == "Hello from the fixture file."
            assert mockserver.options.speed == 0
        """
    )
    pytester.runpytest(*INNER).assert_outcomes(passed=1)


def test_mockserver_outside_pytest() -> None:
    with MockServer([{"reply": {"content": "scripted"}}]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key)
        reply = client.chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "x"}]
        )
        assert reply.choices[0].message.content == "scripted"
        server.check()


def test_xdist_gives_each_worker_its_own_server(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", hello=SCENARIO)
    pytester.makepyfile(
        """
        import os, pytest

        @pytest.mark.parametrize("n", range(8))
        @pytest.mark.mockserver("hello.yaml")
        def test_worker(mockserver, openai_client, n):
            reply = openai_client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "hello"}])
            assert reply.choices[0].message.content == "Hello from the fixture file."
            assert len(mockserver.journal) == 1
            with open(f"seen-{os.environ['PYTEST_XDIST_WORKER']}-{n}", "w") as f:
                f.write(str(mockserver.port))
        """
    )
    result = pytester.runpytest_subprocess(*INNER, "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=8)
    ports: dict[str, set[str]] = {}
    for path in pytester.path.glob("seen-*"):
        ports.setdefault(path.name.split("-")[1], set()).add(path.read_text())
    assert sorted(ports) == ["gw0", "gw1"]
    assert all(len(p) == 1 for p in ports.values()), ports
    assert ports["gw0"] != ports["gw1"]


def test_anyio_users_get_the_async_client(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.mark.anyio
        async def test_anyio(mockserver, async_openai_client):
            mockserver.add({"reply": {"content": "from anyio"}})
            reply = await async_openai_client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "x"}])
            assert reply.choices[0].message.content == "from anyio"
        """
    )
    pytester.runpytest_subprocess(*INNER, "-o", "asyncio_mode=strict").assert_outcomes(passed=1)


def test_async_client_under_strict_mode(pytester: pytest.Pytester) -> None:
    """pytest-asyncio's default mode: no ``asyncio_mode = auto``, tests marked one by one."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_plain(mockserver, async_openai_client):
            mockserver.add({"reply": {"content": "strict"}})
            reply = await async_openai_client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "x"}])
            assert reply.choices[0].message.content == "strict"

        @pytest.mark.asyncio
        async def test_stream_on_a_new_loop(mockserver, async_openai_client):
            mockserver.add({"reply": {"content": "one two three"}})
            stream = await async_openai_client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "x"}], stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == "one two three"
        """
    )
    result = pytester.runpytest_subprocess(*INNER, "-W", "error", "-o", "asyncio_mode=strict")
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        (
            "mockserver_unmatched=ignor",
            "ini mockserver_unmatched: 'ignor' is not one of: 'fail', 'ignore'",
        ),
        ("mockserver_speed=fast", "ini mockserver_speed: 'fast' is not a number"),
        ("mockserver_speed=-1", "ini mockserver_speed: must be >= 0, got '-1'"),
    ],
)
def test_a_typo_in_the_ini_is_a_usage_error(
    pytester: pytest.Pytester, ini: str, message: str
) -> None:
    pytester.makepyfile("def test_nothing(mockserver): pass")
    result = pytester.runpytest(*INNER, "-o", ini)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_a_typo_in_the_marker_fails_the_test_and_the_next_test_is_unharmed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.mockserver(unmatched="ignor")
        def test_unmatched_typo(mockserver):
            pass

        @pytest.mark.mockserver(speeed=1)
        def test_unknown_argument(mockserver):
            pass

        @pytest.mark.mockserver(speed="fast")
        def test_bad_speed(mockserver):
            pass

        @pytest.mark.mockserver("missing.yaml", speed=0.5)
        def test_missing_file_after_the_speed_was_set(mockserver):
            pass

        def test_next(mockserver):
            assert mockserver.options.speed == 0.0
            assert len(mockserver.state.scenarios) == 0
        """
    )
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(passed=1, errors=4)
    result.stdout.fnmatch_lines(
        [
            "*mockserver marker unmatched=: 'ignor' is not one of: 'fail', 'ignore'*",
            "*mockserver marker: unknown argument(s) speeed; expected: speed, unmatched*",
            "*mockserver marker speed=: 'fast' is not a number*",
            "*missing.yaml: not found; tried*",
        ],
        consecutive=False,
    )


def test_client_fixtures_fail_without_openai(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys
        import pytest

        @pytest.fixture(autouse=True)
        def no_openai(monkeypatch):
            monkeypatch.setitem(sys.modules, "openai", None)  # import openai: ImportError

        def test_sync(openai_client):
            pass

        def test_async(async_openai_client):
            pass
        """
    )
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*need the openai package: pip install openai*"])


def test_overriding_options_must_return_options(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def mockserver_options():
            return {"speed": 1}
        """
    )
    pytester.makepyfile("def test_it(mockserver): pass")
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*mockserver_options fixture must return mockserver.Options, got dict*"]
    )


def test_marker_files_may_not_reuse_a_name(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", hello=SCENARIO, again=SCENARIO.replace("Hello", "Again"))
    pytester.makeini("[pytest]\nmockserver_scenarios = hello.yaml\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.mockserver("again.yaml")
        def test_clash(mockserver):
            pass

        def test_next(mockserver):
            assert [s.name for s in mockserver.state.scenarios.scenarios] == ["hello"]
        """
    )
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*again.yaml:2: the name 'hello' is already used by the scenario at *hello.yaml:2*"]
    )
