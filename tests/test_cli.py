"""The command line, as a user runs it: a real process on a real port."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mockserver.cli import main

BODY = {"model": "gpt-4", "messages": [{"role": "user", "content": "hello there"}]}


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("mockserver listening on http://127.0.0.1:"), line
    return proc, line.split()[3]


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc, url = start()
    yield proc, url
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def test_serve_defaults_then_sigterm(served: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = served
    reply = httpx.post(f"{url}/chat/completions", json=BODY, headers={"Authorization": "Bearer k"})
    assert reply.json()["choices"][0]["message"]["content"].startswith("Hello! I am mockserver")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Traceback" not in err
    assert "POST /v1/chat/completions 200 scenario=greeting" in err


def test_rpm_budget(tmp_path: Path) -> None:
    proc, url = start("--quiet", "--rpm", "1")
    try:
        auth = {"Authorization": "Bearer k"}
        first = httpx.post(f"{url}/chat/completions", json=BODY, headers=auth)
        second = httpx.post(f"{url}/chat/completions", json=BODY, headers=auth)
    finally:
        proc.kill()
        proc.communicate()
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(second.headers["retry-after"]) <= 60


def test_unmatched_default_answers_with_the_default_reply(tmp_path: Path) -> None:
    only = tmp_path / "only.yaml"
    only.write_text("- match: {last_user: ping}\n  reply: {content: pong}\n")
    proc, url = start("--quiet", "--scenarios", str(only), "--unmatched", "default")
    try:
        reply = httpx.post(
            f"{url}/chat/completions", json=BODY, headers={"Authorization": "Bearer k"}
        )
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"].startswith(
        "This is a scripted reply from mockserver"
    )


def test_serve_refuses_a_broken_scenario_set(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenarios:\n  - reply:\n      contnet: hi\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--scenarios", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert f"{bad}:3: scenarios[0].reply.contnet: unknown key (did you mean 'content'?)" in (
        proc.stderr
    )


def test_validate_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text("scenarios:\n  - reply: {content: 3}\n")
    (tmp_path / "b.yaml").write_text("- error: {status: 700}\n- reply: {content: ok}\n")
    (tmp_path / "good.yaml").write_text("- reply: {content: ok}\n")
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{tmp_path}/a.yaml:2: scenarios[0].reply.content: expected a string or null, got 3",
        f"{tmp_path}/b.yaml:1: [0].error.status: must be <= 599, got 700",
        "2 problem(s)",
    ]
    assert main(["validate", str(tmp_path / "good.yaml")]) == 0


def test_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema)


def test_bad_flags_are_usage_errors() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--port", "70000"])
    assert caught.value.code == 2


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("mockserver")
    proc = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert "serve" in proc.stdout
    assert os.access(script, os.X_OK)


def test_workers_share_one_port() -> None:
    proc, url = start("--quiet", "--workers", "2")
    try:
        seen = {
            httpx.post(
                f"{url}/chat/completions", json=BODY, headers={"Authorization": "Bearer k"}
            ).headers["x-mock-worker"]
            for _ in range(30)
        }  # a new connection each time: the kernel spreads them over the workers
        admin = httpx.get(url.removesuffix("/v1") + "/_mock/journal")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            print("stderr of the stuck supervisor:", proc.communicate()[1])
    assert seen == {"0", "1"}
    assert admin.status_code == 200  # the supervisor gathers every worker's journal
    assert [e["worker"] for e in admin.json()["entries"]].count(None) == 0
    assert len(admin.json()["entries"]) == 30
    assert proc.returncode == 0
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port must be between 0 and 65535, got 70000"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--speed", "-1"], "--speed must be >= 0, got -1.0"),
        (["--rpm", "-5"], "--rpm must be >= 0, got -5"),
        (["--idle-timeout", "-1"], "--idle-timeout must be >= 0, got -1.0"),
    ],
)
def test_bad_serve_flags_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", *args])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"mockserver {version('mockserver')}\n"


def test_serve_help_documents_every_flag_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from mockserver.cli import _parser, _subparser

    serve = _subparser(_parser(), "serve")
    for action in serve._actions:
        if action.help == argparse.SUPPRESS or "--help" in action.option_strings:
            continue
        assert action.help, f"{action.option_strings} has no help"
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--port PORT 0 picks a free port (default: 8000)", "(default: 1.0)",
                  "(default: apifactory)", "(default: 127.0.0.1)", "(default: no limit)",
                  "(default: text)", "(default: 8388608)", "default: any key"):  # fmt: skip
        assert shown in text
    assert "(default: None)" not in text
    assert "(default: [])" not in text


def test_a_flag_error_prints_the_serve_usage(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["serve", "--port", "70000"], ["serve", "--sped", "0"]):
        with pytest.raises(SystemExit):
            main(argv)
        err = capsys.readouterr().err
        assert err.startswith("usage: mockserver serve [-h] [--host HOST]"), err
        assert "mockserver serve: error:" in err


def test_the_admin_token_from_the_environment_is_not_shown_in_help(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOCKSERVER_ADMIN_TOKEN", "s3cret-token")
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "s3cret-token" not in capsys.readouterr().out


def test_a_busy_port_says_so(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "mockserver", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 1
    assert proc.stderr == (
        f"mockserver: port {port} on 127.0.0.1 is already in use (another server, or an "
        "earlier mockserver still running). Pick another with --port N, or --port 0 for any "
        "free port.\n"
    )
    assert proc.stdout == ""


def test_banner_and_a_warning_for_an_empty_scenario_folder(tmp_path: Path) -> None:
    proc, url = start("--scenarios", str(tmp_path), "--log-format", "json")
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(5)]
        reply = httpx.post(
            f"{url}/chat/completions", json=BODY, headers={"Authorization": "Bearer k"}
        )
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert banner == [
        f"  scenarios: 0 from {tmp_path}\n",
        "  profile:   apifactory (the API factory relay's quirks; --profile openai for OpenAI's own behaviour)\n",
        f"  client:    base_url='{url}', any API key\n",
        "  state:     in this process; --state redis://HOST:PORT/DB to share it between replicas\n",
        "  Ctrl+C to stop\n",
    ]
    assert reply.status_code == 404
    assert out == "mockserver stopped\n"
    first = json.loads(err.splitlines()[0])
    assert first["level"] == "warning"
    assert first["message"].startswith(
        f"mockserver: no scenario loaded from {tmp_path}: every request will get a 404"
    )


def test_shadowed_scenarios_are_warned_about_at_start(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "- {name: all, reply: {content: a}}\n- {name: hidden, match: {model: x}, reply: {content: b}}\n"
    )
    proc, _ = start("--scenarios", str(tmp_path))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z WARNING {tmp_path}/s.yaml:2: scenario 'hidden' "
        r"can never answer: 'all' .*",
        err.splitlines()[0],
    ), err


@pytest.mark.parametrize(
    "command", [["schema"], ["validate", "mockserver/scenarios/defaults.yaml"], ["--help"]]
)
def test_a_closed_pipe_is_not_a_traceback(command: list[str]) -> None:
    """``mockserver schema | head``: the reader leaves before the writer is done."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # before the child writes a byte: every write hits a closed pipe
    _, err = proc.communicate(timeout=30)
    assert err == ""
    assert proc.returncode == 0
