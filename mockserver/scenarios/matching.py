"""Which scenario, and which of its steps, answers a request.

Conditions are pure checks that also say why they failed, so an unmatched request gets a
report naming its nearest scenarios. Scenarios are indexed by their ``last_user`` condition:
exact strings in a dict, ``contains`` strings (and the plain text a ``regex`` requires) in an
Aho-Corasick automaton, so a request only checks the scenarios whose text it holds, however
many are loaded. The rest are tried in turn.
"""

from __future__ import annotations

import difflib
import heapq
import re
import re._parser as sre_parser  # type: ignore[import-not-found]
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from ..core.errors import APIError
from ..core.request import Request, field_at, message_text
from .fingerprint import DEFAULT_FIELDS, Redactor, cached_covers, cached_digest, differences
from .scenario import ALL_APIS, VECTOR_APIS, AfterLast, Captures, Condition, Scenario, Step

# Sequence positions kept, oldest conversation forgotten first: endless conversations in a
# load test must not grow memory without bound.
_CONVERSATIONS = 100_000
_NO_CAPTURES: Captures = {}


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


@dataclass(frozen=True)
class TextMatch:
    op: str
    value: str

    def __post_init__(self) -> None:
        if self.op == "regex":
            object.__setattr__(self, "_regex", re.compile(self.value))

    def test(self, text: str) -> Captures | None:
        if self.op == "exact":
            return _NO_CAPTURES if text == self.value else None
        if self.op == "contains":
            return _NO_CAPTURES if self.value in text else None
        found = self._regex.search(text)  # type: ignore[attr-defined]
        if found is None:
            return None
        return {
            **{str(i + 1): g or "" for i, g in enumerate(found.groups())},
            **{k: v or "" for k, v in found.groupdict().items()},
        }

    def __str__(self) -> str:
        return f"{self.op} {_short(self.value)}"


@dataclass(frozen=True)
class ModelIs:
    pattern: str

    def check(self, request: Request) -> Captures | None:
        ok = request.model == self.pattern or fnmatchcase(request.model, self.pattern)
        return _NO_CAPTURES if ok else None

    def explain(self, request: Request) -> str:
        return f"model {self.pattern!r}, got {request.model!r}"

    def describe(self) -> str:
        return f"model {self.pattern!r}"


@dataclass(frozen=True)
class TextIs:
    field: str
    match: TextMatch

    def _texts(self, request: Request) -> Iterable[str]:
        if self.field == "last_user":
            return (request.last_user,)
        if self.field == "system":
            return (request.system,)
        return (message_text(m) for m in request.messages)

    def check(self, request: Request) -> Captures | None:
        for text in self._texts(request):
            found = self.match.test(text)
            if found is not None:
                return found
        return None

    def explain(self, request: Request) -> str:
        got = request.system if self.field == "system" else request.last_user
        return f"{self.field} {self.match}, got {_short(got)}"

    def describe(self) -> str:
        return f"{self.field} {self.match}"


def _last_role(request: Request) -> str | None:
    return request.messages[-1]["role"] if request.messages else None


@dataclass(frozen=True)
class ApiIs:
    """The protocol the request spoke: chat, responses, messages or embeddings."""

    api: str

    def check(self, request: Request) -> Captures | None:
        return _NO_CAPTURES if request.api == self.api else None

    def explain(self, request: Request) -> str:
        return f"api {self.api!r}, got {request.api!r}"

    def describe(self) -> str:
        return f"api {self.api!r}"


@dataclass(frozen=True)
class LastRole:
    role: str

    def check(self, request: Request) -> Captures | None:
        return _NO_CAPTURES if _last_role(request) == self.role else None

    def explain(self, request: Request) -> str:
        return f"last_role {self.role!r}, got {_last_role(request)!r}"

    def describe(self) -> str:
        return f"last_role {self.role!r}"


@dataclass(frozen=True)
class ToolsOffered:
    names: tuple[str, ...]

    def check(self, request: Request) -> Captures | None:
        offered = request.tool_names
        return _NO_CAPTURES if all(n in offered for n in self.names) else None

    def explain(self, request: Request) -> str:
        return f"tools {list(self.names)}, got {request.tool_names}"

    def describe(self) -> str:
        return f"tools {list(self.names)}"


