"""``make run`` installs what serving needs; ``make test`` and ``make lint`` everything."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def planned(target: str, venv: Path) -> list[str]:
    """The commands ``make`` would run for ``target`` on a machine without ``venv``."""
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", target, f"VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_run_installs_only_the_runtime(tmp_path: Path) -> None:
    commands = planned("run", tmp_path / "venv")
    assert f"{tmp_path}/venv/bin/python -m pip install -q -e ." in commands
    assert not any("[test]" in c for c in commands)
    assert commands[-1].startswith(f"{tmp_path}/venv/bin/mockserver serve")


@pytest.mark.parametrize("target", ["test", "lint"])
def test_test_and_lint_install_everything(target: str, tmp_path: Path) -> None:
    commands = planned(target, tmp_path / "venv")
    assert f"{tmp_path}/venv/bin/python -m pip install -q -e '.[test,docs]'" in commands


@pytest.mark.parametrize(
    ("target", "command"),
    [("docs", "mkdocs serve --dev-addr 127.0.0.1:8001"), ("docs-build", "mkdocs build --strict")],
)
def test_docs_targets_install_their_tools(target: str, command: str, tmp_path: Path) -> None:
    """From a clean clone, the docs targets install MkDocs (and not the test tools: no npm);
    the mock keeps port 8000."""
    commands = planned(target, tmp_path / "venv")
    assert f"{tmp_path}/venv/bin/python -m pip install -q -e '.[docs]'" in commands
    assert not any("[test" in c or "npm" in c for c in commands)
    assert commands[-1].endswith(f"{tmp_path}/venv/bin/{command}")
