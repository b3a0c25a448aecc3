"""CPU time per request through the real aiohttp app, in one process, at one connection.

The app is served on a loopback port by the same runner ``serve`` uses; a raw-socket client in
the same event loop sends N prepared requests one after another and reads each reply. The
client is a few lines of bytes handling, so the process's CPU time is nearly all the server's,
and ``time.process_time`` does not count the time other processes hold the CPU: this is the
figure to compare before and after a change on a busy machine. ``--profile`` prints cProfile's
functions by own time, per request.

    python bench/inproc.py [--api chat|responses|messages] [--stream] [--same] [-n 5000] [--connections 8]
        [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from aiohttp import web  # noqa: E402
from common import USER, post  # noqa: E402
from run import scenario_file  # noqa: E402

from mockserver.app import create_app  # noqa: E402
from mockserver.scenarios.loader import load_paths  # noqa: E402
from mockserver.serving import make_runner  # noqa: E402
from mockserver.state.live import Options  # noqa: E402

_SENT = [0]  # every body ever prepared is new, across warm-up and repeats


def requests(api: str, stream: bool, same: bool, n: int, turns: int) -> list[bytes]:
    """``n`` HTTP requests; every user message different unless ``same``. ``turns`` earlier
    user/assistant pairs come first, the same in every request, as a conversation resends."""
    path = {"responses": "/v1/responses", "messages": "/v1/messages"}.get(
        api, "/v1/chat/completions"
    )
    history = []
    for t in range(turns):
        history += [{"role": "user", "content": f"Earlier question number {t}, in a few words."},
                    {"role": "assistant", "content": f"An earlier answer, number {t}, " * 8}]  # fmt: skip
    out = []
    for i in range(_SENT[0], _SENT[0] + n):
        turn = [*history, {"role": "user", "content": USER if same else f"{USER} {i}"}]
        key = "input" if api == "responses" else "messages"
        fields: dict[str, object] = {"model": "gpt-4", key: turn, "stream": stream}
        if api == "messages":
            fields.update(model="claude-sonnet-4-5", max_tokens=1024)
        body = json.dumps(fields).encode()
        out.append(post(path, body))
    _SENT[0] += n
    return out


async def drive(port: int, prepared: list[bytes]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for request in prepared:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode())
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
    writer.close()


async def drive_all(port: int, prepared: list[bytes], connections: int) -> None:
    """``connections`` clients at once, each sending its share one request after another."""
    await asyncio.gather(*(drive(port, prepared[i::connections]) for i in range(connections)))


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp())
    if args.bare:
        import bare

        app = bare.app()
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
    else:
        app = create_app(load_paths([scenario_file(tmp, 9, "contains")]), Options(speed=0))
        runner = make_runner(app)
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 1_000_000_000)  # as ``serve`` sets it
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    await drive_all(
        port, requests(args.api, args.stream, args.same, args.warmup, args.turns), args.connections
    )
    best = float("inf")
    for _ in range(args.repeat):
        prepared = requests(args.api, args.stream, args.same, args.n, args.turns)
        profile = cProfile.Profile() if args.profile else None
        started = time.process_time()
        if profile:
            profile.enable()
        await drive_all(port, prepared, args.connections)
        if profile:
            profile.disable()
        best = min(best, time.process_time() - started)
        if profile:
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("tottime").print_stats(args.top)
            print(per_request(out.getvalue(), args.n))
    mode = "streamed" if args.stream else "plain"
    bodies = "the same body" if args.same else "every body different"
    who = "bare aiohttp" if args.bare else "mockserver"
    print(f"{who}: {args.api} {mode}, {bodies}, {args.turns} earlier turns: "
          f"{best / args.n * 1e6:.1f} µs CPU per request (best of {args.repeat} x {args.n})")  # fmt: skip
    await runner.cleanup()


def per_request(report: str, n: int) -> str:
    """cProfile's table with its total and own times turned into µs per request."""
    lines = []
    for line in report.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[1].replace(".", "").isdigit():
            ncalls, tottime, _, cumtime, _, where = parts
            lines.append(f"{float(tottime) / n * 1e6:8.2f} {float(cumtime) / n * 1e6:8.2f} "
                         f"{ncalls:>9} {where}")  # fmt: skip
    return "  own µs  cum µs     calls  function (per request)\n" + "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", choices=("chat", "responses", "messages"), default="chat")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--same", action="store_true", help="one body over and over")
    parser.add_argument("--turns", type=int, default=0, help="earlier turns in every request")
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=500, help="requests sent before measuring")
    parser.add_argument("--connections", type=int, default=1, help="clients at once")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--bare", action="store_true", help="the bare aiohttp handler instead")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if args.profile:
        args.repeat = 1
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
