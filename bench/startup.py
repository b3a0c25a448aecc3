"""Start-up of ``mockserver serve``: process spawn to the first answered request, and idle RSS.

python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import free_port, platform, scenario_file  # noqa: E402
from streams import rss_kib  # noqa: E402

REQUEST = json.dumps(
    {"model": "gpt-4", "messages": [{"role": "user", "content": "hello"}]}
).encode()


def first_answer(port: int, deadline: float) -> None:
    """Poll until a chat completion comes back (raw socket: no client library start-up cost)."""
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer b\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
    )
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(head % len(REQUEST) + REQUEST)
                if conn.recv(12).startswith(b"HTTP/1.1 "):
                    return
        except OSError:
            time.sleep(0.002)
    raise TimeoutError("no answer")


def measure(args: list[str]) -> tuple[float, float]:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--quiet", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
    )
    try:
        first_answer(port, started + 30)
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        return elapsed, rss_kib(proc.pid) / 1024
    finally:
        proc.terminate()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sets = {
            "shipped demo scenarios": [],
            "10,000 scenarios": ["--scenarios", str(scenario_file(Path(tmp), 9_999))],
        }
        print(f"\nstart-up to first answered request, median of {args.runs} runs, {platform()}\n")
        print("| scenarios | start-up | idle RSS |")
        print("|---|---:|---:|")
        for label, extra in sets.items():
            runs = [measure(extra) for _ in range(args.runs)]
            seconds = statistics.median(r[0] for r in runs)
            rss = statistics.median(r[1] for r in runs)
            print(f"| {label} | {seconds * 1000:,.0f} ms | {rss:,.1f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
