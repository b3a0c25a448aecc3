"""Server-only instructions per request: the server under callgrind, the client outside it.

The server is the command ``make bench`` runs (``mockserver serve`` with the bench scenarios,
or the bare aiohttp handler), started under ``valgrind --tool=callgrind --instr-atstart=no``;
the client is this process, not instrumented, so no client instruction is in the figures (an
in-process client, as ``inproc.py`` has, costs about 110k instructions a request that would
have to be subtracted). For each row the client warms the server up, then
``callgrind_control`` switches instrumentation on and zeroes the counters, the client sends
``-n`` requests one after another on one connection, and ``callgrind_control --dump`` writes
the total: instructions / n is the server's whole work per request, aiohttp included, in
user space (the kernel's share of the sockets is not counted). One server process serves
every row, after a warm-up long enough to fill the journal, so each row sees a full one.
Counts repeat within a few tenths of a percent whatever else runs on the machine.

    python bench/instructions.py [--server mockserver|bare|both] [-n 300] [--api chat ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from common import USER, post  # noqa: E402
from run import (  # noqa: E402
    APIS,
    MALLOC_ENV,
    MOCK,
    STREAMS,
    body,
    free_port,
    path,
    scenario_file,
)

_SENT = [0]  # every varied body ever sent is new, across rows and warm-ups


def prepared(api: str, stream: bool, same: bool, n: int) -> list[bytes]:
    """``n`` HTTP requests as wrk sends them (``varied.lua``: a counter after the user text)."""
    template = body(stream, api)
    out = []
    for i in range(_SENT[0], _SENT[0] + n):
        text = template if same else template.replace(USER, f"{USER} {i}")
        out.append(post(path(api, stream), text.encode()))
    _SENT[0] += n
    return out


async def send(port: int, requests: list[bytes]) -> None:
    """One connection, one request after another, each reply read whole (sized or chunked)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for request in requests:
        writer.write(request)
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        if not head.startswith(b"http/1.1 200"):
            raise RuntimeError(head.decode())
        if b"content-length: " in head:
            await reader.readexactly(int(head.split(b"content-length: ", 1)[1].split(b"\r\n")[0]))
            continue
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):  # chunked
            await reader.readexactly(size + 2)
        await reader.readexactly(2)
    writer.close()
    await writer.wait_closed()


def callgrind_control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def measure(pid: int, port: int, out: Path, api: str, stream: bool, same: bool, n: int) -> float:
    """Instructions per request of one row, counted between a zero and a dump."""
    asyncio.run(send(port, prepared(api, stream, same, 100)))  # this row's warm-up
    for old in out.parent.glob(f"{out.name}.*"):
        old.unlink()
    callgrind_control(pid, "--instr=on")
    callgrind_control(pid, "--zero")
    asyncio.run(send(port, prepared(api, stream, same, n)))
    callgrind_control(pid, "--dump")
    callgrind_control(pid, "--instr=off")
    dumps = sorted(out.parent.glob(f"{out.name}.*"))
    totals = next(
        line
        for line in dumps[-1].read_text().splitlines()
        if line.startswith(("totals:", "summary:"))
    )
    return int(totals.split()[1]) / n


def serve(label: str, tmp: Path, before: str | None) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    if label == "bare aiohttp":
        command = [sys.executable, str(HERE / "bare.py"), str(port)]
    else:
        command = [
            *MOCK,
            "--port",
            str(port),
            "--scenarios",
            str(scenario_file(tmp, 9, "contains")),
        ]
    env = {**os.environ, **MALLOC_ENV}
    if label == "mockserver before" and before:  # valgrind must start python itself, not env
        command = [command[0], "-P", *command[1:]]  # see run.before_command
        env["PYTHONPATH"] = before
    out = tmp / f"callgrind.{label.replace(' ', '-')}"
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            *command,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    for _ in range(1200):  # valgrind starts slowly
        try:
            asyncio.run(send(port, prepared("chat", False, False, 1)))
            return proc, port, out
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{label} exited under valgrind") from None
            time.sleep(0.1)
    raise RuntimeError(f"{label} did not answer under valgrind")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--server",
        choices=("mockserver", "bare", "both", "before"),
        default="both",
        help="before: only the --before checkout",
    )
    parser.add_argument("--api", choices=APIS, action="append", help="rows of this API (all)")
    parser.add_argument("-n", type=int, default=300, help="requests counted per row")
    parser.add_argument("--same-only", action="store_true", help="only the same-body rows")
    parser.add_argument("--varied-only", action="store_true", help="only the varied rows")
    parser.add_argument("--before", metavar="DIR", help="also serve this checkout (as run.py)")
    args = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("bench/instructions.py needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 1
    labels = {"mockserver": ["mockserver"], "bare": ["bare aiohttp"]}.get(
        args.server, ["bare aiohttp", "mockserver"]
    )
    if args.server == "before":
        labels = []
    if args.before:
        labels.append("mockserver before")
    bodies = ["varied"] * (not args.same_only) + ["same"] * (not args.varied_only)
    tmp = Path(tempfile.mkdtemp())
    print("server-only instructions per request (callgrind, client outside the server; "
          f"{args.n} requests a row, one connection)\n")  # fmt: skip
    print("| server | route | bodies | plain | streamed |")
    print("|---|---|---|---:|---:|")
    for label in labels:
        proc, port, out = serve(label, tmp, args.before)
        try:
            asyncio.run(send(port, prepared("chat", False, False, 1200)))  # a full journal
            for kind in bodies:
                for api in args.api or APIS:
                    cells = [
                        f"{measure(proc.pid, port, out, api, s, kind == 'same', args.n):,.0f}"
                        for s in STREAMS[api]
                    ]
                    cells += ["-"] * (2 - len(cells))
                    print(f"| {label} | {api} | {kind} | {' | '.join(cells)} |", flush=True)
        finally:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
