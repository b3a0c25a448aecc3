"""Command line: ``mockserver serve``, ``record``, ``drift``, ``validate``, ``schema``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
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
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from . import serving
from .app import create_app, protocols
from .core.errors import APIError, Problem, ScenarioError
from .core.profiles import PROFILES
from .logs import FORMATS, configure
from .recording import drift
from .recording.provenance import version
from .recording.record import Recorder
from .scenarios.fingerprint import DEFAULT_FIELDS, redact_option
from .scenarios.lint import warnings
from .scenarios.loader import SUFFIXES, check_paths, load_defaults, load_paths, scenario_files
from .scenarios.ratelimit import RateLimit
from .scenarios.schema import FILE
from .state import supervisor
from .state.live import DEFAULT_MAX_BODY, Options
from .state.shared import SharedStore

log = logging.getLogger("mockserver")

DESCRIPTION = (
    "A local mock of the OpenAI-protocol APIs (chat completions, Responses, embeddings) and "
    "Anthropic Messages, driven by YAML scenarios"
)
"""What ``mockserver --help`` says first; the package's description says the same."""


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's default in ``--help``, so nobody has to read the source for it; a help
    text that words its default itself (``default: any key``) is left as written, and a
    required flag, a switch or a flag with no value by default gets none (``default: None``
    says nothing to a reader)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default:" in text or action.required or action.nargs == 0:
            return text
        if action.default is None or action.default == []:
            return text
        return super()._get_help_string(action)


def _version() -> str:
    return version()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mockserver", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"mockserver {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve scenarios over HTTP", formatter_class=_Help)
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind; wider than loopback warns"
    )
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    serve.add_argument(
        "--scenarios",
        nargs="+",
        default=[],
        metavar="PATH",
        help="scenario files or folders (default: the built-in demo scenarios)",
    )
    serve.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="apifactory",
        help="parameter quirks: 'apifactory' imitates the API factory relay, 'openai' OpenAI, "
        "'anthropic' OpenAI's rules plus Anthropic's on /v1/messages, 'gemini' those plus "
        "Google's on the Gemini routes",
    )
    serve.add_argument(
        "--responses-usage",
        choices=("responses", "chat"),
        default="responses",
        help="name Responses API usage as the Responses API does, or as chat does "
        "(prompt_tokens, ...: the relay's documented example; the openai SDK rejects it)",
    )
    serve.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="accept only these keys (repeat the flag; default: any key)",
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
        "--rpm",
        type=int,
        metavar="N",
        help="requests per minute per API key and model (default: no limit)",
    )
    serve.add_argument(
        "--tpm",
        type=int,
        metavar="N",
        help="tokens per minute per API key and model (default: no limit)",
    )
    serve.add_argument(
        "--prompt-cache",
        action="store_true",
        help="simulate prompt caching by each provider's rules: cached_tokens (OpenAI), "
        "cache_read/cache_creation_input_tokens (Anthropic cache_control); default: off",
    )
    serve.add_argument(
        "--prompt-cache-ttl",
        type=_seconds_above_zero,
        default=300.0,
        metavar="SECONDS",
        help="idle seconds an automatic (OpenAI) cache entry lives (default: 300); Anthropic's "
        "entries live by their own cache_control ttl (5m or 1h)",
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
        "Redis (redis://HOST:PORT/DB), shared by every replica that names it (default: none: "
        "each process keeps its own, or with --workers the supervisor does)",
    )
    serve.add_argument(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help="larger request bodies get a 413",
    )
    serve.add_argument(
        "--journal-size", type=int, default=1000, metavar="N", help="requests the journal keeps"
    )
    serve.add_argument(
        "--admin-token",
        default=None,
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN' on /_mock/ (default: $MOCKSERVER_ADMIN_TOKEN, "
        "else none); without it, /_mock/ is off when --host is not loopback",
    )
    serve.add_argument(
        "--quiet", action="store_true", help="no log line per request, only warnings and errors"
    )
    serve.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="log lines as text (with a timestamp) or one JSON object per line",
    )
    serve.add_argument(
        "--no-reload",
        dest="reload",
        action="store_false",
        help="do not reload --scenarios files when they change (default: reload)",
    )
    serve.add_argument(
        "--reload-interval", type=float, default=0.25, metavar="SECONDS", help=argparse.SUPPRESS
    )
    _recording_flags(serve, record=False)
    _record_parser(sub)
    _drift_parser(sub)
    validate = sub.add_parser(
        "validate",
        help="check scenario files without serving",
        description="Check scenario files: errors exit 1, warnings are printed and exit 0.",
    )
    validate.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or folders")
    sub.add_parser("schema", help="print the JSON Schema of scenario files")
    return parser


