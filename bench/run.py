"""``make bench``: requests per second of mockserver beside a bare aiohttp handler and aimock.

Every server sends the same reply (``common.REPLY``); streamed, it is cut into 20-character
chunks (aimock's default chunk size). Servers run pinned to CPU 0 and wrk to CPU 1 where
``taskset`` exists, one after another, with the same load: wrk, 1 thread, 64 connections.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from common import EMBEDDING, REPLY, USER  # noqa: E402

from mockserver.protocols.chat import parse_chat  # noqa: E402
from mockserver.scenarios.loader import load_paths  # noqa: E402
from mockserver.scenarios.matching import ScenarioSet  # noqa: E402
from mockserver.serving import MMAP_THRESHOLD, TRIM_THRESHOLD  # noqa: E402

AIMOCK_VERSION = "1.43"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() != 1 else []


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far, every thread counted (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Served(str):
    """The URL a server answers on, and its process (for ``cpu_seconds``)."""

    pid: int


# glibc's allocator, fixed alike for every server (``serving.steady_malloc`` says why): left
# to its dynamic rule, a server's socket reads cost three more syscalls or none, at random.
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
}


@contextmanager
def server(command: list[str], port: int, pin: bool = True) -> Iterator[Served]:
    proc = subprocess.Popen(
        [*(pinned(0) if pin else []), *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **MALLOC_ENV},
    )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                if proc.poll() is not None:  # it could not bind: something else answered
                    raise OSError
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"{command[0]} exited: {proc.stderr.read()!r}") from None  # type: ignore[union-attr]
                time.sleep(0.05)
        served = Served(url)
        served.pid = proc.pid  # taskset execs the command: the same process
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def body(stream: bool, api: str = "chat") -> str:
    """The request: one user message, in the shape of ``api`` (embeddings: one input text)."""
    turn = [{"role": "user", "content": USER}]
    if api == "responses":
        return json.dumps({"model": "gpt-4", "input": turn, "stream": stream})
    if api == "messages":
        return json.dumps(
            {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": turn, "stream": stream}
        )
    if api == "embeddings":
        return json.dumps({"model": "text-embedding-3-small", "input": USER})
    if api == "gemini":  # the model and the stream are in the path
        return json.dumps({"contents": [{"role": "user", "parts": [{"text": USER}]}]})
    return json.dumps({"model": "gpt-4", "messages": turn, "stream": stream})


PATHS = {"chat": "/chat/completions", "responses": "/responses", "messages": "/messages",
         "embeddings": "/embeddings"}  # fmt: skip


GEMINI = "/v1beta/models/gemini-2.5-flash"


def path(api: str, stream: bool = False) -> str:
    """Where ``api``'s requests go: Gemini's path names the model, and streams on its own."""
    if api == "gemini":
        return f"{GEMINI}:streamGenerateContent?alt=sse" if stream else f"{GEMINI}:generateContent"
    return f"/v1{PATHS[api]}"


def route(url: str, api: str, stream: bool = False) -> str:
    return url.replace("/v1/chat/completions", path(api, stream))


def _streamed_text(api: str, text: str) -> str:
    events = [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: {")]
    if api == "responses":
        return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    if api == "messages":
        return "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    if api == "gemini":
        return "".join(p["text"] for e in events for p in e["candidates"][0]["content"]["parts"])
    return "".join(
        (json.loads(line[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
        for line in text.split("\n")
        if line.startswith("data: {")
    )


def check(url: str, stream: bool, api: str = "chat") -> None:
    """Each server must really send the reply before its speed means anything."""
    r = httpx.post(
        url,
        content=body(stream, api),
        headers={"Authorization": "Bearer bench", "Content-Type": "application/json"},
        timeout=60,  # a busy machine: the server may still be draining the last run
    )
    r.raise_for_status()
    if stream:
        text = _streamed_text(api, r.text)
    elif api == "responses":
        message = next(item for item in r.json()["output"] if item["type"] == "message")
        text = message["content"][0]["text"]
    elif api == "messages":
        text = r.json()["content"][0]["text"]
    elif api == "gemini":
        text = r.json()["candidates"][0]["content"]["parts"][0]["text"]
    elif api == "embeddings":
        vector = r.json()["data"][0]["embedding"]
        assert vector == EMBEDDING, f"{url} sent another vector ({len(vector)} numbers)"
        return
    else:
        text = r.json()["choices"][0]["message"]["content"]
    assert text == REPLY, f"{url} sent {text!r}"


def wrk(
    url: str,
    stream: bool,
    seconds: int,
    connections: int,
    script: str = "post.lua",
    api: str = "chat",
) -> float:
    return wrk_run(url, stream, seconds, connections, script, api)[0]


def wrk_run(
    url: str,
    stream: bool,
    seconds: int,
    connections: int,
    script: str = "post.lua",
    api: str = "chat",
) -> tuple[float, int]:
    """Requests per second, and how many requests were answered."""
    out = subprocess.run(
        [*pinned(1), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(HERE / script), url],
        capture_output=True, text=True, env={**os.environ, "BENCH_BODY": body(stream, api)}, check=True,
    ).stdout  # fmt: skip
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} failed responses")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    assert found, out
    assert count, out
    return float(found.group(1)), int(count.group(1))


def aimock_cli() -> Path | None:
    cli = HERE / "node_modules" / "@copilotkit" / "aimock" / "dist" / "cli.js"
    if not cli.exists() and shutil.which("npm"):
        subprocess.run(
            ["npm", "install", "--silent", "--prefix", str(HERE), f"@copilotkit/aimock@{AIMOCK_VERSION}"],
            check=False, capture_output=True,
        )  # fmt: skip
    return cli if cli.exists() and shutil.which("node") else None


def scenario_file(folder: Path, extra: int, op: str = "exact", target: str = "") -> Path:
    """The benchmark's scenario after ``extra`` others that do not match it.

    ``exact`` scenarios are indexed in a dict, ``contains`` ones in an automaton, ``regex``
    ones by the plain text they require (the same automaton).
    """
    lines = ["scenarios:"]
    key = {
        "exact": "'other question %d'",
        "contains": "{contains: 'other question %d'}",
        "regex": "{regex: 'other question %d$'}",
    }[op]
    lines += [
        f"  - {{match: {{last_user: {key % i}}}, reply: {{content: x}}}}" for i in range(extra)
    ]
    target = target or op
    wanted = f"{{contains: {USER!r}}}" if target == "contains" else repr(USER)
    lines += [f"  - match: {{api: embeddings, last_user: {wanted}}}",
              f"    reply: {{embedding: {json.dumps(EMBEDDING)}}}",
              f"  - match: {{last_user: {wanted}}}", f"    reply: {{content: {REPLY!r}}}",
              "    cadence: {chunk: 20}"]  # fmt: skip
    path = folder / f"bench-{op}-{extra}-{target}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


MOCK = [sys.executable, "-m", "mockserver", "serve", "--quiet", "--speed", "0", "--no-reload"]


def before_command(command: list[str], checkout: str) -> list[str]:
    """``command`` serving another checkout. ``python -m`` puts the working directory first
    on the path, ahead of PYTHONPATH, so without ``-P`` the bench's own checkout was served
    under the "before" label too."""
    return ["env", f"PYTHONPATH={checkout}", command[0], "-P", *command[1:]]


def mock(path: Path) -> tuple[list[str], int]:
    port = free_port()
    return [*MOCK, "--port", str(port), "--scenarios", str(path)], port


# (api, bodies): the rows of the throughput tables, each run plain and streamed (embeddings
# plain only: the API has no stream).
APIS = ("chat", "responses", "messages", "embeddings", "gemini")
ROWS = tuple((api, bodies) for bodies in ("varied", "same") for api in APIS)
STREAMS = {api: (False,) if api == "embeddings" else (False, True) for api in APIS}
SCRIPTS = {"varied": "varied.lua", "same": "post.lua"}


Key = tuple[str, str, bool]  # api, bodies, streamed


def tables(runs: dict[str, dict[Key, list[float]]], unit: str, higher_is_better: bool) -> None:
    """The medians of ``runs``, a table for each kind of bodies, with each server's ratio to
    the bare handler and to aimock as throughput (for times, the other's over ours)."""
    results = {
        label: {key: statistics.median(figures) for key, figures in modes.items()}
        for label, modes in runs.items()
    }
    peer = f"aimock {AIMOCK_VERSION}"
    others = [results["bare aiohttp"], *([results[peer]] if peer in results else [])]
    for bodies, title in (("varied", "every body different"), ("same", "the same body each time")):
        print(f"\n{title}:\n")
        print(f"| server | route | plain{unit} | streamed{unit} | plain vs bare | streamed vs bare | "
              "plain vs aimock | streamed vs aimock |")  # fmt: skip
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for label, r in results.items():
            for api in dict.fromkeys(key[0] for key in r):
                mine = [r.get((api, bodies, stream), math.nan) for stream in (False, True)]
                ratios = [
                    (x / other.get((api, bodies, stream), math.nan) if higher_is_better
                     else other.get((api, bodies, stream), math.nan) / x)
                    for other in others
                    for x, stream in zip(mine, (False, True), strict=True)
                ]  # fmt: skip
                shown = [("-" if math.isnan(x) else f"{x:.2f}x") for x in ratios]
                shown += ["-"] * (4 - len(ratios))
                cells = ["-" if math.isnan(x) else f"{x:,.0f}" for x in mine]
                print(f"| {label} | {api} | {' | '.join(cells)} | {' | '.join(shown)} |")


def throughput(tmp: Path, args: argparse.Namespace) -> None:
    """Every server, every row, plain and streamed; rounds interleaved so drift hits all alike.

    ``varied`` rows send a new user message on every request (``varied.lua``), as real load
    does; ``same`` rows send one body over and over, as most load generators do."""
    fixture = tmp / "aimock.json"
    fixture.write_text(
        json.dumps(
            {
                "fixtures": [
                    {"match": {"userMessage": USER}, "response": {"content": REPLY}},
                    {"match": {"inputText": USER}, "response": {"embedding": EMBEDDING}},
                ]
            }
        )
    )
    servers: dict[str, tuple[list[str], int]] = {}
    port = free_port()
    servers["bare aiohttp"] = ([sys.executable, str(HERE / "bare.py"), str(port)], port)
    cli = aimock_cli()
    if cli:
        port = free_port()
        servers[f"aimock {AIMOCK_VERSION}"] = (
            ["node", str(cli), "-p", str(port), "-f", str(fixture), "-c", "20", "--log-level", "silent"], port
        )  # fmt: skip
    servers["mockserver"] = mock(scenario_file(tmp, 9, "contains"))
    if args.before:  # another checkout of the package, served beside this one in the same run
        command, port = mock(scenario_file(tmp, 9, "contains"))
        servers["mockserver before"] = (before_command(command, args.before), port)
    runs: dict[str, dict[Key, list[float]]] = {s: {} for s in servers}
    cpu: dict[str, dict[Key, list[float]]] = {s: {} for s in servers}  # µs per request
    for _ in range(args.rounds):
        for label, (command, port) in servers.items():
            for api, bodies in ROWS:
                if args.api and api not in args.api:
                    continue
                # A new process per row (the bare handler once hung after a streamed run),
                # on a new port (another process may have taken the last one meanwhile).
                fresh = free_port()
                started = [str(fresh) if part == str(port) else part for part in command]
                with server(started, fresh) as url:
                    for stream in STREAMS[api]:
                        try:
                            check(route(url, api, stream), stream, api)
                            before = cpu_seconds(url.pid)
                            figure, count = wrk_run(route(url, api, stream), stream, args.seconds,
                                                    args.connections, SCRIPTS[bodies], api)  # fmt: skip
                            used = (cpu_seconds(url.pid) - before) / count * 1e6
                        except (httpx.HTTPError, RuntimeError) as err:
                            print(
                                f"{label} {api} {bodies} stream={stream}: {err!r}", file=sys.stderr
                            )
                            figure = used = math.nan  # shown as nan; the other rows still count
                        runs[label].setdefault((api, bodies, stream), []).append(figure)
                        cpu[label].setdefault((api, bodies, stream), []).append(used)
    print(f"\nrequests/s, median of {args.rounds} interleaved rounds, wrk -t1 -c{args.connections} "
          f"-d{args.seconds}s, {os.cpu_count()} CPUs, {platform()}")  # fmt: skip
    tables(runs, "", higher_is_better=True)
    print("\nthe server's CPU time per request (µs, every thread; medians), and the throughput "
          "ratio it implies\n(the other's µs over ours: on a shared machine the figure that "
          "moves least, as time other\nprocesses hold the CPU is not counted):")  # fmt: skip
    tables(cpu, " µs", higher_is_better=False)
    print("\nrounds (plain, streamed):")
    for label, modes in runs.items():
        for (api, bodies, stream), figures in modes.items():
            kind = "streamed" if stream else "plain"
            spent = ", ".join(f"{f:,.0f}" for f in cpu[label][(api, bodies, stream)])
            print(f"  {label} {api} {bodies} {kind}: " + ", ".join(f"{f:,.0f}" for f in figures)
                  + f" req/s; {spent} µs CPU per request")  # fmt: skip


def matching(tmp: Path, args: argparse.Namespace) -> None:
    """10 scenarios against 10,000, plain requests, rounds interleaved so drift hits all alike.

    Every request's body differs (``varied.lua``), so each is matched (none is a memo hit); the
    answering scenario is a ``contains`` one after the 10 or 10,000 others."""
    sets = {
        "10 scenarios": scenario_file(tmp, 9, "exact", "contains"),
        "10,000 exact (indexed)": scenario_file(tmp, 9_999, "exact", "contains"),
        "10,000 contains (automaton)": scenario_file(tmp, 9_999, "contains", "contains"),
        "10,000 regex (prefiltered)": scenario_file(tmp, 9_999, "regex", "contains"),
    }
    request = parse_chat(body(False).encode(), {})
    print("\nmatching alone, in process (ScenarioSet.resolve, best of 5):\n")
    print("| scenarios loaded | µs per request |")
    print("|---|---:|")
    for label, path in sets.items():
        scenarios = ScenarioSet(load_paths([path]))
        number = 20_000
        best = min(timeit.repeat(partial(scenarios.resolve, request), number=number, repeat=5))
        print(f"| {label} | {best / number * 1e6:,.2f} |")
    runs: dict[str, list[float]] = {label: [] for label in sets}
    for _ in range(args.rounds):
        for label, path in sets.items():
            command, port = mock(path)
            with server(command, port) as url:
                check(url, False)
                runs[label].append(wrk(url, False, args.seconds, args.connections, "varied.lua"))
    base = statistics.median(runs["10 scenarios"])
    print(f"\nmatching cost, plain requests/s, every body different, median of {args.rounds} interleaved rounds of "
          f"{args.seconds}s, wrk -t1 -c{args.connections}, {platform()}\n")  # fmt: skip
    print("| scenarios loaded | rounds | median | vs 10 |")
    print("|---|---|---:|---:|")
    for label, figures in runs.items():
        median = statistics.median(figures)
        shown = ", ".join(f"{f:,.0f}" for f in figures)
        print(f"| {label} | {shown} | {median:,.0f} | {median / base - 1:+.1%} |")


def sequence_file(folder: Path) -> Path:
    """One scenario with two steps: every request advances its conversation's position."""
    path = folder / "bench-sequence.yaml"
    path.write_text(
        "scenarios:\n"
        f"  - match: {{last_user: {{contains: {USER!r}}}}}\n"
        "    after_last: cycle\n"
        f"    steps: [{{reply: {{content: {REPLY!r}}}}}, {{reply: {{content: {REPLY!r}}}}}]\n"
    )
    return path


@contextmanager
def redis_server() -> Iterator[str | None]:
    """A throwaway redis-server for the shared-store rows (None when it is not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait()


def scaling(tmp: Path, args: argparse.Namespace) -> None:
    """What sharing state costs: one process against ``--workers 2`` (the supervisor owns the
    state) and against Redis (``--state``). Servers are not pinned here (two workers need two
    CPUs); wrk is, to CPU 1, so on a 2-CPU machine the workers compete with it.

    ``repeated``: one body over and over (a memo hit, no shared state touched). ``sequence``:
    every body different and every request advances a conversation (one shared operation)."""
    loads = {
        "repeated": (scenario_file(tmp, 9), "post.lua"),
        "sequence": (sequence_file(tmp), "varied.lua"),
    }
    with redis_server() as redis_url:
        setups: dict[str, list[str]] = {"1 process": [], "--workers 2": ["--workers", "2"]}
        if redis_url is None:
            print("\n(redis-server is not installed: the --state rows are left out)")
        else:
            setups["1 process, --state redis"] = ["--state", redis_url]
            setups["--workers 2, --state redis"] = ["--workers", "2", "--state", redis_url]
        runs: dict[str, dict[str, list[float]]] = {s: {k: [] for k in loads} for s in setups}
        for _ in range(args.rounds):
            for label, extra in setups.items():
                for load, (path, script) in loads.items():
                    command, port = mock(path)
                    with server([*command, *extra], port, pin=False) as url:
                        check(url, False)
                        figure = wrk(url, False, args.seconds, args.connections, script)
                        runs[label][load].append(figure)
    print(f"\nscaling, plain requests/s, median of {args.rounds} interleaved rounds of "
          f"{args.seconds}s, wrk -t1 -c{args.connections}, {os.cpu_count()} CPUs, {platform()}\n")  # fmt: skip
    print("| server | repeated body | vs 1 process | sequence step | vs 1 process |")
    print("|---|---:|---:|---:|---:|")
    base = {load: statistics.median(runs["1 process"][load]) for load in loads}
    for label, by_load in runs.items():
        cells = []
        for load in loads:
            median = statistics.median(by_load[load])
            cells += [f"{median:,.0f}", f"{median / base[load]:.2f}x"]
        print(f"| {label} | " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians shown")
    parser.add_argument(
        "--suite", choices=("all", "throughput", "matching", "scaling"), default="all"
    )
    parser.add_argument(
        "--api", choices=APIS, action="append", help="throughput rows of this API (all)"
    )
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="a checkout to serve beside this one in the throughput rows (git worktree add DIR "
        "REF), to measure a change within one run",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("make bench needs wrk (apt-get install wrk)", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp())
    if args.suite in ("all", "throughput"):
        throughput(tmp, args)
    if args.suite in ("all", "matching"):
        matching(tmp, args)
    if args.suite in ("all", "scaling"):
        scaling(tmp, args)
    return 0


def platform() -> str:
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = "unknown CPU"
    return model


if __name__ == "__main__":
    sys.exit(main())
