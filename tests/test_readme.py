"""Every example in the README runs: each YAML block loads, each Python block does what it says."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path

import pytest

from mockserver import MockServer, load_paths, load_text
from mockserver.loader import load_defaults

pytestmark = pytest.mark.usefixtures("sdk_imported")

README = (Path(__file__).parent.parent / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def python_block(marker: str) -> str:
    (found,) = [b for b in blocks("python") if marker in b]
    return found


@pytest.mark.parametrize("index", range(len(blocks("yaml"))))
def test_yaml_examples_load(index: int, tmp_path: Path) -> None:
    text = blocks("yaml")[index]
    if "include:" not in text:
        assert load_text(text, f"README.md#yaml{index}")
        return
    for name in ("common/greetings.yaml", "tools/weather.yaml"):
        (tmp_path / name).parent.mkdir()
        (tmp_path / name).write_text(f"- {{name: {name}, reply: {{content: x}}}}\n")
    (tmp_path / "example.yaml").write_text(text)
    names = [s.name for s in load_paths([tmp_path / "example.yaml"])]
    assert names == ["common/greetings.yaml", "tools/weather.yaml", "project-specific"]


def test_tour_client_against_the_shipped_demo() -> None:
    code = python_block("127.0.0.1:8000")
    with MockServer(load_defaults()) as server:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(code.replace("http://127.0.0.1:8000/v1", server.base_url), {})
    greeting = "Hello! I am mockserver, a scripted stand-in for a chat model."
    assert out.getvalue() == f"{greeting}\n{greeting}"


def test_pytest_example(pytester: pytest.Pytester) -> None:
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "weather.yaml").write_text(blocks("yaml")[0])
    pytester.makepyfile(test_example=python_block("@pytest.mark.mockserver"))
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:schemathesis",
        "-p", "no:faker",
        "-o", "asyncio_default_fixture_loop_scope=function",
    )  # fmt: skip
    result.assert_outcomes(passed=2)


def test_outside_pytest_example() -> None:
    exec(python_block("server.check()"), {})


def test_rate_limit_example() -> None:
    exec(python_block("x-ratelimit-remaining-requests"), {})


def test_documented_validation_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mockserver.cli import main

    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "weather.yaml").write_text(blocks("yaml")[0].replace("content:", "contnet:"))
    assert main(["validate", str(folder)]) == 1
    documented = re.search(r"`(scenarios/weather\.yaml:\d+: .*?)`", README)
    assert documented is not None
    assert f"{tmp_path}/{documented.group(1)}" in capsys.readouterr().err


def test_documented_serve_flags_are_the_real_ones() -> None:
    from mockserver.cli import _parser

    usage = re.search(r"mockserver serve (\[--host.*?)\nmockserver validate", README, re.S)
    assert usage is not None
    documented = set(re.findall(r"--[a-z-]+", usage.group(1)))
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    serve = commands.choices["serve"]
    real = {
        flag
        for action in serve._actions
        if action.help != argparse.SUPPRESS
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help"
    }
    assert documented == real