@dataclass(frozen=True)
class ToolChoiceIs:
    value: str

    def check(self, request: Request) -> Captures | None:
        return _NO_CAPTURES if request.tool_choice == self.value else None

    def explain(self, request: Request) -> str:
        return f"tool_choice {self.value!r}, got {request.tool_choice!r}"

    def describe(self) -> str:
        return f"tool_choice {self.value!r}"


@dataclass(frozen=True)
class StreamIs:
    stream: bool

    def check(self, request: Request) -> Captures | None:
        return _NO_CAPTURES if request.stream is self.stream else None

    def explain(self, request: Request) -> str:
        return f"stream {self.stream}, got {request.stream}"

    def describe(self) -> str:
        return f"stream {self.stream}"


@dataclass(frozen=True)
class ResponseFormatIs:
    type: str

    def check(self, request: Request) -> Captures | None:
        return _NO_CAPTURES if (request.response_format or "text") == self.type else None

    def explain(self, request: Request) -> str:
        return f"response_format {self.type!r}, got {request.response_format!r}"

    def describe(self) -> str:
        return f"response_format {self.type!r}"


@dataclass(frozen=True)
class HeaderIs:
    name: str
    match: TextMatch

    def check(self, request: Request) -> Captures | None:
        value = request.headers.get(self.name)
        return None if value is None else self.match.test(value)

    def explain(self, request: Request) -> str:
        return f"header {self.name} {self.match}, got {request.headers.get(self.name)!r}"

    def describe(self) -> str:
        return f"header {self.name} {self.match}"


@dataclass(frozen=True)
class BodyField:
    path: str
    value: Any

    def check(self, request: Request) -> Captures | None:
        got = field_at(request.body, self.path)
        if isinstance(self.value, TextMatch):
            return self.value.test(got) if isinstance(got, str) else None
        return _NO_CAPTURES if got == self.value else None

    def explain(self, request: Request) -> str:
        shown = self.value if isinstance(self.value, TextMatch) else repr(self.value)
        return f"body.{self.path} {shown}, got {field_at(request.body, self.path)!r}"

    def describe(self) -> str:
        shown = self.value if isinstance(self.value, TextMatch) else repr(self.value)
        return f"body.{self.path} {shown}"


@dataclass(frozen=True)
class FileIs:
    """The uploaded file (``body.file``, as the audio protocols describe it): its name, its
    SHA-256 digest, or both."""

    name: TextMatch | None = None
    sha256: str | None = None

    def check(self, request: Request) -> Captures | None:
        file = request.body.get("file")
        if not isinstance(file, dict):
            return None
        if self.sha256 is not None and file.get("sha256") != self.sha256:
            return None
        if self.name is None:
            return _NO_CAPTURES
        name = file.get("filename")
        return self.name.test(name) if isinstance(name, str) else None

    def _wanted(self) -> str:
        return ", ".join(
            ([f"name {self.name}"] if self.name else [])
            + ([f"sha256 {self.sha256[:12]}"] if self.sha256 else [])
        )

    def describe(self) -> str:
        return f"file {self._wanted()}"

    def explain(self, request: Request) -> str:
        file = request.body.get("file")
        got = (file.get("filename"), file.get("sha256")) if isinstance(file, dict) else None
        wanted = self._wanted()
        if got is None:
            return f"file {wanted}, got no file"
        return f"file {wanted}, got {_short(got[0] or '')} ({(got[1] or '')[:12]})"


