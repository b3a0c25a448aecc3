"""Many slow streams at once: how many one process holds, its memory, and its cadence.

Starts ``mockserver serve`` pinned to CPU 0 and opens N streams from this process (CPU 1),
each a scripted reply of K chunks, ``delay`` seconds apart. Reports the streams completed,
the server's peak resident memory, and the error of every inter-chunk gap against the script
(measured where the client receives it, so client lag counts against us too).

    python bench/streams.py --streams 10000 --delay 1 --chunks 10
    python bench/streams.py --streams 1000 --delay 0.1 --chunks 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import free_port, pinned, platform  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class _Stream(asyncio.Protocol):
    """One streamed request, timing each content chunk as it arrives (no per-line parsing)."""

    def __init__(self, body: bytes, gaps: list[tuple[float, float]], first: list[float]) -> None:
        self.body, self.gaps, self.first = body, gaps, first
        self.last: float | None = None
        self.ended = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer b\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(self.body), self.body)
        )
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if b'"content": "word' in data:
            if self.last is None:
                self.first.append(now)
            else:
                self.gaps.append((now, now - self.last))
            self.last = now
        if b"data: [DONE]" in data:
            self.transport.close()
            if not self.ended.done():
                self.ended.set_result(True)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(False)


async def one_stream(
    port: int, body: bytes, gaps: list[tuple[float, float]], done: list[int], first: list[float]
) -> None:
    loop = asyncio.get_running_loop()
    _, stream = await loop.create_connection(lambda: _Stream(body, gaps, first), "127.0.0.1", port)
    if await stream.ended:
        done[0] += 1


async def run(args: argparse.Namespace, port: int, pid: int) -> dict[str, float]:
    body = json.dumps(
        {"model": "gpt-4", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    ).encode()
    gaps: list[tuple[float, float]] = []
    first: list[float] = []
    done = [0]
    peak = 0
    tasks = []
    started = time.monotonic()
    for i in range(args.streams):
        tasks.append(asyncio.create_task(one_stream(port, body, gaps, done, first)))
        if i % 10 == 9:  # a steady ramp: clients arrive independently, not in lockstep
            await asyncio.sleep(args.ramp / args.streams * 10)
    ramped = time.monotonic() - started
    cpu_start = cpu_seconds(pid)
    while not all(t.done() for t in tasks):
        peak = max(peak, rss_kib(pid))
        await asyncio.sleep(0.25)
    server_cpu = (cpu_seconds(pid) - cpu_start) / (time.monotonic() - started - ramped)
    failed = sum(1 for t in tasks if t.exception() is not None)
    errors = sorted(abs(g - args.delay) * 1000 for _, g in gaps)
    settled = max(first, default=started)  # every stream open and sending
    steady = sorted(abs(g - args.delay) * 1000 for t, g in gaps if t > settled + args.delay)
    return {
        "streams": args.streams,
        "completed": done[0],
        "failed": failed,
        "ramp_s": ramped,
        "server_cpu": server_cpu,
        "all_open_s": settled - started,
        "peak_rss_mib": peak / 1024,
        "gaps": len(gaps),
        "p50_ms": statistics.median(errors) if errors else float("nan"),
        "p99_ms": errors[int(len(errors) * 0.99)] if errors else float("nan"),
        "max_ms": errors[-1] if errors else float("nan"),
        "steady_gaps": len(steady),
        "steady_p50_ms": statistics.median(steady) if steady else float("nan"),
        "steady_p99_ms": steady[int(len(steady) * 0.99)] if steady else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds to open them all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "slow.yaml"
        words = "".join(f"word{i} " for i in range(args.chunks))
        scenario.write_text(
            f"- reply: {{content: '{words}'}}\n  cadence: {{delay: {args.delay}, chunk: word}}\n"
        )
        port = free_port()
        proc = subprocess.Popen(
            [*pinned(0), sys.executable, "-m", "mockserver", "serve", "--quiet", "--no-reload",
             "--port", str(port), "--scenarios", str(scenario)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            proc.stdout.readline()
            idle = rss_kib(proc.pid)
            subprocess.run(["taskset", "-cp", "1", str(os.getpid())],
                           check=False, capture_output=True)  # fmt: skip
            result = asyncio.run(run(args, port, proc.pid))
            result["idle_rss_mib"] = idle / 1024
            result["hwm_rss_mib"] = rss_kib(proc.pid, "VmHWM") / 1024
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"\n{args.streams} streams x {args.chunks} chunks, {args.delay}s apart, {platform()}")
    for key, value in result.items():
        print(f"  {key:<14} {value:,.2f}" if isinstance(value, float) else f"  {key:<14} {value:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
