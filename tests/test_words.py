"""What the mock says about itself: help texts, the start-up banner, log lines, recordings."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from aiohttp import web

from mockserver import MockServer
from mockserver.cli import main
from mockserver.recording.record import Recorder
from mockserver.scenarios.loader import load_paths
from mockserver.state.live import Options
from tests.test_record import raw_upstream

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What the ``mockserver`` logger says, one line per record."""
    log = logging.getLogger("mockserver")
    saved = (log.level, log.propagate)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield out
    log.removeHandler(handler)
    log.level, log.propagate = saved


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main(argv)
    return " ".join(capsys.readouterr().out.split())


def test_help_and_package_say_what_the_mock_serves(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(["--help"], capsys)
    described = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["description"]
    assert "chat completions API" not in described  # not only chat completions any more
    for api in ("chat completions", "Responses", "embeddings", "Anthropic Messages"):
        assert api in described
    assert " ".join(described.split()) in text


def test_record_help_gives_no_default_for_what_is_required(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help(["record", "--help"], capsys)
    assert "--upstream URL the real API's base URL" in text
    assert "default: none" not in text.split("--upstream URL")[1].split("--redact")[0]
    assert "(default: None)" not in text
    assert "(default: False)" not in text
    assert "(default: [])" not in text
    assert "(required)" in text


def _banner(*args: str) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--quiet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline()]
        while banner[-1] not in ("  Ctrl+C to stop\n", ""):
            banner.append(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    return banner


def test_the_banner_says_where_state_is_kept() -> None:
    banner = _banner()
    assert banner[4] == (
        "  state:     in this process; --state redis://HOST:PORT/DB to share it between replicas\n"
    )
    assert banner[5] == "  Ctrl+C to stop\n"


def test_a_reload_that_worked_is_news_not_a_warning(tmp_path: Path, lines: io.StringIO) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("- {name: a, reply: {content: one}}\n")
    with MockServer([path], options=Options(watch=(str(path),), reload_interval=0.02)):
        path.write_text("- {name: a, reply: {content: two}}\n")
        deadline = time.monotonic() + 10
        while "reloaded" not in lines.getvalue():
            assert time.monotonic() < deadline, "no reload"
            time.sleep(0.02)
    assert "INFO mockserver: reloaded 1 scenario(s)\n" in lines.getvalue()


UPSTREAM = [{"name": "resp", "match": {"api": "responses"}, "reply": {"content": "Hello there"}}]


def test_the_recorder_logs_the_status_the_client_got(tmp_path: Path, lines: io.StringIO) -> None:
    """A streamed chat whose client leaves at [DONE] (the upstream keeps its connection open a
    while after it), and a streamed Responses request: each logged with its 200."""
    release = threading.Event()

    async def lingering(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {"model": "m", "choices": [{"index": 0, "delta": {"content": "Hello there"}}]}
        await response.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        return response

    try:
        with raw_upstream(lingering) as url:
            rec = Recorder(upstream=url, out=tmp_path)
            with MockServer([], options=Options(recorder=rec, quiet=False)) as server:
                with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as api:
                    ask = [{"role": "user", "content": "hi"}]
                    chunks = api.chat.completions.create(model="m", messages=ask, stream=True)
                    text = "".join(c.choices[0].delta.content or "" for c in chunks)
                    assert text == "Hello there"
                deadline = time.monotonic() + 10
                while not server.journal:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                release.set()
                assert server.journal[0].status == 200
    finally:
        release.set()
    with MockServer(UPSTREAM, options=Options(speed=0)) as upstream:
        rec = Recorder(upstream=upstream.base_url, out=tmp_path)
        with MockServer([], options=Options(recorder=rec, speed=0, quiet=False)) as server:
            with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as api:
                events = list(api.responses.create(model="m", input="hi", stream=True))
                assert events[-1].type == "response.completed"
            assert [e.status for e in server.journal] == [200]
    said = [x for x in lines.getvalue().splitlines() if x.startswith("INFO POST /v1/")]
    assert len(said) == 2, said
    assert said[0].startswith("INFO POST /v1/chat/completions 200 scenario=chat-hi-"), said
    assert said[1].startswith("INFO POST /v1/responses 200 scenario=responses-hi-"), said


EMBED = {"model": "text-embedding-3-small", "input": "sunny in Paris"}


def _embed(server: MockServer, **extra: Any) -> tuple[list[float], Any]:
    """The vector the SDK reads, and the JSON ``data`` the server sent."""
    with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as api:
        raw = api.embeddings.with_raw_response.create(**EMBED, **extra)
    return raw.parse().data[0].embedding, raw.http_response.json()["data"]


def _record_then_replay(out: Path, **extra: Any) -> tuple[str, Any, Any]:
    """The recording's text, and what the SDK got while recording and from the replay."""
    with MockServer([], options=Options(speed=0, quiet=True)) as upstream:
        rec = Recorder(upstream=upstream.base_url, out=out)
        with MockServer([], options=Options(recorder=rec, speed=0, quiet=True)) as server:
            recorded = _embed(server, **extra)
    (path,) = out.glob("*.yaml")
    assert load_paths([path])
    with MockServer([path], options=Options(speed=0, quiet=True)) as replay:
        replayed = _embed(replay, **extra)
        assert replay.journal[0].scenario == path.stem
    return path.read_text(), recorded, replayed


def _vectors(text: str) -> str:
    """The part of a recording that writes its vectors (the reply's ``embeddings``)."""
    start = text.index("embeddings:")
    return text[start : text.index("usage:", start)]


def test_an_embeddings_recording_is_compact_and_replays_the_same_floats(
    tmp_path: Path,
) -> None:
    text, (vector, _), (again, _) = _record_then_replay(tmp_path, encoding_format="float")
    assert len(vector) == 1536
    written = _vectors(text)
    assert len(written) < 37_000, len(written)  # one float per line: 46 KB
    assert written.count("\n") < 1536 / 4
    assert yaml.safe_load(text)["scenarios"][0]["reply"]["embeddings"] == [vector]
    assert again == vector


def test_an_embeddings_recording_in_base64_is_kept_as_base64(tmp_path: Path) -> None:
    """The openai SDK asks for base64 unless told otherwise: the file keeps OpenAI's string
    (8 KB for 1536 floats), and the replay sends the same bytes."""
    text, recorded, replayed = _record_then_replay(tmp_path)
    assert len(_vectors(text)) < 8_500, len(_vectors(text))
    assert replayed == recorded
    assert isinstance(recorded[1][0]["embedding"], str)


def test_the_banner_state_line_for_workers_and_a_store() -> None:
    from mockserver.cli import _state_note

    assert _state_note(None, 4).startswith("shared by the 4 workers; --state redis://")
    assert _state_note("redis://:s3cret@db:6379/0", 1) == (
        "redis://:***@db:6379/0 (shared by every replica that names it)"
    )
    assert "s3cret" not in _state_note("redis://app:s3cret@db:6379/0", 1)