@dataclass(frozen=True)
class Recorded:
    """A recording's request, exactly: the digest of its canonical form (``fingerprint``),
    computed with the fields and redaction patterns the recording was made with."""

    digest: str
    fields: tuple[str, ...] = DEFAULT_FIELDS
    redactor: Redactor = field(default_factory=Redactor)
    covers: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    """What the digest covered, readable (``fingerprint.covers``): says which field differs."""

    def check(self, request: Request) -> Captures | None:
        ok = cached_digest(request, self.fields, self.redactor) == self.digest
        return _NO_CAPTURES if ok else None

    def explain(self, request: Request) -> str:
        if self.covers:
            changed = differences(self.covers, cached_covers(request, self.fields, self.redactor))
            if changed:
                return "recording differs in " + "; ".join(changed)
        got = cached_digest(request, self.fields, self.redactor)
        return (
            f"recorded request {self.digest[:12]}, got {got[:12]} (model, conversation, tools...)"
        )

    def describe(self) -> str:
        return f"recorded request {self.digest[:12]} ({', '.join(self.fields)})"


def _recorded(spec: str | Mapping[str, Any]) -> Recorded:
    if isinstance(spec, str):
        return Recorded(spec)
    try:
        redactor = Redactor(spec.get("redact") or ())
    except ValueError as err:
        raise ValueError("recorded", str(err)) from None
    fields = tuple(spec.get("fields") or DEFAULT_FIELDS)
    return Recorded(spec["digest"], fields, redactor, spec.get("covers"))


def text_match(spec: str | Mapping[str, str]) -> TextMatch:
    if isinstance(spec, str):
        return TextMatch("exact", spec)
    ((op, value),) = spec.items()
    return TextMatch(op, value)


def build_conditions(match: Mapping[str, Any]) -> tuple[Condition, ...]:
    """Conditions from a validated ``match`` mapping; raises ``ValueError(key, message)``."""
    out: list[Condition] = []
    for key, spec in match.items():
        try:
            out.extend(_build(key, spec))
        except re.error as err:
            raise ValueError(key, f"invalid regex: {err}") from None
    return tuple(out)


def _build(key: str, spec: Any) -> Iterator[Condition]:
    if key == "api":
        yield ApiIs(spec)
    elif key == "model":
        yield ModelIs(spec)
    elif key in ("last_user", "any_message", "system"):
        yield TextIs(key, text_match(spec))
    elif key == "last_role":
        yield LastRole(spec)
    elif key == "tools":
        yield ToolsOffered(tuple(spec))
    elif key == "tool_choice":
        yield ToolChoiceIs(spec)
    elif key == "stream":
        yield StreamIs(spec)
    elif key == "response_format":
        yield ResponseFormatIs(spec)
    elif key == "headers":
        for name, value in spec.items():
            yield HeaderIs(name, text_match(value))
    elif key == "recorded":
        yield _recorded(spec)
    elif key == "file":
        if isinstance(spec, str):
            yield FileIs(TextMatch("exact", spec))
        else:
            name = spec.get("name")
            sha = spec.get("sha256")
            yield FileIs(text_match(name) if name is not None else None, sha and sha.lower())
    elif key == "body":
        for path, value in spec.items():
            is_text = isinstance(value, dict) and len(value) == 1
            is_text = is_text and next(iter(value)) in ("exact", "contains", "regex")
            yield BodyField(path, text_match(value) if is_text else value)


@dataclass(slots=True)
class Resolution:
    """The outcome of matching: the scenario, the step that answers, and regex captures (one
    per request: not frozen, which would set each field through ``object.__setattr__``)."""

    scenario: Scenario
    step: Step
    step_index: int
    captures: Captures
    stateless: bool = False
    """True when the same request would get the same answer again: no sequence involved."""


def _index_key(scenario: Scenario) -> tuple[str, str, Condition | None] | None:
    """What indexes the scenario: its exact ``last_user``, or a text its ``last_user`` must
    contain (a ``contains`` value, or the longest plain run of a ``regex``); and the condition
    a hit proves (None for a regex: its run is only a prefilter)."""
    for cond in scenario.conditions:
        if not (isinstance(cond, TextIs) and cond.field == "last_user"):
            continue
        op, value = cond.match.op, cond.match.value
        if op == "exact" or (op == "contains" and value):
            return op, value, cond
        literal = required_literal(value) if op == "regex" else None
        if literal:
            return "contains", literal, None
    return None


