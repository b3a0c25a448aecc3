"""Server CPU time per request: the figure to compare before and after a change.

Requests per second on a shared or virtual machine move by 20% between identical runs; the
CPU seconds the server process spends per request move far less, because time spent waiting
for a CPU is not counted. Starts ``mockserver serve`` (or ``bare.py``) pinned to CPU 0, drives
it with wrk on CPU 1, and divides the server's user+system CPU time by the requests answered.

    python bench/cpu.py [--connections 1] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import HERE as BENCH  # noqa: E402
from run import body, check, free_port, mock, pinned, route, scenario_file, server  # noqa: E402
from streams import cpu_seconds  # noqa: E402


def measure(
    url: str, pid: int, api: str, stream: bool, args: argparse.Namespace, script: str
) -> float:
    """Microseconds of server CPU per answered request."""
    before = cpu_seconds(pid)
    out = subprocess.run(
        [*pinned(1), "wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "-s", str(BENCH / script), url],
        capture_output=True, text=True, env={**os.environ, "BENCH_BODY": body(stream, api)}, check=True,
    ).stdout  # fmt: skip
    spent = cpu_seconds(pid) - before
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise RuntimeError(f"{url}: failed responses\n{out}")
    found = re.search(r"(\d+) requests in", out)
    assert found, out
    return spent / int(found.group(1)) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bare", action="store_true", help="the bare aiohttp handler too")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    servers: dict[str, tuple[list[str], int]] = {
        "mockserver": mock(scenario_file(tmp, 9, "contains"))
    }
    if args.bare:
        port = free_port()
        servers["bare aiohttp"] = ([sys.executable, str(HERE / "bare.py"), str(port)], port)
    rows = [
        (api, stream, script)
        for api in ("chat", "responses")
        for stream in (False, True)
        for script in ("varied.lua", "post.lua")
    ]
    figures: dict[tuple[str, str, bool, str], list[float]] = {}
    for _ in range(args.rounds):
        for label, (command, port) in servers.items():
            with server(command, port) as url:
                pid = _server_pid(port)
                for api, stream, script in rows:
                    target = route(url, api)
                    check(target, stream, api)
                    figure = measure(target, pid, api, stream, args, script)
                    figures.setdefault((label, api, stream, script), []).append(figure)
    print(
        f"\nserver CPU µs per request, median of {args.rounds} rounds, wrk -t1 -c{args.connections} -d{args.seconds}s\n"
    )
    print("| server | api | mode | bodies | rounds | median µs |")
    print("|---|---|---|---|---|---:|")
    for (label, api, stream, script), values in figures.items():
        bodies = "every body different" if script == "varied.lua" else "the same body"
        shown = ", ".join(f"{v:.0f}" for v in values)
        mode = "streamed" if stream else "plain"
        print(
            f"| {label} | {api} | {mode} | {bodies} | {shown} | {statistics.median(values):.1f} |"
        )
    return 0


def _server_pid(port: int) -> int:
    """The pid listening on ``port`` (taskset execs the server, so Popen's pid is it too)."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[1].endswith(f":{port:04X}") and parts[3] == "0A":
            inode = parts[9]
    assert inode is not None, f"nothing listens on {port}"
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
            except OSError:
                continue
    raise RuntimeError(f"no process found for port {port}")


if __name__ == "__main__":
    sys.exit(main())
