"""Scenario files -> ``Scenario`` objects. All checking happens here, once, before serving.

Every defect is reported as ``file:line: key.path: message`` and all of a set's defects are
collected before ``ScenarioError`` is raised, so one run of ``mockserver validate`` shows them all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import Problem, ScenarioError
from ..core.request import arguments_json
from ..core.vectors import from_base64
from ..media.blobs import Blob, blob
from .lint import duplicate_names, regex_groups
from .matching import Recorded, build_conditions
from .ratelimit import RateLimit
from .scenario import (
    AfterLast,
    Cadence,
    Condition,
    ErrorReply,
    Fault,
    Message,
    RawReply,
    Reply,
    Scenario,
    Step,
    TaskScript,
    TaskState,
    ToolCall,
)
from .schema import FILE, SCENARIO_KEYS, format_path, validate
from .schema import Path as KeyPath
from .templates import Template, blank_placeholders, compile_template

SUFFIXES = (".yaml", ".yml", ".json")
DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")
_MAX_NODES = 200_000
_PIECE_KINDS = ("reasoning", "refusal", "arguments")  # cadence chunks other than content
# libyaml when PyYAML was built with it (the wheels are): composing is 20x faster than pure Python.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})

_ERROR_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
_ERROR_MESSAGES = {
    400: "Bad request.",
    401: "Incorrect API key provided.",
    403: "You are not allowed to access this resource.",
    404: "The model does not exist or you do not have access to it.",
    408: "Request timed out.",
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
}


class _Located:
    """Parsed YAML plus the line of every key path, for error messages."""

    def __init__(self, data: Any, lines: dict[KeyPath, int]) -> None:
        self.data = data
        self.lines = lines

    def line(self, path: KeyPath) -> int | None:
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)


_NO_CADENCE = Cadence()
"""The cadence of every step that states none: one object, not one a step."""


def _compose(text: str, source: str) -> _Located:
    """Parse with libyaml; if the text is not valid YAML, parse again with PyYAML's own parser,
    whose messages say more (and are the ones documented)."""
    if _Loader is yaml.SafeLoader:
        return _compose_with(yaml.SafeLoader, text, source)
    try:
        return _compose_with(_Loader, text, source)
    except ScenarioError as err:
        if not any(p.message.startswith("invalid YAML") for p in err.problems):
            raise
    return _compose_with(yaml.SafeLoader, text, source)


def _compose_with(loader_class: type[Any], text: str, source: str) -> _Located:
    try:
        loader = loader_class(text)
    except yaml.reader.ReaderError as err:
        at = text.count("\n", 0, err.position) + 1
        char = chr(err.character) if isinstance(err.character, int) else err.character
        what = f"character {char!r} is not allowed in YAML ({err.reason})"
        raise ScenarioError([Problem(source, at, "", f"invalid YAML: {what}")]) from None
    try:
        node = loader.get_single_node()
        lines: dict[KeyPath, int] = {}
        budget = [_MAX_NODES]

        def convert(node: yaml.Node, path: KeyPath) -> Any:
            budget[0] -= 1
            if budget[0] < 0:
                raise ScenarioError([Problem(source, None, "", "document too large")])
            lines.setdefault(path, node.start_mark.line + 1)
            if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
                raise ScenarioError(
                    [
                        Problem(
                            source,
                            node.start_mark.line + 1,
                            format_path(path),
                            f"unsupported YAML tag {node.tag!r}",
                        )
                    ]
                )
            if isinstance(node, yaml.MappingNode):
                loader.flatten_mapping(node)
                out: dict[Any, Any] = {}
                for key_node, value_node in node.value:
                    key = loader.construct_object(key_node, deep=True)
                    if not isinstance(key, str | int | float | bool) and key is not None:
                        raise ScenarioError(
                            [
                                Problem(
                                    source,
                                    key_node.start_mark.line + 1,
                                    format_path(path),
                                    "keys must be plain strings",
                                )
                            ]
                        )
                    key = str(key) if not isinstance(key, str) else key
                    if key in out:
                        raise ScenarioError(
                            [
                                Problem(
                                    source,
                                    key_node.start_mark.line + 1,
                                    format_path((*path, key)),
                                    "duplicate key",
                                )
                            ]
                        )
                    lines[(*path, key)] = key_node.start_mark.line + 1
                    out[key] = convert(value_node, (*path, key))
                return out
            if isinstance(node, yaml.SequenceNode):
                return [convert(item, (*path, i)) for i, item in enumerate(node.value)]
            return loader.construct_object(node, deep=True)

        data = convert(node, ()) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(err, "problem", None) or str(err)
        raise ScenarioError([Problem(source, line, "", f"invalid YAML: {what}")]) from None
    except RecursionError:
        raise ScenarioError([Problem(source, None, "", "document nested too deeply")]) from None
    finally:
        loader.dispose()
    return _Located(data, lines)


def _seconds(value: Any) -> float:
    return float(value or 0)


def _error_reply(spec: Mapping[str, Any]) -> ErrorReply:
    """The step's error; a ``type`` it does not state stays None, for the protocol answering
    to choose (OpenAI's ``invalid_request_error`` is Anthropic's ``not_found_error`` on a 404)."""
    status = int(spec["status"])
    return ErrorReply(
        status=status,
        message=spec.get("message", _ERROR_MESSAGES.get(status, f"Error {status}.")),
        type=spec.get("type"),
        param=spec.get("param"),
        code=spec.get("code", _ERROR_CODES.get(status)),
    )


class _Builder:
    """Turns one validated scenario mapping into a ``Scenario``, collecting located problems."""

    def __init__(self, located: _Located, source: str) -> None:
        self.located = located
        self.source = source
        self.problems: list[Problem] = []
        self.shared_limit: RateLimit | None = None
        # Regex groups the scenario being built captures; None when unknown (a bad regex).
        self.groups: frozenset[str] | None = frozenset()
        self.flagged: list[KeyPath] = []  # where the schema found problems
        self.literal = False  # the reply being built says ``templates: false``
        self.verbatim = False  # the scenario being built is a recording (``match.recorded``)

    def rate_limit(self, spec: Mapping[str, Any] | None, path: KeyPath) -> RateLimit | None:
        if spec is None:
            return None
        if "requests" not in spec and "tokens" not in spec:
            self.problem(
                path, "a rate limit needs 'requests' or 'tokens' (or both)", structural=True
            )
        return RateLimit(spec.get("requests"), spec.get("tokens"), float(spec.get("per", 60)))

    def problem(self, path: KeyPath, message: str, structural: bool = False) -> None:
        """``structural``: a consequence of the file's shape, dropped when the schema already
        reported a problem there (a misspelled 'reply' is not also "a step needs a reply")."""
        if structural and any(p[: len(path)] == path for p in self.flagged):
            return
        line = self.located.line(path)
        self.problems.append(Problem(self.source, line, format_path(path), message))

    def text(self, value: Any, path: KeyPath, in_json: bool = False) -> Any:
        if value is None or self.literal:
            return value
        compiled, problems = compile_template(value, in_json)
        for problem in problems:
            self.problem(path, problem)
        literals = [compiled] if isinstance(compiled, str) else compiled.parts[0::2]
        for literal in literals:
            start = literal.find("{{")
            if start >= 0:
                # Served literally otherwise: an unclosed or garbled placeholder is a typo.
                piece = literal[start : start + 24]
                self.problem(
                    path,
                    f"{piece!r} is not a placeholder (unclosed '{{{{'?); "
                    "placeholders are written '{{ name }}'",
                )
        if isinstance(compiled, Template) and self.groups is not None:
            self.check_groups(compiled, path)
        return compiled

    def check_groups(self, template: Template, path: KeyPath) -> None:
        """``{{ match.NAME }}`` must name a group of one of the scenario's regex conditions:
        otherwise it would always render empty."""
        assert self.groups is not None
        for name in template.parts[1::2]:
            root, _, group = name.partition(".")
            if root != "match" or group in self.groups:
                continue
            if self.groups:
                known = ", ".join(sorted(self.groups, key=lambda g: (g.isdigit(), g)))
                why = f"the scenario's regex conditions capture only: {known}"
            else:
                why = "the scenario has no regex condition with groups"
            self.problem(path, f"'{{{{ {name} }}}}' would always be empty: {why}")

    def arguments(self, value: Any, path: KeyPath) -> Any:
        if value is None:
            return "{}"
        text = arguments_json(value) if isinstance(value, dict) else value
        try:
            json.loads(text if self.literal else blank_placeholders(text))
        except ValueError:
            hint = " (placeholders go inside JSON strings)" if "{{" in text else ""
            self.problem(
                path, f"expected a mapping or a JSON string; this string is not JSON{hint}"
            )
        return self.text(text, path, in_json=True)

    def message(self, spec: Mapping[str, Any], path: KeyPath) -> Message:
        calls = tuple(
            ToolCall(
                name=call["name"],
                arguments=self.arguments(
                    call.get("arguments"), (*path, "tool_calls", i, "arguments")
                ),
                id=call.get("id"),
            )
            for i, call in enumerate(spec.get("tool_calls") or ())
        )
        return Message(
            content=self.text(spec.get("content"), (*path, "content")),
            reasoning=self.text(spec.get("reasoning"), (*path, "reasoning")),
            tool_calls=calls,
            refusal=self.text(spec.get("refusal"), (*path, "refusal")),
            finish_reason=spec.get("finish_reason"),
        )

    def reply(self, spec: Mapping[str, Any], path: KeyPath) -> Reply:
        self.literal = spec.get("templates") is False
        if "choices" in spec:
            choices = tuple(
                self.message(c, (*path, "choices", i)) for i, c in enumerate(spec["choices"])
            )
        else:
            choices = (self.message(spec, path),)
        if "embedding" in spec and "embeddings" in spec:
            self.problem((*path, "embeddings"), "give 'embedding' or 'embeddings', not both")
        key = "embeddings" if "embeddings" in spec else "embedding"
        vectors = spec.get("embeddings") or ([spec["embedding"]] if "embedding" in spec else [])
        floats = []
        for i, vector in enumerate(vectors):
            if not isinstance(vector, str):
                floats.append(tuple(float(x) for x in vector))
                continue
            try:
                floats.append(from_base64(vector))
            except ValueError as err:
                where = (*path, key, i) if key == "embeddings" else (*path, key)
                self.problem(where, f"not a vector in OpenAI's base64 (float32): {err}")
        if "image" in spec and "images" in spec:
            self.problem((*path, "images"), "give 'image' or 'images', not both")
        files = spec.get("images") or ([spec["image"]] if "image" in spec else [])
        key = "images" if "images" in spec else "image"
        images = [self.file(f, (*path, key, i) if key == "images" else (*path, key))
                  for i, f in enumerate(files)]  # fmt: skip
        return Reply(
            choices=choices,
            usage=spec.get("usage"),
            model=spec.get("model"),
            embeddings=tuple(floats),
            embedding_style=spec.get("embedding_style"),
            flagged=tuple(spec["flagged"]) if "flagged" in spec else None,
            scores={k: float(v) for k, v in (spec.get("scores") or {}).items()},
            images=tuple(b for b in images if b is not None),
            revised_prompt=spec.get("revised_prompt"),
            task=self.task(spec["task"], (*path, "task")) if "task" in spec else None,
        )

    def file(self, name: str, path: KeyPath) -> Blob | None:
        """A file a reply serves, read now (relative to the scenario file): a missing file is
        a problem before the server starts, not a 500 on the first request."""
        base = Path(self.source).parent if self.source != "<inline>" else Path()
        try:
            return blob(name, (base / name).read_bytes())
        except OSError as err:
            self.problem(path, f"cannot read {name!r}: {err.strerror or err}")
            return None

    def raw(self, spec: Mapping[str, Any], path: KeyPath) -> RawReply | None:
        """A raw reply: its ``body`` (text) or its ``file`` (bytes, read now), not both."""
        if ("body" in spec) == ("file" in spec):
            self.problem(path, "a raw reply needs 'body' or 'file', not both")
            return None
        status = spec.get("status", 200)
        if "body" in spec:
            content_type = spec.get("content_type", "application/json")
            return RawReply(spec["body"].encode(), status, content_type)
        found = self.file(spec["file"], (*path, "file"))
        if found is None:
            return None
        return RawReply(found.data, status, spec.get("content_type", found.content_type))

    def task(self, spec: Mapping[str, Any], path: KeyPath) -> TaskScript:
        states = spec.get("states")
        for i, state in enumerate(states or ()):
            if "polls" in state and "seconds" in state:
                self.problem((*path, "states", i, "seconds"), "give 'polls' or 'seconds', not both")
        media = self.file(spec["media"], (*path, "media")) if "media" in spec else None
        if not states:
            return TaskScript(media=media)
        return TaskScript(
            states=tuple(
                TaskState(
                    status=s["status"],
                    progress=s.get("progress"),
                    polls=s.get("polls"),
                    seconds=s.get("seconds"),
                    code=s.get("code"),
                    info=s.get("info"),
                    body=s.get("body"),
                )
                for s in states
            ),
            media=media,
        )

    def cadence(self, spec: Mapping[str, Any] | None) -> Cadence:
        if not spec:
            return _NO_CADENCE
        return Cadence(
            first_delay=_seconds(spec.get("first_delay")),
            delay=_seconds(spec.get("delay")),
            jitter=_seconds(spec.get("jitter")),
            cached_first_delay=(
                None
                if spec.get("cached_first_delay") is None
                else _seconds(spec["cached_first_delay"])
            ),
            chunk=spec.get("chunk", "token"),
            chunks=tuple(
                (c["text"], c.get("delay")) for c in spec.get("chunks", ()) if "text" in c
            ),
            pieces=tuple(
                (kind, c.get("call", 0), c[kind], c.get("delay"))
                for c in spec.get("chunks", ())
                for kind in _PIECE_KINDS
                if kind in c
            ),
        )

    def check_chunks(self, spec: Mapping[str, Any], cadence: Cadence, path: KeyPath) -> None:
        where = (*path, "cadence", "chunks")
        for i, chunk in enumerate((spec.get("cadence") or {}).get("chunks") or ()):
            kinds = [k for k in ("text", *_PIECE_KINDS) if k in chunk]
            if len(kinds) != 1:
                self.problem(
                    (*where, i),
                    f"a chunk has one of text, reasoning, refusal, arguments; got {kinds}",
                )
            elif "call" in chunk and kinds != ["arguments"]:
                self.problem((*where, i, "call"), "'call' goes with 'arguments' only")
        reply = spec.get("reply") or {}
        content = reply.get("content")
        spelled = "".join(text for text, _ in cadence.chunks)
        if cadence.chunks and isinstance(content, str) and spelled != content:
            self.problem(where, f"the chunks spell {spelled!r}, but reply.content is {content!r}")
        calls = reply.get("tool_calls") or []
        for kind, call in sorted({(k, c) for k, c, _, _ in cadence.pieces}):
            spelled = "".join(t for k, c, t, _ in cadence.pieces if (k, c) == (kind, call))
            if kind != "arguments":
                target, name = reply.get(kind), f"reply.{kind}"
            elif call < len(calls):
                args = calls[call].get("arguments")
                target = arguments_json(args) if isinstance(args, dict) else args
                name = f"reply.tool_calls[{call}].arguments"
            else:
                self.problem(
                    where, f"arguments chunks for call {call}, but the reply has no such call"
                )
                continue
            if isinstance(target, str) and spelled != target:
                self.problem(
                    where, f"the {kind} chunks spell {spelled!r}, but {name} is {target!r}"
                )

    def step(self, spec: Mapping[str, Any], path: KeyPath, defaults: Mapping[str, Any]) -> Step:
        kinds = [k for k in ("reply", "error", "raw") if k in spec]
        fault = spec.get("fault")
        if len(kinds) > 1:
            self.problem(
                (*path, kinds[1]), f"a step has one of reply, error, raw; got {kinds}", True
            )
        elif not kinds and not (fault and fault["kind"] in ("hang", "reset")):
            self.problem(path, "a step needs one of 'reply', 'error' or 'raw'", structural=True)
        raw = self.raw(spec["raw"], (*path, "raw")) if "raw" in spec else None
        cadence = self.cadence(spec.get("cadence", defaults.get("cadence")))
        self.check_chunks(spec, cadence, path)
        return Step(
            reply=self.reply(spec["reply"], (*path, "reply")) if "reply" in spec else None,
            error=_error_reply(spec["error"]) if "error" in spec else None,
            raw=raw,
            headers={**defaults.get("headers", {}), **spec.get("headers", {})},
            verbatim=self.verbatim,
            delay=_seconds(spec.get("delay")),
            cadence=cadence,
            fault=Fault(
                kind=fault["kind"],
                after_chunks=fault.get("after_chunks", 0),
                nth=fault.get("nth"),
                probability=fault.get("probability"),
                error=_error_reply(fault.get("error") or {"status": 500}),
            )
            if fault
            else None,
        )

    def conditions(self, match: Mapping[str, Any], path: KeyPath) -> tuple[Condition, ...]:
        """Every key's conditions, each key checked on its own so all bad regexes are named."""
        out: list[Condition] = []
        self.groups = frozenset()
        for key, spec in match.items():
            try:
                out.extend(build_conditions({key: spec}))
            except ValueError as err:
                self.problem((*path, "match", key), err.args[1])
                self.groups = None
        if self.groups is not None:
            self.groups = regex_groups(out)
        return tuple(out)

    def scenario(
        self, spec: Mapping[str, Any], path: KeyPath, defaults: Mapping[str, Any], name: str
    ) -> Scenario:
        conditions = self.conditions(spec.get("match") or {}, path)
        self.verbatim = any(isinstance(c, Recorded) for c in conditions)
        if "steps" in spec:
            step_keys = [k for k in ("reply", "error", "raw", "fault") if k in spec]
            if step_keys:
                self.problem(
                    (*path, step_keys[0]), "put it inside a step when 'steps' is used", True
                )
            steps = tuple(
                self.step(s, (*path, "steps", i), {**defaults, **spec})
                for i, s in enumerate(spec["steps"])
            )
        else:
            steps = (self.step(spec, path, defaults),)
        return Scenario(
            name=spec.get("name", name),
            steps=steps,
            conditions=conditions,
            priority=spec.get("priority", defaults.get("priority", 0)),
            seed=spec.get("seed", defaults.get("seed", 0)),
            after_last=AfterLast(spec.get("after_last", "repeat")),
            conversation_header=(spec.get("conversation") or {}).get("header"),
            rate_limit=self.rate_limit(spec.get("rate_limit"), (*path, "rate_limit"))
            or self.shared_limit,
            source=self.source,
            line=self.located.line(path),
        )


