"""Every example in the documentation (docs/ and README.md) runs as written.

Each ```yaml block loads and each of its scenarios answers a request meant for it; each
```python block is named (``# example: NAME``) and run by a test; the site builds with
``--strict`` (no broken link, anchor or nav entry). The blocks are read by ``tests/docs.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mockserver import MockServer, Options, load_paths, load_text
from mockserver.scenarios.lint import warnings
from mockserver.scenarios.loader import load_defaults
from tests.docs import ROOT, Block, blocks, example, pages, python_blocks, titled, yaml_blocks

pytestmark = pytest.mark.usefixtures("sdk_imported")

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
]
INCLUDED = {
    "common/greetings.yaml": "- {name: greeting, match: {last_user: hello}, reply: {content: hi}}\n",
    "tools/weather.yaml": "- {name: tool-weather, match: {tools: [get_weather]}, reply: {content: t}}\n",
}
BESIDE = {"voice.mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00 recorded speech"}
"""Files a ``raw: {file: ...}`` example names, written beside it."""
GREETING = "Hello! I am mockserver, a scripted stand-in for a chat model."


def ask(text: str = "anything", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


def silence(seconds: float) -> bytes:
    """A WAV of ``seconds`` of 16 kHz silence: an upload for the audio examples."""
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(16_000)
        file.writeframes(bytes(round(2 * 16_000 * seconds)))
    return out.getvalue()


def upload(name: str, seconds: float = 4.0, **fields: str) -> dict[str, Any]:
    """A transcription request: a multipart form (``_files``) rather than JSON."""
    form = {"model": "whisper-1", **fields}
    return {"_path": "/audio/transcriptions", "_files": {"file": (name, silence(seconds))}, **form}


# For every scenario of every YAML example, a request it must answer. An example is found by
# the names of its scenarios (the labels only keep the entries apart), so a block may move
# between pages, or appear on several, and keep its requests. An example whose scenarios
# match on a plain last user message (or on nothing) needs no entry: see ``_derived``.
REACHES: dict[str, dict[str, dict[str, Any]]] = {
    "includes": {"greeting": ask("hello"), "tool-weather": ask(tools=TOOLS), "project-specific": ask()},
    "matching": {
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
    "replies": {
        "reasoning": ask(model="deepseek-r1"),
        "tools": ask(tools=TOOLS),
        "refusal": ask("something forbidden"),
        "several-choices": ask(n=2),
        "cut-short": ask("long"),
    },
    "templates": {"templated": ask("weather in Rome")},
    "sequences": {"tool-round-trip": ask(tools=TOOLS)},
    "cadence": {"slow": ask("slow please"), "explicit-chunks": ask("chunks", stream=True)},
    "faults": {
        "rate-limited-then-ok": ask("busy"),
        "bad-gateway-html": ask("html"),
        "slow-answer": ask("slow"),
        "drop": ask("drop", stream=True),
        "model-failed": {"_path": "/responses", "input": "this will fail", "stream": True},
    },
    "recording": {
        "chat-how-is-the-weather-51219f15": {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "How is the weather?"}],
        }
    },
    "messages": {
        "claude-weather": {
            "_path": "/messages",
            "max_tokens": 50,
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "weather?"}],
        }
    },
    "embeddings": {
        "pinned": {"_path": "/embeddings", "input": "the pinned text"},
        "one-per-input": {"_path": "/embeddings", "input": ["a batch", "b"]},
        "noise": {"_path": "/embeddings", "input": "noise"},
        "embeddings-down": {"_path": "/embeddings", "input": "fail"},
    },
    "audio: speech": {
        "tts-overloaded": {"_path": "/audio/speech", "voice": "alloy", "input": "Read my voicemail"}
    },
    "raw file": {
        "recorded-speech": {"_path": "/audio/speech", "voice": "alloy", "input": "good morning"}
    },
    "audio: diarizing": {"support-call": upload("call.wav", model="gpt-4o-transcribe-diarize")},
    "audio: uploads": {
        "voice-note": upload("voice-note.wav"),
        "any-french-memo": upload("memo-3.m4a", language="fr"),
        "this-exact-recording": upload("any.wav", seconds=1.0),
    },
    "audio: moderation": {"threat": {"_path": "/moderations", "input": "I will hurt you"}},
    "recipe: agent": {"forecaster": {"_path": "/responses", "input": "hi", "tools": [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}},
    "recipe: streamed UI": {
        "typing": ask("Tell me a story", stream=True),
        "cut-off": ask("cut", stream=True),
        "stalled": ask("stall", stream=True),
    },
    "recipe: retries": {
        "flaky": ask("flaky"),
        "connection-reset": ask("reset"),
        "down": ask("down"),
    },
    "media: images": {
        "logo": {"_path": "/images/generations", "model": "gpt-image-2", "prompt": "our logo"},
        "moderated": {"_path": "/images/generations", "model": "gpt-image-2",
                      "prompt": "something violent"},
        "flaky-renderer": {"_path": "/images/generations", "model": "dall-e-3", "prompt": "koi"},
    },
    "media: tasks": {  # the relay's own routes: from the server's root, not under /v1
        "slow-render": {"_route": "/ai/seedance/videos", "model": "doubao-seedance-2-0",
                        "content": [{"type": "text", "text": "a slow pan"}]},
        "refused-job": {"_route": "/ai/seedance/videos", "model": "doubao-seedance-2-0",
                        "content": [{"type": "text", "text": "something forbidden"}]},
        "custom-poll-body": {"_route": "/ai/gemini/image/generate", "model": "nano-banana-pro",
                             "prompt": "a banana"},
    },
}  # fmt: skip


def _names(text: str) -> list[str]:
    included = ["greeting", "tool-weather"] if "include:" in text else []
    return sorted([*re.findall(r"^(?:  )?- name: ([\w-]+)", text, re.M), *included])


def _derived(scenario: dict[str, Any]) -> dict[str, Any] | None:
    """The chat request a scenario obviously answers, when its only condition is a plain
    ``last_user`` (a string, ``contains`` or ``exact``) or it has none."""
    match = scenario.get("match") or {}
    if set(match) - {"last_user"} or "name" not in scenario:
        return None
    text = match.get("last_user", "anything")
    if isinstance(text, dict):
        if set(text) - {"contains", "exact"}:
            return None
        (text,) = text.values()
    return ask(str(text))


def _reaches(text: str) -> dict[str, dict[str, Any]] | None:
    """The requests meant for the scenarios of a YAML example: from ``REACHES``, or derived
    when every scenario of the example is plain enough."""
    names = _names(text)
    for wanted in REACHES.values():
        if sorted(wanted) == names:
            return {name: dict(body) for name, body in wanted.items()}
    data = yaml.safe_load(text)
    scenarios = data.get("scenarios", []) if isinstance(data, dict) else data
    if "include:" in text or not isinstance(scenarios, list):
        return None
    derived = {s.get("name"): _derived(s) for s in scenarios if isinstance(s, dict)}
    if not derived or None in derived.values() or sorted(map(str, derived)) != names:
        return None
    return {str(name): body for name, body in derived.items() if body is not None}


YAML = yaml_blocks()


def test_every_yaml_example_is_covered() -> None:
    missing = [
        f"{page} (yaml block {index}): {', '.join(_names(text))}"
        for page, index, text in YAML
        if _reaches(text) is None
    ]
    assert missing == [], "add a request for each scenario to REACHES in tests/test_docs.py"
    derived = [(p, i) for p, i, text in YAML if _derived_only(text)]
    assert len(derived) >= 3  # the first scenario (on four pages), rate limits, cost
    used = {tuple(_names(text)) for _, _, text in YAML}
    assert sorted(tuple(sorted(r)) for r in REACHES.values() if tuple(sorted(r)) not in used) == []


def _derived_only(text: str) -> bool:
    return not any(sorted(r) == _names(text) for r in REACHES.values())


def _post(server: MockServer, body: dict[str, Any]) -> None:
    headers = {"Authorization": "Bearer sk-docs", **body.pop("headers", {})}
    url = server.base_url + body.pop("_path", "/chat/completions")
    if "_route" in body:  # a route outside /v1 (the relay's task APIs)
        url = server.url + body.pop("_route")
    files = body.pop("_files", None)
    body = {"model": "gpt-4", **body}
    # A fault may cut the connection ('drop', 'reset') or stall it ('stall').
    with contextlib.suppress(httpx.TransportError):
        if files is not None:  # an upload: the other keys are the form's fields
            httpx.post(url, data=body, files=files, headers=headers, timeout=0.5)
        else:
            httpx.post(url, json=body, headers=headers, timeout=0.5)


@pytest.mark.parametrize(("page", "index", "text"), YAML, ids=[f"{p}#{i}" for p, i, _ in YAML])
def test_yaml_examples_serve_as_written(page: str, index: int, text: str, tmp_path: Path) -> None:
    """Each example is served whole; each of its scenarios answers the request meant for it,
    so none is shadowed by another (and ``validate`` warns about none)."""
    beside = {name: data for name, data in BESIDE.items() if f"file: {name}" in text}
    if "include:" in text or beside:
        for name, content in INCLUDED.items():
            (tmp_path / name).parent.mkdir(exist_ok=True)
            (tmp_path / name).write_text(content)
        for name, data in beside.items():
            (tmp_path / name).write_bytes(data)
        (tmp_path / "example.yaml").write_text(text)
        scenarios = load_paths([tmp_path / "example.yaml"])
    else:
        scenarios = load_text(text, f"{page}#yaml{index}")
    assert [str(w) for w in warnings(scenarios)] == []
    wanted = _reaches(text)
    assert wanted is not None, f"{page}: no requests in REACHES for {_names(text)}"
    assert sorted(s.name for s in scenarios) == sorted(wanted)
    with MockServer(scenarios, options=Options(speed=0)) as server:
        for name, body in wanted.items():
            server.reset()
            _post(server, body)
            deadline = time.monotonic() + 5  # a stalled stream is journalled once cut
            while not server.journal and time.monotonic() < deadline:
                time.sleep(0.01)
            assert (name, server.last.scenario) == (name, name)


def test_python_examples_are_named_once() -> None:
    unnamed = [block.where for block in python_blocks() if block.name is None]
    assert unnamed == [], "each ```python block starts with '# example: NAME'"
    names = [block.name for block in python_blocks() if block.name is not None]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_every_python_example_is_run_by_a_test() -> None:
    sources = "\n".join(
        path.read_text()
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.name != "docs.py" and "node_modules" not in path.parts
    )
    unrun = [
        f"{block.where}: {block.name}"
        for block in python_blocks()
        if block.name is not None
        and f'"{block.name}"' not in sources
        and f"'{block.name}'" not in sources
    ]
    assert unrun == [], 'a test runs each example: example("NAME")'


def test_example_names_the_pages_it_searched() -> None:
    with pytest.raises(LookupError, match=r"'# example: nowhere' in README\.md, docs/"):
        example("nowhere")


def _run(code: str, **replace: str) -> str:
    for old, new in replace.items():
        code = code.replace(old, new)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {})
    return out.getvalue()


def test_tour_client_against_the_shipped_demo() -> None:
    with MockServer(load_defaults()) as server:
        out = _run(example("tour-client"), **{"http://127.0.0.1:8000/v1": server.base_url})
    assert out == f"{GREETING}\n{GREETING}\n{GREETING}\n1536\n"


def test_getting_started_clients_against_the_shipped_demo() -> None:
    with MockServer(load_defaults()) as server:
        out = _run(example("getting-started-clients"), **{"http://127.0.0.1:8000": server.url})
    assert out == f"{GREETING}\n{GREETING}\n"


def test_agents_example() -> None:
    assert _run(example("agents-hello")) == "Hello from the agent's mock.\n"


@pytest.mark.parametrize("name", ["outside-pytest", "rate-limit-retry"])
def test_standalone_example(name: str) -> None:
    _run(example(name))


def _pytest(pytester: pytest.Pytester) -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:schemathesis",
        "-p", "no:faker", "-o", "asyncio_default_fixture_loop_scope=function",
    )  # fmt: skip


def _weather() -> str:
    (first,) = [b for b in blocks("yaml") if b.page == "README.md" and b.index == 0]
    assert _names(first.text) == ["weather"]
    return first.text


@pytest.mark.parametrize("name", ["tour-pytest", "pytest-marker"])
def test_pytest_example(name: str, pytester: pytest.Pytester) -> None:
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "weather.yaml").write_text(_weather())
    code = example(name)
    pytester.makepyfile(test_example=code)
    _pytest(pytester).assert_outcomes(passed=code.count("\ndef test_"))


def test_options_override_example(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(example("options-override"))
    pytester.makepyfile(
        """
        from mockserver import OPENAI

        def test_it(mockserver):
            assert (mockserver.options.profile, mockserver.options.speed) == (OPENAI, 0)
        """
    )
    _pytest(pytester).assert_outcomes(passed=1)


RECIPES = {
    "agent-test": "scenarios/forecaster.yaml",
    "streamed-ui-test": "scenarios/ui.yaml",
    "retries-test": "scenarios/retries.yaml",
    "cost-test": "scenarios/priced.yaml",
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe(name: str, pytester: pytest.Pytester) -> None:
    """A recipe's test file passes with the scenario file its page shows."""
    (pytester.path / "scenarios").mkdir()
    (pytester.path / RECIPES[name]).write_text(titled(RECIPES[name]))
    code = example(name)
    pytester.makepyfile(test_recipe=code)
    _pytest(pytester).assert_outcomes(passed=code.count("\ndef test_"))