def required_literal(pattern: str, shortest: int = 3) -> str | None:
    """The longest run of plain characters every match of ``pattern`` contains, if any.

    Only top-level literals count (not those inside groups, repeats or alternatives), and none
    under IGNORECASE, so the run is certain to be in any text the pattern matches."""
    try:
        parsed = sre_parser.parse(pattern)
    except Exception:  # private module: any surprise means "no prefilter", never an error
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    best, run = "", ""
    for op, arg in parsed:
        if op is sre_parser.LITERAL:
            run += chr(arg)
        else:
            best, run = max(best, run, key=len), ""
    best = max(best, run, key=len)
    return best if len(best) >= shortest else None


class Candidate(NamedTuple):
    """A scenario as an index holds it, with what is known of it at load time."""

    rank: int
    scenario: Scenario
    conditions: tuple[Condition, ...]
    """Its conditions less the one the index proved when it found the scenario."""
    answer: Resolution | None
    """What a stateless scenario (one step, repeated: no sequence position to keep) answers
    when its conditions hold without captures: made once, here; None for a sequence."""


Ranked = list[Candidate]
Entry = tuple[tuple[str, str] | None, Candidate]
"""A scenario's index key (``_index_key``) and its candidate: worked out once per scenario,
shared by every index that holds it."""


def _entry(rank: int, scenario: Scenario) -> Entry:
    key = _index_key(scenario)
    answer = (
        Resolution(scenario, scenario.steps[0], 0, _NO_CAPTURES, True)
        if _stateless(scenario)
        else None
    )
    if key is None:
        return None, Candidate(rank, scenario, scenario.conditions, answer)
    op, text, proved = key
    rest = tuple(c for c in scenario.conditions if c is not proved)
    return (op, text), Candidate(rank, scenario, rest, answer)


class Substrings:
    """Which of many strings occur in a text, in one pass over it (Aho-Corasick)."""

    _FEW = 16  # below this, one C-speed ``in`` per pattern beats a Python loop per character

    def __init__(self, patterns: Iterable[str]) -> None:
        self._patterns = list(patterns)
        self._next: list[dict[str, int]] = [{}]
        self._found: list[list[str]] = [[]]
        for pattern in self._patterns:
            node = 0
            for char in pattern:
                step = self._next[node].get(char)
                if step is None:
                    step = self._next[node][char] = len(self._next)
                    self._next.append({})
                    self._found.append([])
                node = step
            self._found[node].append(pattern)
        self._fail = [0] * len(self._next)
        queue = list(self._next[0].values())
        for node in queue:
            for char, child in self._next[node].items():
                queue.append(child)
                back = self._fail[node]
                while back and char not in self._next[back]:
                    back = self._fail[back]
                target = self._next[back].get(char, 0)
                self._fail[child] = target if target != child else 0
                self._found[child] = self._found[child] + self._found[self._fail[child]]

    def search(self, text: str) -> set[str]:
        if len(self._patterns) < self._FEW:
            return {p for p in self._patterns if p in text}
        nexts, fail, found = self._next, self._fail, self._found
        hits: set[str] = set()
        node = 0
        for char in text:
            while node and char not in nexts[node]:
                node = fail[node]
            node = nexts[node].get(char, 0)
            if found[node]:
                hits.update(found[node])
        return hits


class _Index:
    """Ranked scenarios indexed by their ``last_user`` condition (see the module's docstring)."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.exact: dict[str, Ranked] = {}
        self.contains: dict[str, Ranked] = {}
        self.scanned: Ranked = []
        for key, candidate in entries:
            if key is None:
                self.scanned.append(candidate)
            else:
                table = self.exact if key[0] == "exact" else self.contains
                table.setdefault(key[1], []).append(candidate)
        self.substrings = Substrings(self.contains) if self.contains else None
        self.reads_text = bool(self.exact or self.contains)
        """Whether finding candidates reads the request's ``last_user`` at all."""

    def candidates(self, request: Request) -> Iterable[Candidate]:
        """The scenarios that could match, in rank order: indexed hits and the unindexed."""
        if not self.reads_text:
            return self.scanned
        text = request.last_user
        groups = [self.scanned] if self.scanned else []
        exact = self.exact.get(text)
        if exact:
            groups.append(exact)
        if self.substrings is not None:
            for hit in self.substrings.search(text):
                groups.append(self.contains[hit])
        if len(groups) == 1:
            return groups[0]
        return heapq.merge(*groups, key=lambda c: c.rank)


