"""Hot reload: an edited scenario file takes effect; a broken edit keeps the last good set."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest

from mockserver import MockServer, Options
from mockserver.scenarios.reload import Watcher

T = TypeVar("T")

_TICKS = itertools.count(1)


def write(path: Path, text: str) -> None:
    """Write and move the mtime forward, as an editor's save does, whatever the clock's grain."""
    path.write_text(text)
    stamp = 1_700_000_000 * 10**9 + next(_TICKS) * 10**9
    os.utime(path, ns=(stamp, stamp))


def reply(text: str) -> str:
    return f"- match: {{last_user: {{contains: ''}}}}\n  reply: {{content: {text}}}\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write(tmp_path / "a.yaml", reply("first"))
    return tmp_path


@pytest.fixture
def server(folder: Path) -> Iterator[MockServer]:
    options = Options(watch=(str(folder),), reload_interval=3600)
    with MockServer([folder], options=options) as server:
        watching(server)
        yield server


def on_watcher(server: MockServer, call: Callable[[Watcher], Coroutine[Any, Any, T]]) -> T:
    """Run ``call(watcher)`` on the server's loop and wait for its result."""
    watcher = server.state.watcher
    assert watcher is not None
    assert server._loop is not None
    return asyncio.run_coroutine_threadsafe(call(watcher), server._loop).result(timeout=10)


def watching(server: MockServer) -> None:
    """Wait until the watcher has learnt which files the set includes."""
    on_watcher(server, lambda w: w.ready.wait())


def check(server: MockServer) -> bool:
    """One look by the watcher, now, instead of waiting for its next poll."""
    return on_watcher(server, lambda w: w.check())


def ask(server: MockServer) -> str:
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    answer = client.chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": "x"}]
    )
    return answer.choices[0].message.content or ""


def test_an_edit_takes_effect_and_a_broken_one_keeps_the_last_good_set(
    server: MockServer, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert ask(server) == "first"
    assert check(server) is False
    write(folder / "a.yaml", reply("second"))
    assert check(server) is True
    assert ask(server) == "second"

    write(folder / "a.yaml", "- match: {last_user: x}\n  reply: {contnet: oops}\n")
    with caplog.at_level(logging.ERROR, logger="mockserver"):
        assert check(server) is False
    assert ask(server) == "second"
    problem = f"{folder}/a.yaml:2: [0].reply.contnet: unknown key (did you mean 'content'?)"
    assert "reload failed; still serving the last good set" in caplog.text
    assert problem in caplog.text
    listing = httpx.get(f"{server.url}/_mock/scenarios").json()
    assert listing["reload_problems"][0].startswith(problem)

    write(folder / "a.yaml", reply("third"))
    assert check(server) is True
    assert ask(server) == "third"
    assert "reload_problems" not in httpx.get(f"{server.url}/_mock/scenarios").json()


def test_added_and_removed_files_count_as_edits(server: MockServer, folder: Path) -> None:
    (folder / "sub").mkdir()
    write(folder / "sub" / "b.yaml", "- {name: b, match: {last_user: b}, reply: {content: b}}\n")
    assert check(server) is True
    assert [s.name for s in server.state.scenarios.scenarios] == ["a", "b"]
    (folder / "sub" / "b.yaml").unlink()
    assert check(server) is True
    assert [s.name for s in server.state.scenarios.scenarios] == ["a"]


def test_serve_reloads_on_its_own(folder: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0",
         "--scenarios", str(folder), "--reload-interval", "0.02"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        body = {"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}

        def content() -> str:
            answer = httpx.post(
                f"{url}/chat/completions", json=body, headers={"Authorization": "Bearer k"}
            )
            return str(answer.json()["choices"][0]["message"]["content"])

        assert content() == "first"
        write(folder / "a.yaml", reply("edited"))
        deadline = time.monotonic() + 10
        while content() != "edited":
            assert time.monotonic() < deadline, "the edit was not picked up"
            time.sleep(0.01)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert " INFO mockserver: reloaded 1 scenario(s)" in err


def test_an_edited_include_reloads_the_file_that_includes_it(tmp_path: Path) -> None:
    write(tmp_path / "part.yaml", reply("before"))
    write(tmp_path / "main.yaml", "include: [part.yaml]\nscenarios: []\n")
    options = Options(watch=(str(tmp_path / "main.yaml"),), reload_interval=3600)
    with MockServer([tmp_path / "main.yaml"], options=options) as server:
        watching(server)
        write(tmp_path / "part.yaml", reply("after"))
        assert check(server) is True
        assert ask(server) == "after"


def test_a_same_size_save_that_keeps_the_mtime_is_still_an_edit(tmp_path: Path) -> None:
    """A filesystem's clock has a grain: two saves inside one tick share their mtime. A file
    saved so recently is compared by content (git's "racy" files), so the edit is not lost."""
    path = tmp_path / "a.yaml"
    path.write_text(reply("one"))
    kept = path.stat().st_mtime_ns
    options = Options(watch=(str(path),), reload_interval=3600)
    with MockServer([path], options=options) as server:
        watching(server)
        assert check(server) is False
        path.write_text(reply("two"))
        os.utime(path, ns=(kept, kept))
        assert check(server) is True
        assert ask(server) == "two"
        assert check(server) is False


def test_an_edit_before_the_watcher_first_looks_is_not_lost(tmp_path: Path) -> None:
    """The watcher learns the includes in the background after the server starts; a save in
    between used to become its baseline, and the server kept the older set for good."""
    path = tmp_path / "a.yaml"
    write(path, "- {name: one, reply: {content: one}}\n")
    applied: list[str] = []

    async def scenario() -> None:
        watcher = Watcher([str(path)], lambda s: applied.append(s[0].name), 3600)
        write(path, "- {name: two, reply: {content: two}}\n")
        await watcher.learn_includes()
        assert await watcher.check() is False

    asyncio.run(scenario())
    assert applied == ["two"]
