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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import free_port, pinned, platform  # noqa: E402


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def one_stream(
    port: int, body: bytes, gaps: list[tuple[float, float]], done: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer b\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    last = None
    try:
        while line := await reader.readline():
            if line.startswith(b"data: {") and b'"content": "' in line:
                now = time.monotonic()
                if last is not None:
                    gaps.append((now, now - last))
                last = now
            elif line.startswith(b"data: [DONE]"):
                done[0] += 1
                break
    finally:
        writer.close()


async def run(args: argparse.Namespace, port: int, pid: int) -> dict[str, float]:
    content = " ".join(f"w{i}" for i in range(args.chunks))
    body = json.dumps(
        {"model": "gpt-4", "stream": True, "messages": [{"role": "user", "content": content}]}
    ).encode()
    gaps: list[tuple[float, float]] = []
    done = [0]
    peak = 0
    tasks = []
    started = time.monotonic()
    for i in range(args.streams):
        tasks.append(asyncio.create_task(one_stream(port, body, gaps, done)))
        if i % 500 == 499:
            await asyncio.sleep(0.05)  # a ramp, so the accept queue never overflows
    ramped = time.monotonic() - started
    while not all(t.done() for t in tasks):
        peak = max(peak, rss_kib(pid))
        await asyncio.sleep(0.25)
    failed = sum(1 for t in tasks if t.exception() is not None)
    errors = sorted(abs(g - args.delay) * 1000 for _, g in gaps)
    settled = started + ramped + args.delay * 2
    steady = sorted(abs(g - args.delay) * 1000 for t, g in gaps if t > settled)
    return {
        "streams": args.streams,
        "completed": done[0],
        "failed": failed,
        "ramp_s": ramped,
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "slow.yaml"
        scenario.write_text(
            f"- reply: {{content: '{{{{ last_user }}}}'}}\n  cadence: {{delay: {args.delay}}}\n"
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
            subprocess.run(["taskset", "-cp", "1", str(__import__("os").getpid())],
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