Includer = Callable[[list[str], _Located], list[Scenario]]


def _scenarios_in(
    located: _Located, source: str, stem: str, includer: Includer | None = None
) -> list[Scenario]:
    """Build every scenario of one file, reporting all its problems at once: schema problems
    do not stop the build, so a bad regex or placeholder is named in the same run."""
    checked = list(validate(located.data, FILE))
    problems = [Problem(source, located.line(p), format_path(p), m) for p, m in checked]
    data = located.data
    included: list[Scenario] = []
    if isinstance(data, dict) and data.get("include"):
        if includer is None:
            problems.append(
                Problem(source, located.line(("include",)), "include", "only scenario files "
                        "can include others (paths are relative to the including file)")
            )  # fmt: skip
        elif not any(p[:1] == ("include",) for p, _ in checked):
            included = includer(data["include"], located)
    defaults: Any = {}
    base: KeyPath = ()
    if isinstance(data, list):
        items: Any = data
    elif isinstance(data, dict):
        items, defaults, base = data.get("scenarios"), data.get("defaults") or {}, ("scenarios",)
    else:
        items = None
    if not isinstance(items, list):  # the schema said why
        raise ScenarioError(problems)
    defaults = defaults if isinstance(defaults, dict) else {}
    builder = _Builder(located, source)
    builder.flagged = [p for p, _ in checked]
    out: list[Scenario] = []
    try:
        builder.shared_limit = builder.rate_limit(
            defaults.get("rate_limit"), ("defaults", "rate_limit")
        )
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            name = f"{stem}[{i}]" if len(items) > 1 else stem
            try:
                out.append(builder.scenario(item, (*base, i), defaults, name))
            except (KeyError, TypeError, ValueError, AttributeError):
                if not problems:  # not explained by the schema: a bug, say so loudly
                    raise
    except (KeyError, TypeError, ValueError, AttributeError):
        if not problems:
            raise
    problems = _unique([*problems, *builder.problems, *duplicate_names(out)])
    if problems:
        raise ScenarioError(problems)
    return included + out


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    """In line order, each once (the schema and the builder may both notice one mistake)."""
    seen: dict[str, Problem] = {}
    for problem in problems:
        seen.setdefault(str(problem), problem)
    return sorted(seen.values(), key=lambda p: p.line or 0)


