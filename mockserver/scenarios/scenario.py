"""The scenario model: frozen data, built by the loader, read by matching and rendering."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Protocol

from ..core.errors import APIError
from ..core.request import Request
from ..media.blobs import Blob
from .ratelimit import RateLimit
from .schema import API_NAMES
from .templates import Template

ALL_APIS = frozenset(API_NAMES)
VECTOR_APIS = frozenset({"embeddings", "gemini_embeddings"})
"""The protocols whose answer is vectors, not text."""

Captures = Mapping[str, str]
"""Named regex groups a condition captured, for templates (``{{ match.name }}``)."""


class Condition(Protocol):
    """One test of a ``match`` block; matching implements them."""

    def check(self, request: Request) -> Captures | None:
        """Regex captures (possibly empty) when the request passes, None when it does not."""

    def explain(self, request: Request) -> str:
        """What was expected and what the request had, for miss reports."""

    def describe(self) -> str:
        """What it tests, in words as the YAML wrote it: ``last_user contains 'weather'``."""


Text = str | Template


class AfterLast(str, Enum):
    """What a scenario with steps does once its last step has answered."""

    REPEAT = "repeat"
    CYCLE = "cycle"
    STOP = "stop"


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Text
    id: str | None = None


@dataclass(frozen=True)
class Message:
    """One choice of a reply, before truncation and tokenizing."""

    content: Text | None = None
    reasoning: Text | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: Text | None = None
    finish_reason: str | None = None


@dataclass(frozen=True, eq=False)
class Reply:
    choices: tuple[Message, ...]
    usage: Mapping[str, int] | None = None
    model: str | None = None
    embeddings: tuple[tuple[float, ...], ...] = ()
    """Pinned vectors for embeddings requests: one per input (reused in turn), as written."""
    embedding_style: str | None = None
    """Generated vectors' style (None: ``semantic``); naming one makes this a vectors reply."""
    flagged: tuple[str, ...] | None = None
    """Moderations: the categories that fire (None: the reply does not say; none fire)."""
    scores: Mapping[str, float] = field(default_factory=dict)
    """Moderations: category scores the scenario pins."""
    images: tuple[Blob, ...] = ()
    """Pinned images (``image``, ``images``), served as written: one per image asked for,
    reused in turn."""
    revised_prompt: str | None = None
    task: TaskScript | None = None
    """A task API's lifecycle (``task``): what each poll of the task submitted answers."""

    @cached_property
    def apis(self) -> frozenset[str]:
        """The protocols this reply can answer: those that speak text when it has some, embeddings
        when it pins vectors or names a style of them; a reply with neither (a model, usage)
        answers any. A text-only reply does not answer embeddings: they get generated vectors."""
        texts = any(
            m.content is not None or m.reasoning is not None or m.refusal is not None
            or m.tool_calls
            for m in self.choices
        )  # fmt: skip
        vectors = bool(self.embeddings) or self.embedding_style is not None
        if texts == vectors:
            return ALL_APIS
        return VECTOR_APIS if vectors else ALL_APIS - VECTOR_APIS

    @cached_property
    def static(self) -> bool:
        """True when no choice uses a template, so rendering can be done once and cached."""
        for m in self.choices:
            texts = [m.content, m.reasoning, m.refusal, *(t.arguments for t in m.tool_calls)]
            if any(isinstance(t, Template) for t in texts):
                return False
        return True


TASK_STATUSES = ("queued", "running", "succeeded", "failed")


@dataclass(frozen=True)
class TaskState:
    """One stage of a task's lifecycle; it lasts ``polls`` polls or ``seconds`` (scaled by
    ``--speed``); the last stage lasts for ever. ``body`` replaces the whole poll reply."""

    status: str
    progress: int | None = None
    polls: int | None = None
    seconds: float | None = None
    code: int | None = None
    info: str | None = None
    body: object = None


@dataclass(frozen=True)
class TaskScript:
    """What a submitted task does: its stages in order, and the file it ends with (a video,
    an image; None: the mock's own)."""

    states: tuple[TaskState, ...] = (
        TaskState("queued", 0, seconds=1),
        TaskState("running", 50, seconds=4),
        TaskState("succeeded", 100),
    )
    """By default a task takes 5 s (at ``--speed``; done on its first poll at speed 0)."""
    media: Blob | None = None


@dataclass(frozen=True)
class ErrorReply:
    status: int
    message: str
    type: str | None = None
    """None: not stated; the protocol answering gives the status its own type."""
    param: str | None = None
    code: str | None = None

    def to_error(self, headers: Mapping[str, str]) -> APIError:
        return APIError(self.status, self.message, self.type, self.param, self.code, headers)


@dataclass(frozen=True)
class RawReply:
    """A reply sent byte for byte (a recorded one the protocol could not read back, a file)."""

    body: bytes = field(repr=False)
    status: int = 200
    content_type: str = "application/json"


@dataclass(frozen=True)
class Cadence:
    """Streaming pace in seconds (before ``--speed`` scaling) and how text is cut into chunks."""

    first_delay: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    cached_first_delay: float | None = None
    """``first_delay`` when prompt caching read part of the prompt (a hit answers sooner)."""
    chunk: str | int = "token"
    chunks: tuple[tuple[str, float | None], ...] = ()
    pieces: tuple[tuple[str, int, str, float | None], ...] = ()
    """Explicit pieces of the other texts: (``reasoning``, ``refusal`` or ``arguments``, the
    tool call's index, text, delay); recordings keep every piece's own delay this way."""
    instant: bool = field(init=False, compare=False, repr=False)
    """No pause anywhere: known at load, asked of every stream."""

    def __post_init__(self) -> None:
        instant = (
            not (self.first_delay or self.delay or self.jitter)
            and all(d is None or d == 0 for _, d in self.chunks)
            and all(d is None or d == 0 for *_, d in self.pieces)
        )
        object.__setattr__(self, "instant", instant)


@dataclass(frozen=True)
class Fault:
    kind: str
    after_chunks: int = 0
    nth: int | None = None
    probability: float | None = None
    error: ErrorReply = ErrorReply(500, "The server had an error while processing your request.")


@dataclass(frozen=True, eq=False)
class Step:
    reply: Reply | None = None
    error: ErrorReply | None = None
    raw: RawReply | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    cadence: Cadence = Cadence()
    fault: Fault | None = None
    verbatim: bool = False
    """A recording's reply: the upstream already applied the request's limits and stop
    sequences, so the profile does not cut it again."""

    @property
    def apis(self) -> frozenset[str]:
        """The protocols this step can answer (an error or raw body: any)."""
        return self.reply.apis if self.reply is not None else ALL_APIS


@dataclass(frozen=True, eq=False)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    conditions: tuple[Condition, ...] = ()
    priority: int = 0
    seed: int = 0
    after_last: AfterLast = AfterLast.REPEAT
    conversation_header: str | None = None
    rate_limit: RateLimit | None = None
    source: str = "<inline>"
    line: int | None = None
    apis: frozenset[str] = field(init=False, repr=False)
    """The protocols every step can answer, known at load: the others pass this scenario by
    (a text-only reply is not an embeddings answer)."""

    def __post_init__(self) -> None:
        apis = ALL_APIS
        for step in self.steps:
            apis &= step.apis
        object.__setattr__(self, "apis", apis)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source

    def __repr__(self) -> str:
        return f"<Scenario {self.name!r} at {self.where}>"
