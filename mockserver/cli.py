"""Command line: ``mockserver serve``, ``mockserver validate``, ``mockserver schema``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from . import serving
from .app import create_app
from .errors import ScenarioError
from .fingerprint import DEFAULT_FIELDS
from .loader import load_defaults, load_paths
from .profiles import PROFILES
from .ratelimit import RateLimit
from .record import Recorder
from .schema import FILE
from .state import DEFAULT_MAX_BODY, Options

log = logging.getLogger("mockserver")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mockserver", description="A local mock of the OpenAI chat completions API."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve scenarios over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    serve.add_argument(
        "--scenarios", nargs="+", default=[], metavar="PATH", help="files or folders"
    )
    serve.add_argument("--profile", choices=sorted(PROFILES), default="apifactory")
    serve.add_argument(
        "--api-key", action="append", default=[], metavar="KEY", help="accept only these keys"
    )
    serve.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="multiply every scripted delay (0: none, 0.1: ten times faster)",
    )
    serve.add_argument(
        "--unmatched",
        choices=("error", "default"),
        default="error",
        help="answer a request no scenario matches with a 404 error or the default reply",
    )
    serve.add_argument(
        "--rpm", type=int, metavar="N", help="requests per minute per API key and model"
    )
    serve.add_argument(
        "--tpm", type=int, metavar="N", help="tokens per minute per API key and model"
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="on SIGTERM, how long replies in flight may take to finish (delays are skipped)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="close connections idle (or still sending headers) this long",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N processes on one port (SO_REUSEPORT); each keeps its own sequences and journal",
    )
    serve.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, metavar="BYTES")
    serve.add_argument("--journal-size", type=int, default=1000, metavar="N")
    serve.add_argument(
        "--admin-token",
        default=os.environ.get("MOCKSERVER_ADMIN_TOKEN"),
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN' on /_mock/ (env MOCKSERVER_ADMIN_TOKEN); "
        "without it, /_mock/ is off when --host is not loopback",
    )
    serve.add_argument("--quiet", action="store_true", help="no log line per request")
    serve.add_argument(
        "--no-reload",
        dest="reload",
        action="store_false",
        help="do not reload --scenarios files when they change",
    )
    serve.add_argument(
        "--reload-interval", type=float, default=0.25, metavar="SECONDS", help=argparse.SUPPRESS
    )
    _recording_flags(serve, record=False)
    _record_parser(sub)
    validate = sub.add_parser("validate", help="check scenario files without serving")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    sub.add_parser("schema", help="print the JSON Schema of scenario files")
    return parser


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _report(err: ScenarioError) -> None:
    for problem in err.problems:
        print(problem, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "schema":
        print(json.dumps(FILE, indent=2))
        return 0
    if args.command == "validate":
        try:
            scenarios = load_paths(args.paths)
        except ScenarioError as err:
            _report(err)
            print(f"{len(err.problems)} problem(s)", file=sys.stderr)
            return 1
        print(f"ok: {len(scenarios)} scenario(s)")
        return 0
    if args.command == "record":
        return _record(args)
    if not 0 <= args.port <= 65535:
        _parser().error(f"--port must be between 0 and 65535, got {args.port}")
    minimums = (
        ("--workers", args.workers, 1),
        ("--speed", args.speed, 0),
        ("--rpm", args.rpm, 0),
        ("--tpm", args.tpm, 0),
        ("--max-body", args.max_body, 0),
        ("--journal-size", args.journal_size, 0),
        ("--idle-timeout", args.idle_timeout, 0),
        ("--shutdown-timeout", args.shutdown_timeout, 0),
        ("--reload-interval", args.reload_interval, 0.01),
    )
    for flag, value, least in minimums:
        if value is not None and value < least:
            _parser().error(f"{flag} must be >= {least}, got {value}")
    try:
        defaults = load_defaults()
        scenarios = load_paths(args.scenarios) if args.scenarios else defaults
        fallback = next(s for s in defaults if s.name == "default")
    except ScenarioError as err:
        _report(err)
        return 1
    logging.basicConfig(format="%(message)s", level=logging.WARNING if args.quiet else logging.INFO)
    loopback = is_loopback(args.host)
    if not loopback:
        admin = "require the admin token" if args.admin_token else "are off (no --admin-token)"
        log.warning(
            "mockserver: --host %s is reachable from other machines; anyone who can reach it "
            "gets scripted replies, and the /_mock/ admin endpoints %s.",
            args.host,
            admin,
        )
    options = Options(
        profile=PROFILES[args.profile],
        api_keys=frozenset(args.api_key),
        speed=args.speed,
        max_body=args.max_body,
        journal_size=args.journal_size,
        fallback=fallback if args.unmatched == "default" else None,
        quiet=args.quiet,
        watch=tuple(args.scenarios) if args.reload else (),
        reload_interval=args.reload_interval,
        shutdown_timeout=args.shutdown_timeout,
        idle_timeout=args.idle_timeout,
        admin_token=args.admin_token,
        admin_enabled=loopback or args.admin_token is not None,
        rate_limit=None if args.rpm is None and args.tpm is None else RateLimit(args.rpm, args.tpm),
    )
    options = replace(options, recorder=_serve_recorder(args))
    if options.recorder is not None and not args.scenarios:
        scenarios = []  # the demo set's catch-all would answer everything: nothing to record
    gc.collect()
    gc.freeze()  # loaded scenarios live as long as the server (and workers fork from here)

    def announce(port: int) -> None:
        workers = f" ({args.workers} workers)" if args.workers > 1 else ""
        print(f"mockserver listening on http://{args.host}:{port}/v1{workers}", flush=True)

    try:
        if args.workers > 1:

            def worker_app(index: int) -> web.Application:
                return create_app(scenarios, replace(options, workers=args.workers, worker=index))

            return serving.serve_workers(
                worker_app, args.host, args.port, args.workers, announce, args.shutdown_timeout
            )
        asyncio.run(
            serving.serve(create_app(scenarios, options), args.host, args.port, ready=announce)
        )
    except OSError as err:
        print(f"mockserver: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    finally:
        print("mockserver stopped", flush=True)
    return 0


# --- Recording: `mockserver record`, and `serve --record-missing` -------------------------------


def _recording_flags(parser: argparse.ArgumentParser, record: bool) -> None:
    group = parser.add_argument_group("recording" if record else "recording (--record-missing)")
    if not record:
        group.add_argument(
            "--record-missing",
            action="store_true",
            help="forward requests no scenario answers to --upstream and record them in --out",
        )
    group.add_argument(
        "--upstream",
        required=record,
        metavar="URL",
        help="the real API's base URL, as a client would use it (https://api.openai.com/v1)",
    )
    group.add_argument("--out", required=record, metavar="DIR", help="where recordings go")
    group.add_argument(
        "--redact",
        action="append",
        default=[],
        metavar="REGEX",
        help="replace matches in everything recorded (and before the request digest)",
    )
    group.add_argument(
        "--digest-fields",
        metavar="A,B,...",
        help="what a recording's digest covers (default: " + ",".join(DEFAULT_FIELDS) + ")",
    )
    group.add_argument(
        "--upstream-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long the upstream may stay silent before a 504 (or a recorded stall)",
    )


def _record_parser(sub: Any) -> None:
    record = sub.add_parser(
        "record", help="proxy to a real API and write the exchanges as scenario files"
    )
    record.add_argument("--host", default="127.0.0.1")
    record.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    record.add_argument(
        "--scenarios",
        nargs="+",
        default=[],
        metavar="PATH",
        help="answer what these match locally; forward and record only the rest",
    )
    record.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than loopback (the proxy uses its clients' credentials)",
    )
    record.add_argument("--speed", type=float, default=1.0, metavar="FACTOR")
    record.add_argument("--quiet", action="store_true", help="no log line per request")
    _recording_flags(record, record=True)


def _make_recorder(args: argparse.Namespace, forward_all: bool) -> Recorder:
    """The recorder the flags describe; exits with a clear message when they are wrong."""
    error = _parser().error
    if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", args.upstream or ""):
        error(f"--upstream must be an http:// or https:// URL, got {args.upstream!r}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        error(f"--out must be a folder, and {args.out} is a file")
    if args.upstream_timeout <= 0:
        error(f"--upstream-timeout must be > 0, got {args.upstream_timeout}")
    fields = DEFAULT_FIELDS
    if args.digest_fields is not None:
        fields = tuple(f.strip() for f in args.digest_fields.split(",") if f.strip())
        if not fields:
            error("--digest-fields needs at least one field")
    for pattern in args.redact:
        if len(pattern) >= 8 and re.escape(pattern) == pattern:
            log.warning(
                "mockserver: --redact %r looks like a secret itself; recorded files carry their "
                "patterns, so prefer a pattern such as 'sk-[A-Za-z0-9_-]+'",
                pattern[:4] + "...",
            )
    try:
        return Recorder(
            upstream=args.upstream,
            out=Path(args.out),
            forward_all=forward_all,
            redact=args.redact,
            fields=fields,
            timeout=args.upstream_timeout,
        )
    except ValueError as err:
        error(str(err))
        raise  # unreachable: error() exits


def _serve_recorder(args: argparse.Namespace) -> Recorder | None:
    """`serve --record-missing`: checked here so `serve` without it is unchanged."""
    if not args.record_missing:
        if args.upstream or args.out or args.redact or args.digest_fields:
            _parser().error("--upstream, --out, --redact and --digest-fields need --record-missing")
        return None
    if not (args.upstream and args.out):
        _parser().error("--record-missing needs --upstream URL and --out DIR")
    if args.workers != 1:
        _parser().error("--record-missing records from one process: use --workers 1")
    if args.unmatched == "default":
        _parser().error("--record-missing forwards what no scenario matches: drop --unmatched")
    return _make_recorder(args, forward_all=False)


def _record(args: argparse.Namespace) -> int:
    """`mockserver record`: a loopback proxy that records (every request, or the misses of
    --scenarios)."""
    if not 0 <= args.port <= 65535:
        _parser().error(f"--port must be between 0 and 65535, got {args.port}")
    if args.speed < 0:
        _parser().error(f"--speed must be >= 0, got {args.speed}")
    if not is_loopback(args.host) and not args.allow_remote:
        _parser().error(
            f"--host {args.host} is not loopback: anyone who reaches it could use the proxy; "
            "pass --allow-remote if that is what you want"
        )
    recorder = _make_recorder(args, forward_all=not args.scenarios)
    try:
        scenarios = load_paths(args.scenarios) if args.scenarios else []
    except ScenarioError as err:
        _report(err)
        return 1
    logging.basicConfig(format="%(message)s", level=logging.WARNING if args.quiet else logging.INFO)
    options = Options(
        speed=args.speed,
        quiet=args.quiet,
        watch=tuple(args.scenarios),
        recorder=recorder,
        admin_enabled=is_loopback(args.host),
    )

    def announce(port: int) -> None:
        mode = "misses of --scenarios" if args.scenarios else "every request"
        print(
            f"mockserver recording on http://{args.host}:{port}/v1 -> {args.upstream} "
            f"({mode}) into {args.out}",
            flush=True,
        )

    try:
        asyncio.run(
            serving.serve(create_app(scenarios, options), args.host, args.port, ready=announce)
        )
    except OSError as err:
        print(f"mockserver: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    finally:
        print("mockserver stopped", flush=True)
    return 0