class ScenarioSet:
    """Scenarios in the order they are tried, with the position of each step sequence.

    Order: higher ``priority`` first, then load order. Sequence state is kept per scenario and
    per conversation (a header the scenario names, or the first user message). Each protocol
    has its index of the scenarios whose replies can answer it (``Scenario.apis``), so a
    request never meets one that cannot: most sets share one index between all protocols.
    """

    def __init__(self, scenarios: Iterable[Scenario], fallback: Scenario | None = None) -> None:
        ranked = sorted(enumerate(scenarios), key=lambda p: (-p[1].priority, p[0]))
        self.scenarios: list[Scenario] = [s for _, s in ranked]
        self.fallback = fallback
        entries = [_entry(rank, scenario) for rank, scenario in enumerate(self.scenarios)]
        self._every = _Index(entries)
        built: dict[tuple[int, ...], _Index] = {(): self._every}
        self._indexes: dict[str, _Index] = {}
        for api in sorted(ALL_APIS):
            left_out = tuple(r for r, s in enumerate(self.scenarios) if api not in s.apis)
            if left_out not in built:  # protocols that leave out the same ones share an index
                out = set(left_out)
                built[left_out] = _Index(e for e in entries if e[1].rank not in out)
            self._indexes[api] = built[left_out]
        self._fallbacks = {
            api: fallback if fallback is not None and api in fallback.apis else None
            for api in ALL_APIS
        }
        # Ordered: forgetting the oldest of a plain dict walks past every slot freed before it.
        self._positions: OrderedDict[tuple[Scenario, str], int] = OrderedDict()
        self.models = _model_names(self.scenarios)
        self.header_names = tuple(
            sorted(
                {c.name for s in self.scenarios for c in s.conditions if isinstance(c, HeaderIs)}
            )
        )
        """Headers some condition reads: with the body, they decide which scenario answers."""

    def __len__(self) -> int:
        return len(self.scenarios)

    def reset(self) -> None:
        self._positions.clear()

    def candidates(self, request: Request) -> Iterable[Candidate]:
        """The scenarios that could match, in rank order, among those that can answer the
        request's protocol."""
        return self._indexes.get(request.api, self._every).candidates(request)

    def fallback_for(self, request: Request) -> Scenario | None:
        """What answers a request no scenario matches (``--unmatched default``), if its reply
        can answer the request's protocol."""
        return self._fallbacks.get(request.api, self.fallback)

    def resolve(self, request: Request) -> Resolution:
        passed_over = False  # a used-up sequence let a later scenario answer
        for _, scenario, conditions, answer in self.candidates(request):
            captures = check_all(conditions, request) if conditions else _NO_CAPTURES
            if captures is None:
                continue
            if answer is not None:  # stateless
                if captures is _NO_CAPTURES and not passed_over:
                    return answer
                return Resolution(scenario, answer.step, 0, captures, not passed_over)
            step = self._advance(scenario, request)
            if step is not None:
                return Resolution(scenario, scenario.steps[step], step, captures, False)
            passed_over = True
        fallback = self.fallback_for(request)
        if fallback is not None:
            return Resolution(fallback, fallback.steps[0], 0, _NO_CAPTURES, not passed_over)
        raise self.no_match(request)

    def _advance(self, scenario: Scenario, request: Request) -> int | None:
        key = (scenario, conversation(scenario, request))
        seen = self._positions.get(key, 0)
        if not seen and len(self._positions) >= _CONVERSATIONS:
            self._positions.popitem(last=False)  # the oldest conversation restarts
        self._positions[key] = seen + 1
        return step_after(scenario, seen)

    def no_match(self, request: Request) -> APIError:
        """A 404 naming the nearest scenarios and, for each, the conditions that failed."""
        lines = [
            f"{n.scenario.name!r} ({n.scenario.where}): {'; '.join(n.failed)}"
            for n in nearest(self.scenarios, request)
        ]
        detail = " Nearest: " + " | ".join(lines) if lines else " No scenarios are loaded."
        return APIError(
            404,
            f"mockserver: no scenario matched this request (last user message "
            f"{_short(request.last_user)}, model {request.model!r}).{detail}",
            code="scenario_not_found",
        )

    # Read-only views for the inspector: nothing below advances a sequence.

    def explain(self, request: Request) -> list[Verdict]:
        """Every scenario in the order tried, with what it would do for ``request``: answer (with
        which step), be passed over (used up, or an earlier one answers), or fail (and on which
        conditions). Checks them all, not only the index's candidates, so each gets its why."""
        verdicts: list[Verdict] = []
        answered = False
        for scenario in self.scenarios:
            failed = tuple(
                c.explain(request) for c in scenario.conditions if c.check(request) is None
            ) + _unanswerable(scenario, request)
            step = None if failed else self.peek(scenario, request)
            answers = step is not None and not answered
            answered = answered or answers
            verdicts.append(Verdict(scenario, failed, step, answers))
        return verdicts

    def peek(self, scenario: Scenario, request: Request) -> int | None:
        """The step ``scenario`` would answer ``request`` with now (None: used up), like
        ``_advance`` but without moving the sequence."""
        count = len(scenario.steps)
        if count == 1 and scenario.after_last is not AfterLast.STOP:
            return 0
        seen = self._positions.get((scenario, self._conversation(scenario, request)), 0)
        if seen < count:
            return seen
        if scenario.after_last is AfterLast.CYCLE:
            return seen % count
        return count - 1 if scenario.after_last is AfterLast.REPEAT else None

    def _conversation(self, scenario: Scenario, request: Request) -> str:
        if scenario.conversation_header:
            return request.headers.get(scenario.conversation_header, "")
        return next((message_text(m) for m in request.messages if m["role"] == "user"), "")

    def conversations(self) -> dict[Scenario, list[tuple[str, int]]]:
        """Per scenario with steps: each conversation it has seen and how many steps it used."""
        out: dict[Scenario, list[tuple[str, int]]] = {}
        for (scenario, conversation), seen in self._positions.items():
            out.setdefault(scenario, []).append((conversation, seen))
        return out


