"""Every example in the README runs: each YAML block loads, each Python block does what it says."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from mockserver import MockServer, Options, load_paths, load_text
from mockserver.scenarios.lint import warnings
from mockserver.scenarios.loader import load_defaults

pytestmark = pytest.mark.usefixtures("sdk_imported")

README = (Path(__file__).parent.parent / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def python_block(marker: str) -> str:
    (found,) = [b for b in blocks("python") if marker in b]
    return found


TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
]
INCLUDED = {
    "common/greetings.yaml": "- {name: greeting, match: {last_user: hello}, reply: {content: hi}}\n",
    "tools/weather.yaml": "- {name: tool-weather, match: {tools: [get_weather]}, reply: {content: t}}\n",
}


def ask(text: str = "anything", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


# For every scenario of every README YAML example, a request it must answer (keyed by index
# only to keep them apart: an example is found by the names of its scenarios).
REACHES: dict[float, dict[str, dict[str, Any]]] = {
    0: {"weather": ask("How is the weather?")},
    1: {"greeting": ask("hello"), "tool-weather": ask(tools=TOOLS), "project-specific": ask()},
    2: {
        "everything-at-once": {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are helpful, and you know Paris."},
                {"role": "user", "content": "What is the weather in Paris?"},
            ],
            "tools": TOOLS,
            "tool_choice": "auto",
            "stream": False,
            "response_format": {"type": "text"},
            "metadata": {"team": "red"},
            "headers": {"x-tenant": "acme"},
        },
        "catch-all": ask(),
    },
    3: {
        "reasoning": ask(model="deepseek-r1"),
        "tools": ask(tools=TOOLS),
        "refusal": ask("something forbidden"),
        "several-choices": ask(n=2),
        "cut-short": ask("long"),
    },
    4: {"templated": ask("weather in Rome")},
    5: {"tool-round-trip": ask(tools=TOOLS)},
    6: {"slow": ask("slow please"), "explicit-chunks": ask("chunks", stream=True)},
    7: {
        "rate-limited-then-ok": ask("busy"),
        "bad-gateway-html": ask("html"),
        "slow-answer": ask("slow"),
        "drop": ask("drop", stream=True),
        "model-failed": {"_path": "/responses", "input": "this will fail", "stream": True},
    },
    8: {"three-a-minute": ask()},
    8.5: {
        "chat-how-is-the-weather-51219f15": {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "How is the weather?"}],
        }
    },
    9: {
        "claude-weather": {
            "_path": "/messages",
            "max_tokens": 50,
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "weather?"}],
        }
    },
    10: {
        "pinned": {"_path": "/embeddings", "input": "the pinned text"},
        "one-per-input": {"_path": "/embeddings", "input": ["a batch", "b"]},
        "noise": {"_path": "/embeddings", "input": "noise"},
        "embeddings-down": {"_path": "/embeddings", "input": "fail"},
    },
}


def _names(index: int) -> list[str]:
    text = blocks("yaml")[index]
    included = ["greeting", "tool-weather"] if "include:" in text else []
    return sorted([*re.findall(r"^(?:  )?- name: ([\w-]+)", text, re.M), *included])


def _reaches(index: int) -> dict[str, dict[str, Any]]:
    """The requests meant for the scenarios of README example ``index``."""
    (found,) = [r for r in REACHES.values() if sorted(r) == _names(index)]
    return {name: dict(body) for name, body in found.items()}


def test_every_yaml_example_is_covered() -> None:
    assert sorted(sorted(r) for r in REACHES.values()) == sorted(
        _names(i) for i in range(len(blocks("yaml")))
    )


@pytest.mark.parametrize("index", range(len(blocks("yaml"))))
def test_yaml_examples_serve_as_written(index: int, tmp_path: Path) -> None:
    """Each example is served whole; each of its scenarios answers the request meant for it,
    so none is shadowed by another (and ``validate`` warns about none)."""
    text = blocks("yaml")[index]
    if "include:" in text:
        for name, content in INCLUDED.items():
            (tmp_path / name).parent.mkdir()
            (tmp_path / name).write_text(content)
        (tmp_path / "example.yaml").write_text(text)
        scenarios = load_paths([tmp_path / "example.yaml"])
    else:
        scenarios = load_text(text, f"README.md#yaml{index}")
    assert [str(w) for w in warnings(scenarios)] == []
    wanted = _reaches(index)
    assert sorted(s.name for s in scenarios) == sorted(wanted)
    with MockServer(scenarios, options=Options(speed=0)) as server:
        for name, body in wanted.items():
            server.reset()
            headers = {"Authorization": "Bearer sk-readme", **body.pop("headers", {})}
            path = body.pop("_path", "/chat/completions")
            body = {"model": "gpt-4", **body}
            with contextlib.suppress(httpx.TransportError):  # the 'drop' fault may cut it
                httpx.post(f"{server.base_url}{path}", json=body, headers=headers)
            assert (name, server.last.scenario) == (name, name)


def test_tour_client_against_the_shipped_demo() -> None:
    code = python_block("127.0.0.1:8000")
    with MockServer(load_defaults()) as server:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(code.replace("http://127.0.0.1:8000/v1", server.base_url), {})
    greeting = "Hello! I am mockserver, a scripted stand-in for a chat model."
    assert out.getvalue() == f"{greeting}\n{greeting}\n{greeting}\n1536\n"


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


def test_agents_example(capsys: pytest.CaptureFixture[str]) -> None:
    exec(python_block("from agents import"), {})
    assert capsys.readouterr().out == "Hello from the agent's mock.\n"


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


def test_options_override_example(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(python_block("def mockserver_options"))
    pytester.makepyfile(
        """
        from mockserver import OPENAI

        def test_it(mockserver):
            assert (mockserver.options.profile, mockserver.options.speed) == (OPENAI, 0)
        """
    )
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:schemathesis",
        "-p", "no:faker", "-o", "asyncio_default_fixture_loop_scope=function",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