def _mentions(pattern: str) -> list[tuple[Path, str]]:
    return [(path, found) for path in pages() for found in re.findall(pattern, path.read_text())]


def test_documented_validation_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mockserver.cli import main

    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "weather.yaml").write_text(_weather().replace("content:", "contnet:"))
    assert main(["validate", str(folder)]) == 1
    err = capsys.readouterr().err
    documented = _mentions(r"(scenarios/weather\.yaml:\d+: .*?)(?:`|\n)")
    assert len(documented) >= 2  # the README's tour and Getting started
    for path, message in documented:
        assert f"{tmp_path}/{message}" in err, path


def test_documented_serve_flags_are_the_real_ones() -> None:
    from mockserver.cli import _parser

    (usage,) = [
        b.text
        for b in blocks("text")
        if b.page == "docs/serving.md" and "mockserver serve" in b.text
    ]
    flags = re.search(r"mockserver serve (\[--host.*?)\nmockserver validate", usage, re.S)
    assert flags is not None
    documented = set(re.findall(r"--[a-z-]+", flags.group(1)))
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


def test_readme_links_resolve() -> None:
    """The README is read on the repository's front page, outside the site: its relative
    links must name files that exist (the site's own links are checked by --strict)."""
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links to the documentation"
    assert [t for t in local if not (ROOT / t).exists()] == []


def test_the_site_builds_strict(tmp_path: Path) -> None:
    """What CI runs (make docs-build): a broken link, anchor or nav entry, or a page left out
    of the nav, fails the build."""
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "recipes" / "agent" / "index.html").is_file()


def test_block_parser_takes_indented_and_titled_fences() -> None:
    from tests.docs import parse

    text = (
        "- item\n\n    ```python\n    # example: x\n    print(1)\n    ```\n\n"
        '````markdown\n```yaml\na: 1\n```\n````\n```yaml title="s/x.yaml"\n- name: a\n```\n'
    )
    assert parse(text, "p") == [
        Block("p", 0, "python", 3, "# example: x\nprint(1)\n"),
        Block("p", 0, "markdown", 8, "```yaml\na: 1\n```\n"),
        Block("p", 0, "yaml", 13, "- name: a\n", "s/x.yaml"),
    ]