@dataclass(frozen=True)
class Verdict:
    """What one scenario would do for a request, for ``ScenarioSet.explain``."""

    scenario: Scenario
    failed: tuple[str, ...]
    """The conditions the request fails, as ``no_match`` words them; empty when all hold."""
    step: int | None
    """The step that would answer if tried (None: failed, or used up with after_last: stop)."""
    answers: bool
    """True for the one scenario that would answer: the first whose step is not None."""


@dataclass(frozen=True)
class Near:
    """How close a scenario came to matching a request."""

    scenario: Scenario
    failed: tuple[str, ...]
    """What each failed condition expected and what the request had."""
    held: int
    total: int
    closeness: float = 0.0
    """Mean similarity (0-1) of the request's text to the failed conditions' text."""

    @property
    def ratio(self) -> float:
        return self.held / self.total if self.total else 1.0


_COMPARED = 200  # characters compared by difflib: enough to rank, bounded in cost
_CLOSENESS_POOL = 50  # only the best candidates by count get the (slower) text comparison


def _text_closeness(cond: Condition, request: Request) -> float:
    """How similar the request's text is to what a failed text condition wanted (difflib)."""
    if isinstance(cond, TextIs):
        match, texts = cond.match, list(cond._texts(request))
    elif isinstance(cond, HeaderIs):
        match, texts = cond.match, [request.headers.get(cond.name) or ""]
    elif isinstance(cond, BodyField) and isinstance(cond.value, TextMatch):
        got = field_at(request.body, cond.path)
        match, texts = cond.value, [got if isinstance(got, str) else ""]
    else:
        return 0.0
    want = match.value[:_COMPARED]
    best = 0.0
    for text in texts or [""]:
        text = text[:_COMPARED]
        if match.op != "exact" and len(text) > len(want):
            # contains/regex: the most similar stretch of the text, not the whole of it
            sm = difflib.SequenceMatcher(None, text, want, autojunk=False)
            at = sm.find_longest_match(0, len(text), 0, len(want))
            start = max(0, at.a - at.b)
            text = text[start : start + len(want)]
        best = max(best, difflib.SequenceMatcher(None, want, text, autojunk=False).ratio())
    return best