def load_text(text: str, source: str = "<inline>") -> list[Scenario]:
    """Scenarios from YAML (or JSON) text."""
    return _scenarios_in(_compose(text, source), source, Path(source).stem or "inline")


def load_data(data: Any, source: str = "<inline>") -> list[Scenario]:
    """Scenarios from data shaped like a file: one scenario, a list, or ``{scenarios: [...]}``."""
    if isinstance(data, dict) and "scenarios" not in data and set(data) <= set(SCENARIO_KEYS):
        data = [data]
    return _scenarios_in(_Located(data, {}), source, "inline")


def scenario_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """The files ``load_paths`` reads, in the order it reads them."""
    for path in map(Path, paths):
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        else:
            yield path


class _Files:
    """Reads each scenario file once, following ``include:`` only within the file's root."""

    def __init__(self) -> None:
        self.read: list[Path] = []
        self.problems: list[Problem] = []
        self._seen: set[Path] = set()

    def load(self, file: Path, root: Path) -> list[Scenario]:
        real = file.resolve()
        if real in self._seen:
            return []
        self._seen.add(real)
        self.read.append(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            self.problems.append(Problem(str(file), None, "", f"cannot read: {err}"))
            return []

        def includer(patterns: list[str], located: _Located) -> list[Scenario]:
            return self._include(file, root, patterns, located)

        try:
            return _scenarios_in(_compose(text, str(file)), str(file), file.stem, includer)
        except ScenarioError as err:
            self.problems.extend(err.problems)
            return []

    def _include(
        self, file: Path, root: Path, patterns: list[str], located: _Located
    ) -> list[Scenario]:
        out: list[Scenario] = []
        for i, pattern in enumerate(patterns):
            path: KeyPath = ("include", i)
            where = (str(file), located.line(path), format_path(path))
            if Path(pattern).is_absolute() or not any(c in pattern for c in "*?["):
                found = [file.parent / pattern]
            else:
                try:
                    found = sorted(p for p in file.parent.glob(pattern) if p.is_file())
                except ValueError as err:  # e.g. '**' inside a path component
                    self.problems.append(Problem(*where, f"{pattern!r}: {err}"))
                    continue
            for target in found:
                if not target.resolve().is_relative_to(root.resolve()):
                    self.problems.append(
                        Problem(*where, f"{pattern!r} is outside the scenario root {root}")
                    )
                elif not target.is_file():
                    self.problems.append(Problem(*where, f"{pattern!r}: no such file"))
                else:
                    out.extend(self.load(target, root))
            if not found:
                self.problems.append(Problem(*where, f"{pattern!r} matches no file"))
        return out


def _read_all(paths: Iterable[str | os.PathLike[str]]) -> tuple[_Files, list[Scenario]]:
    files = _Files()
    scenarios: list[Scenario] = []
    for path in map(Path, paths):
        root = path if path.is_dir() else path.parent
        for file in scenario_files([path]):
            scenarios.extend(files.load(file, root))
    return files, scenarios


def check_paths(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Scenario], list[Problem]]:
    """The scenarios of the files without problems, and every problem: what ``validate``
    needs to report errors and warnings in one run."""
    files, scenarios = _read_all(paths)
    return scenarios, [*files.problems, *duplicate_names(scenarios)]


def load_paths(
    paths: Iterable[str | os.PathLike[str]], read: list[Path] | None = None
) -> list[Scenario]:
    """Scenarios from files and folders (recursively, in sorted order); every problem reported.

    A file may ``include:`` others, relative to itself, but never outside its root: the folder
    it was found in, or the folder of a file named directly. ``read`` collects the files read.
    """
    files, scenarios = _read_all(paths)
    if read is not None:
        read.extend(files.read)
    problems = [*files.problems, *duplicate_names(scenarios)]
    if problems:
        raise ScenarioError(problems)
    return scenarios


def load_defaults() -> list[Scenario]:
    return load_paths([DEFAULTS_FILE])
