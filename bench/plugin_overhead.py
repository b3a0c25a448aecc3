"""Per-test cost of the pytest plugin's fixtures, after the first test of the session.

Runs three generated suites of N empty tests in fresh pytest processes: without fixtures,
with ``mockserver``, and with ``openai_client``; prints the extra time per test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITES = {
    "no fixture": "def test_{i}():\n    pass\n",
    "mockserver": "def test_{i}(mockserver):\n    pass\n",
    "openai_client": "def test_{i}(openai_client):\n    pass\n",
}


def _run(folder: Path, body: str, count: int) -> float:
    """Seconds for the suite, minus those for a one-test suite (start-up, first test)."""
    times = []
    for n in (1, count + 1):
        path = folder / f"test_gen_{n}.py"
        path.write_text("".join(body.format(i=i) for i in range(n)))
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, cwd=folder)
            best = min(best, time.perf_counter() - started)
        times.append(best)
        path.unlink()
    return times[1] - times[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tests", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "pytest.ini").write_text("[pytest]\n")
        base = _run(folder, SUITES["no fixture"], args.tests)
        print(f"{'suite':<14} {'ms per test':>12} {'over no fixture':>16}")
        print(f"{'no fixture':<14} {base / args.tests * 1000:>12.3f} {'':>16}")
        for name in ("mockserver", "openai_client"):
            spent = _run(folder, SUITES[name], args.tests)
            extra = (spent - base) / args.tests * 1000
            print(f"{name:<14} {spent / args.tests * 1000:>12.3f} {extra:>16.3f}")


if __name__ == "__main__":
    main()