def _seconds_above_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:  # nan too
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of one command, so its errors print its own usage."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise KeyError(name)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _say(text: str, file: TextIO | None = None) -> None:
    """Print, and if the reader has gone (``mockserver schema | head``), stop printing quietly
    instead of ending in a BrokenPipeError traceback."""
    out = file if file is not None else sys.stdout
    try:
        print(text, file=out, flush=True)
    except BrokenPipeError:
        _silence(out)


def _silence(stream: TextIO) -> None:
    """Point ``stream`` at /dev/null, so the flush at exit cannot raise again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def _report(problems: Sequence[Problem]) -> None:
    for problem in problems:
        _say(str(problem), sys.stderr)


def _store(url: str | None) -> SharedStore | None:
    from .state.redis_store import RedisBackend

    return SharedStore(RedisBackend(url)) if url is not None else None


def _store_reachable(url: str) -> bool:
    """Fail closed: a configured store that does not answer means the server does not start."""
    from .state.redis_store import RedisBackend

    try:
        asyncio.run(RedisBackend.check(url))
    except (APIError, RuntimeError, ValueError) as err:
        print(f"mockserver: cannot use the state store {url}: {err}", file=sys.stderr)
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # a write _say did not make (argparse's help, say)
        _silence(sys.stdout)
        return 0


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's parser, so its usage (not the top level's) shows
        _subparser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "schema":
        _say(json.dumps(FILE, indent=2))
        return 0
    if args.command == "validate":
        return _validate(args.paths)
    if args.command == "record":
        return _record(args)
    if args.command == "drift":
        return _drift(args, _subparser(parser, "drift"))
    return _serve(args, _subparser(parser, "serve"))


def _validate(paths: Sequence[str]) -> int:
    """Errors exit 1; warnings (a set that serves, but not as its author thinks) exit 0."""
    errors: list[Problem] = []
    for path in paths:
        if Path(path).is_dir() and next(scenario_files([path]), None) is None:
            errors.append(
                Problem(path, None, "", f"no scenario files ({', '.join(SUFFIXES)}) in this folder")
            )
    scenarios, problems = check_paths(paths)
    errors += problems
    if not scenarios and not errors:
        errors.append(Problem(", ".join(paths), None, "", "no scenarios in these files"))
    found = warnings(scenarios)
    _report(errors)
    _report(found)
    tail = f", {len(found)} warning(s)" if found else ""
    if errors:
        _say(f"{len(errors)} problem(s){tail}", sys.stderr)
        return 1
    _say(f"ok: {len(scenarios)} scenario(s){tail}")
    return 0


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
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
            parser.error(f"{flag} must be >= {least}, got {value}")
    if args.state is not None and not args.state.startswith(("redis://", "rediss://", "unix://")):
        parser.error(f"--state must be a redis://, rediss:// or unix:// URL, got {args.state}")
    admin_token = args.admin_token or os.environ.get("MOCKSERVER_ADMIN_TOKEN")
    try:
        defaults = load_defaults()
        scenarios = load_paths(args.scenarios) if args.scenarios else defaults
        fallback = next(s for s in defaults if s.name == "default")
    except ScenarioError as err:
        _report(err.problems)
        _say(f"{len(err.problems)} problem(s); not serving", sys.stderr)
        return 1
    configure(args.log_format, args.quiet)
    for problem in warnings(scenarios):
        log.warning("%s", str(problem).replace(": warning: ", ": ", 1))
    if not scenarios:
        log.warning(
            "mockserver: no scenario loaded from %s: every request will get a 404 "
            "(scenario_not_found) until a scenario file appears there",
            " ".join(args.scenarios),
        )
    loopback = is_loopback(args.host)
    if not loopback:
        admin = "require the admin token" if admin_token else "are off (no --admin-token)"
        log.warning(
            "mockserver: --host %s is reachable from other machines; anyone who can reach it "
            "gets scripted replies, and the /_mock/ admin endpoints %s.",
            args.host,
            admin,
        )
    options = Options(
        profile=PROFILES[args.profile],
        responses_usage=args.responses_usage,
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
        admin_token=admin_token,
        admin_enabled=loopback or admin_token is not None,
        rate_limit=None if args.rpm is None and args.tpm is None else RateLimit(args.rpm, args.tpm),
        prompt_cache=args.prompt_cache,
        prompt_cache_ttl=args.prompt_cache_ttl,
    )
    options = replace(options, recorder=_serve_recorder(args))
    if options.recorder is not None and not args.scenarios:
        scenarios = []  # the demo set's catch-all would answer everything: nothing to record
    if args.state is not None and not _store_reachable(args.state):
        return 1
    gc.collect()
    gc.freeze()  # loaded scenarios live as long as the server (and workers fork from here)
    started = False

    def announce(port: int) -> None:
        nonlocal started
        started = True
        workers = f" ({args.workers} workers)" if args.workers > 1 else ""
        host = f"[{args.host}]" if ":" in args.host else args.host
        base_url = f"http://{host}:{port}/v1"
        where = " ".join(args.scenarios) if args.scenarios else "the built-in demo set"
        _say(f"mockserver listening on {base_url}{workers}")
        _say(f"  scenarios: {len(scenarios)} from {where}")
        note = _PROFILE_NOTES.get(args.profile)
        _say(f"  profile:   {args.profile}" + (f" ({note})" if note else ""))
        keys = "one of the --api-key keys" if args.api_key else "any API key"
        _say(f"  client:    base_url={base_url!r}, {keys}")
        _say(f"  state:     {_state_note(args.state, args.workers)}")
        _say("  Ctrl+C to stop")

    try:
        if args.workers > 1:
            # The supervisor owns the workers' shared state, unless Redis does (--state).
            owner = supervisor.Socket(options.journal_size) if args.state is None else None

            def worker_app(index: int) -> web.Application:
                worker = replace(options, workers=args.workers, worker=index)
                store = _store(args.state) if owner is None else SharedStore(owner.client())
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
        if err.errno == errno.EADDRINUSE:
            _say(
                f"mockserver: port {args.port} on {args.host} is already in use (another "
                f"server, or an earlier mockserver still running). Pick another with "
                f"--port N, or --port 0 for any free port.",
                sys.stderr,
            )
        else:
            _say(f"mockserver: cannot listen on {args.host}:{args.port}: {err}", sys.stderr)
        return 1
    finally:
        if started:
            _say("mockserver stopped")
    return 0


def _state_note(url: str | None, workers: int) -> str:
    """Where sequences, budgets and stored responses live, for the banner (a password in the
    URL is not shown)."""
    if url is None:
        owner = f"shared by the {workers} workers" if workers > 1 else "in this process"
        return f"{owner}; --state redis://HOST:PORT/DB to share it between replicas"
    parts = urlsplit(url)
    if parts.password:
        user = f"{parts.username}:***@" if parts.username else ":***@"
        url = urlunsplit(parts._replace(netloc=user + parts.netloc.rpartition("@")[2]))
    return f"{url} (shared by every replica that names it)"


_PROFILE_NOTES = {
    "apifactory": "the API factory relay's quirks; --profile openai for OpenAI's own behaviour",
    "openai": "OpenAI's own parameter handling",
    "anthropic": "OpenAI's parameter handling, and Anthropic's ranges on /v1/messages",
}


# --- Recording: `mockserver record`, and `serve --record-missing` -------------------------------


def _recording_flags(parser: argparse.ArgumentParser, record: bool) -> None:
    group = parser.add_argument_group("recording" if record else "recording (--record-missing)")
    if not record:
        group.add_argument(
            "--record-missing",
            action="store_true",
            help="forward requests no scenario answers to --upstream and record them in --out",
        )
    unset = "" if record else "; default: none, so nothing is forwarded"
    group.add_argument(
        "--upstream",
        required=record,
        metavar="URL",
        help="the real API's base URL, as a client would use it (https://api.openai.com/v1; "
        "Google's bare host for Gemini, https://generativelanguage.googleapis.com"
        f"{unset}){' (required)' if record else ''}",
    )
    group.add_argument(
        "--out",
        required=record,
        metavar="DIR",
        help="where recordings go" + (" (required)" if record else " (default: none)"),
    )
    group.add_argument(
        "--redact",
        action="append",
        default=[],
        metavar="REGEX",
        help="replace matches in everything recorded (and before the request digest) with "
        "[REDACTED]; NAME=REGEX writes <NAME-1>, <NAME-2>... instead, one per distinct value "
        "and the same in a recording's request and answers; repeatable (default: nothing is "
        "replaced)",
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
        "record",
        help="proxy to a real API and write the exchanges as scenario files",
        formatter_class=_Help,
    )
    record.add_argument("--host", default="127.0.0.1", help="where the proxy listens")
    record.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    record.add_argument(
        "--scenarios",
        nargs="+",
        default=[],
        metavar="PATH",
        help="answer what these match locally; forward and record only the rest "
        "(default: none, every request is forwarded)",
    )
    record.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than loopback (the proxy uses its clients' credentials)",
    )
    record.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="multiply the delays of scenarios answered locally",
    )
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
            redact=[redact_option(p) for p in args.redact],
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
        _report(err.problems)
        _say(f"{len(err.problems)} problem(s); not recording", sys.stderr)
        return 1
    configure("text", args.quiet)
    options = Options(
        speed=args.speed,
        quiet=args.quiet,
        watch=tuple(args.scenarios),
        recorder=recorder,
        admin_enabled=is_loopback(args.host),
    )

    def announce(port: int) -> None:
        mode = "misses of --scenarios" if args.scenarios else "every request"
        _say(
            f"mockserver recording on http://{args.host}:{port}/v1 -> {args.upstream} "
            f"({mode}) into {args.out}"
        )

    try:
        asyncio.run(
            serving.serve(create_app(scenarios, options), args.host, args.port, ready=announce)
        )
    except OSError as err:
        _say(f"mockserver: cannot listen on {args.host}:{args.port}: {err}", sys.stderr)
        return 1
    finally:
        _say("mockserver stopped")
    return 0


# --- Drift: `mockserver drift` ------------------------------------------------------------------


def _drift_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "drift",
        help="send recorded requests to the real API again and say which answers changed",
        description="Send every recorded request under PATH to --upstream again and compare "
        "the answers with the recordings. Exit status: 0 all the same, 1 some changed or "
        "failed, 2 usage errors (no recordings, bad flags, the key variable not set).",
        formatter_class=_Help,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="recording files or folders")
    parser.add_argument(
        "--upstream",
        required=True,
        default=argparse.SUPPRESS,  # required: no default to show
        metavar="URL",
        help="the real API's base URL, as a client would use it (https://api.openai.com/v1)",
    )
    parser.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="the environment variable holding the upstream's API key (default: each "
        "protocol's own: OPENAI_API_KEY, ANTHROPIC_API_KEY for Messages)",
    )
    parser.add_argument(
        "--min-similarity",
        type=float,
        default=0.8,
        metavar="X",
        help="a text whose meaning is less similar than this (0-1) to the recorded one changed",
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="requests in flight at once"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long one answer may take before the recording counts as failed",
    )
    parser.add_argument(
        "--report", metavar="FILE", help="write the results as JSON (default: none)"
    )
    parser.add_argument(
        "--junit", metavar="FILE", help="write the results as JUnit XML (default: none)"
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="rewrite each changed recording from the live answer (nothing else is written)",
    )


def _drift(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`mockserver drift`: 0 every recording the same, 1 any changed or failed, 2 usage."""
    if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", args.upstream):
        parser.error(f"--upstream must be an http:// or https:// URL, got {args.upstream!r}")
    if not 0 <= args.min_similarity <= 1:
        parser.error(f"--min-similarity must be between 0 and 1, got {args.min_similarity}")
    if args.concurrency < 1:
        parser.error(f"--concurrency must be >= 1, got {args.concurrency}")
    if args.timeout <= 0:
        parser.error(f"--timeout must be > 0, got {args.timeout}")
    known = {p.name: p for p in protocols(Options())}
    try:
        recordings = drift.find(args.paths)
    except drift.DriftError as err:
        _say(f"mockserver drift: {err}", sys.stderr)
        return 2
    if not recordings:
        _say(
            f"mockserver drift: no recordings in {' '.join(args.paths)} (files written by "
            "`mockserver record`, whose scenarios have match.recorded)",
            sys.stderr,
        )
        return 2
    if not any(r.source for r in recordings):
        _say(
            f"mockserver drift: none of the {len(recordings)} recording(s) can be checked: they "
            "were made before recordings kept their request; record them again",
            sys.stderr,
        )
        return 2
    names = {args.api_key_env} if args.api_key_env else drift.key_variables(recordings, known)
    missing = sorted(n for n in names if not os.environ.get(n))
    if missing:
        _say(
            f"mockserver drift: the environment variable {', '.join(missing)} is not set: it "
            "holds the upstream's API key (--api-key-env NAME reads another)",
            sys.stderr,
        )
        return 2
    check = drift.Check(
        upstream=args.upstream,
        protocols=known,
        key=lambda p: os.environ[args.api_key_env or p.key_variable],
        min_similarity=args.min_similarity,
        concurrency=args.concurrency,
        timeout=args.timeout,
    )
    results = asyncio.run(drift.run(recordings, check))
    for result in results:
        _say(result.line())
    if args.update:
        for path in drift.update(results, args.upstream):
            _say(f"updated {path}")
    _say(drift.summary(results, args.upstream))
    if args.report:
        text = json.dumps(drift.report(results, args.upstream), indent=2, ensure_ascii=False)
        Path(args.report).write_text(text + "\n", encoding="utf-8")
    if args.junit:
        Path(args.junit).write_text(drift.junit(results), encoding="utf-8")
    bad = any(r.verdict in (drift.CHANGED, drift.FAILED) for r in results)
    return 1 if bad else 0
