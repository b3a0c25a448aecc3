"""Command line: ``mockserver serve``, ``mockserver validate``, ``mockserver schema``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

from aiohttp import web

from . import serving, supervisor
from .app import create_app
from .errors import APIError, ScenarioError
from .loader import load_defaults, load_paths
from .profiles import PROFILES
from .ratelimit import RateLimit
from .schema import FILE
from .shared import Shared
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
        help="N processes on one port (SO_REUSEPORT) that answer as one: the supervisor owns "
        "sequences, budgets, fault counters and stored responses",
    )
    serve.add_argument(
        "--state",
        metavar="URL",
        help="keep sequences, budgets, fault counters, stored responses and the journal in "
        "Redis (redis://HOST:PORT/DB), shared by every replica that names it",
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


def _store(url: str | None) -> Shared | None:
    from .store_redis import RedisShared

    return RedisShared(url) if url is not None else None


def _store_reachable(url: str) -> bool:
    """Fail closed: a configured store that does not answer means the server does not start."""
    from .store_redis import RedisShared

    try:
        asyncio.run(RedisShared.check(url))
    except (APIError, RuntimeError, ValueError) as err:
        print(f"mockserver: cannot use the state store {url}: {err}", file=sys.stderr)
        return False
    return True


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
    if args.state is not None and not args.state.startswith(("redis://", "rediss://", "unix://")):
        _parser().error(f"--state must be a redis://, rediss:// or unix:// URL, got {args.state}")
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
    if args.state is not None and not _store_reachable(args.state):
        return 1
    gc.collect()
    gc.freeze()  # loaded scenarios live as long as the server (and workers fork from here)

    def announce(port: int) -> None:
        workers = f" ({args.workers} workers)" if args.workers > 1 else ""
        print(f"mockserver listening on http://{args.host}:{port}/v1{workers}", flush=True)

    try:
        if args.workers > 1:
            # The supervisor owns the workers' shared state, unless Redis does (--state).
            owner = supervisor.Socket() if args.state is None else None

            def worker_app(index: int) -> web.Application:
                worker = replace(options, workers=args.workers, worker=index)
                store = _store(args.state) if owner is None else owner.client()
                return create_app(scenarios, worker, store)

            try:
                return serving.serve_workers(
                    worker_app, args.host, args.port, args.workers, announce,
                    args.shutdown_timeout, forked=owner.serve if owner else None,
                )  # fmt: skip
            finally:
                if owner is not None:
                    owner.close()
        app = create_app(scenarios, options, _store(args.state))
        asyncio.run(serving.serve(app, args.host, args.port, ready=announce))
    except OSError as err:
        print(f"mockserver: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    finally:
        print("mockserver stopped", flush=True)
    return 0
