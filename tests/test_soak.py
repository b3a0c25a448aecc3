"""Soak: minutes of mixed plain and streamed traffic against a real `mockserver serve`.

Marked ``soak``, so the default run skips it; ``make soak`` runs it (``SOAK_SECONDS``, default
180). Asserts no failed request and a flat resident memory after warm-up, and prints figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.soak

SCENARIOS = """
scenarios:
  - name: streamed
    match: {stream: true}
    reply: {content: "A streamed answer, cut into a dozen chunks or so, at a quick pace."}
    cadence: {delay: 0.005}
  - name: tools
    match: {tools: [get_weather]}
    reply:
      tool_calls: [{name: get_weather, arguments: {city: Paris}}]
  - name: plain
    reply: {content: "Hello {{ last_user }}, here is {{ fake.name }}."}
"""
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _client(url: str, until: float, counts: dict[str, int], worker: int) -> None:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": "Bearer soak"}, timeout=30
    ) as http:
        i = 0
        while time.monotonic() < until:
            i += 1
            kind = ("plain", "plain", "streamed", "tools")[i % 4]
            body: dict[str, object] = {
                "model": "gpt-4",
                "messages": [{"role": "user", "content": f"q{worker}-{i}"}],
            }
            if kind == "streamed":
                body["stream"] = True
            if kind == "tools":
                body["tools"] = TOOLS
            try:
                reply = await http.post("/chat/completions", content=json.dumps(body))
                ok = reply.status_code == 200 and (
                    kind != "streamed" or reply.text.endswith("data: [DONE]\n\n")
                )
            except httpx.HTTPError:
                ok = False
            counts[kind if ok else "failed"] += 1


def test_soak(tmp_path: Path) -> None:
    seconds = float(os.environ.get("SOAK_SECONDS", "180"))
    (tmp_path / "soak.yaml").write_text(SCENARIOS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--quiet",
         "--scenarios", str(tmp_path / "soak.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        start_rss = rss_kib(proc.pid)
        counts = {"plain": 0, "streamed": 0, "tools": 0, "failed": 0}
        samples: list[tuple[float, int]] = []

        async def run() -> None:
            started = time.monotonic()
            until = started + seconds
            clients = [asyncio.create_task(_client(url, until, counts, w)) for w in range(32)]
            while time.monotonic() < until:
                await asyncio.sleep(min(5, seconds / 10))
                samples.append((time.monotonic() - started, rss_kib(proc.pid)))
            await asyncio.gather(*clients)

        asyncio.run(run())
        end_rss = rss_kib(proc.pid)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    total = sum(counts.values())
    warm = [kib for t, kib in samples if t >= seconds * 0.3]
    print(f"\nsoak: {seconds:.0f}s, {total:,} requests ({counts}), "
          f"RSS start {start_rss / 1024:.1f} MiB, after warm-up {warm[0] / 1024:.1f} MiB, "
          f"end {end_rss / 1024:.1f} MiB, max {max(k for _, k in samples) / 1024:.1f} MiB")  # fmt: skip
    assert counts["failed"] == 0
    assert end_rss - warm[0] < max(warm[0] * 0.05, 4096), "resident memory kept growing"
    assert "Traceback" not in err