def nearest(scenarios: Iterable[Scenario], request: Request, limit: int = 3) -> list[Near]:
    """The ``limit`` scenarios that came closest to matching ``request``, best first.

    Ranked by the share of their conditions that hold, then how many hold, then how close
    the request's text is to the text conditions that failed, then try order. A scenario
    that only a used-up sequence (``after_last: stop``) kept out ranks first."""
    counted: list[tuple[float, int, int, Scenario, list[Condition]]] = []
    for rank, scenario in enumerate(scenarios):
        failing = [c for c in scenario.conditions if c.check(request) is None]
        total = len(scenario.conditions)
        held = total - len(failing)
        counted.append((held / total if total else 1.0, held, rank, scenario, failing))
    pool = heapq.nsmallest(_CLOSENESS_POOL, counted, key=lambda c: (-c[0], -c[1], c[2]))
    ranked: list[tuple[float, int, float, int, Near]] = []
    for ratio, held, rank, scenario, failing in pool:
        scores = [_text_closeness(c, request) for c in failing]
        closeness = sum(scores) / len(scores) if scores else 1.0
        failed = tuple(c.explain(request) for c in failing) + _unanswerable(scenario, request)
        failed = failed or ("all its steps have been used (after_last: stop)",)
        near = Near(scenario, failed, held, len(scenario.conditions), closeness)
        ranked.append((ratio, held, closeness, rank, near))
    ranked.sort(key=lambda r: (-r[0], -r[1], -r[2], r[3]))
    return [r[4] for r in ranked[:limit]]


def _unanswerable(scenario: Scenario, request: Request) -> tuple[str, ...]:
    """Why the scenario cannot answer the request's protocol, if it cannot."""
    if request.api in scenario.apis:
        return ()
    kind = "vectors" if request.api in VECTOR_APIS else "text"
    return (f"its replies are not {kind}, so it does not answer {request.api} requests",)


def _stateless(scenario: Scenario) -> bool:
    return len(scenario.steps) == 1 and scenario.after_last is not AfterLast.STOP


def conversation(scenario: Scenario, request: Request) -> str:
    """Which conversation a request continues: a header the scenario names, or the first
    user message."""
    if scenario.conversation_header:
        return request.headers.get(scenario.conversation_header, "")
    return next((message_text(m) for m in request.messages if m["role"] == "user"), "")


def step_after(scenario: Scenario, seen: int) -> int | None:
    """The step that answers after ``seen`` earlier requests of a conversation (None: used up)."""
    count = len(scenario.steps)
    if seen < count:
        return seen
    if scenario.after_last is AfterLast.CYCLE:
        return seen % count
    if scenario.after_last is AfterLast.REPEAT:
        return count - 1
    return None


def _model_names(scenarios: Iterable[Scenario]) -> list[str]:
    """The models ``/v1/models`` lists: exact names scenarios match or reply with, and gpt-4."""
    names = {"gpt-4", "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002",
             "gemini-2.5-flash", "gemini-embedding-001"}  # fmt: skip
    for scenario in scenarios:
        names.update(
            c.pattern
            for c in scenario.conditions
            if isinstance(c, ModelIs) and not any(ch in c.pattern for ch in "*?[")
        )
        names.update(s.reply.model for s in scenario.steps if s.reply and s.reply.model)
    return sorted(names)


def check_all(conditions: tuple[Condition, ...], request: Request) -> Captures | None:
    """The captures of conditions that all hold (empty without a regex), else None."""
    captures: dict[str, str] | None = None
    for cond in conditions:
        found = cond.check(request)
        if found is None:
            return None
        if found:
            captures = {**(captures or {}), **found}
    return captures if captures is not None else _NO_CAPTURES
