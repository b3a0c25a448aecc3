"""What the pytest plugin prints when a test goes wrong, and what it needs installed: asserted
on real pytest sessions (pytester)."""

from __future__ import annotations

import pytest

from tests.test_pytest_plugin import INNER

pytestmark = pytest.mark.usefixtures("sdk_imported")


def test_client_fixtures_need_no_httpx(pytester: pytest.Pytester) -> None:
    """Current openai and anthropic releases use ``httpx2``: a project that installed only
    them has no ``httpx``, and ``async_openai_client`` failed with "No module named 'httpx'"."""
    pytester.makeconftest(
        """
        import sys

        sys.modules["httpx"] = None  # import httpx: ImportError, as if it were not installed
        """
    )
    pytester.makepyfile(
        """
        def test_sync(mockserver, openai_client, anthropic_client):
            mockserver.add({"reply": {"content": "sync"}})
            reply = openai_client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "x"}])
            assert reply.choices[0].message.content == "sync"
            said = anthropic_client.messages.create(
                model="claude", max_tokens=9, messages=[{"role": "user", "content": "x"}])
            assert said.content[0].text == "sync"

        async def test_async(mockserver, async_openai_client):
            mockserver.add({"reply": {"content": "async"}})
            reply = await async_openai_client.chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "x"}])
            assert reply.choices[0].message.content == "async"
        """
    )
    result = pytester.runpytest_subprocess(*INNER, "-o", "asyncio_mode=auto")
    result.assert_outcomes(passed=2)


def test_failures_read_once_with_their_reason_on_the_summary_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary said ``Failed: mockserver marker:`` and no more; the marker's reason was
    printed twice; the unmatched check's message twice, around "During handling of the above
    exception"; a missing file named one of the places tried."""
    monkeypatch.setenv("COLUMNS", "400")  # summary lines are cut at the terminal's width
    pytester.mkdir("tests")
    pytester.makepyfile(
        **{
            "tests/test_output": """
            import openai, pytest

            @pytest.mark.mockserver("missing.yaml")
            def test_missing(mockserver):
                pass

            @pytest.mark.mockserver(speed="fast")
            def test_bad_speed(mockserver):
                pass

            def test_miss(openai_client):
                with pytest.raises(openai.NotFoundError):
                    openai_client.chat.completions.create(
                        model="gpt-4", messages=[{"role": "user", "content": "goodbye"}])
            """
        }
    )
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(passed=1, errors=3)
    out = result.stdout.str()
    root = pytester.path
    missing = (
        f"mockserver marker: missing.yaml: not found; tried {root}/tests/missing.yaml, "
        f"{root}/missing.yaml"
    )
    result.stdout.fnmatch_lines(
        [
            "*short test summary info*",
            f"ERROR tests/test_output.py::test_missing - Failed: {missing}",
            "ERROR tests/test_output.py::test_bad_speed - Failed: mockserver marker speed=: "
            "'fast' is not a number (0: no delays)",
            "ERROR tests/test_output.py::test_miss - Failed: mockserver: 1 request(s) matched "
            "no scenario:",
        ]
    )
    assert out.count(missing) == 2  # the report, and its summary line
    assert out.count("'fast' is not a number") == 2
    assert "mockserver marker:\nmockserver marker" not in out
    assert "During handling of the above exception" not in out
    assert out.count("1 request(s) matched no scenario") == 2
