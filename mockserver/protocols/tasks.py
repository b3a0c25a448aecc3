"""The relay's own task APIs: submit a job, then poll it until it is done.

``POST /ai/seedance/videos`` (Seedance video; the task id is ``result.task_id``, polled at
``GET /ai/seedance/result?task_id=``) and ``POST /ai/gemini/image/generate`` (Nano Banana
images; ``result.taskCode``, polled at ``GET /ai/gemini/result?code=``). Both authenticate
with an ``AIKey`` header (a Bearer token is accepted too) and answer in the relay's envelope,
``{"code": 0, "info": "success", "result": {...}}``; an error is the same envelope with the
HTTP status as its ``code`` and the message as its ``info``.

The relay's pages show the submit side only. The poll reply follows the closest public
evidence (a sibling relay's client, the image service's upstream), and every choice is in
``CHOICES`` (the docs' table): ``status`` is 0 while the task runs, 1 once it succeeded and 2
once it failed, ``state`` the upstream's word for it, ``progress`` a percentage, and the media
URL under ``videoUrl`` (video) or ``imageUrl`` / ``imageUrls`` (images). A failed task answers
HTTP 200 with a non-zero ``code``, its message in ``info`` and in ``result.error``. A scenario
scripts the stages (``reply.task.states``) and can replace any stage's reply whole (``body``).

The submit goes through the pipeline like any request (so errors, faults, delays, rate limits
and steps apply to it); what it creates is kept as a ``Stored`` record, immutable, so that any
worker can answer a poll; how far a task has got is counted where it is polled (``Progress``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.errors import APIError, invalid_type, missing_param
from ..core.request import Request, body_and_model, check_types, invalid_value, param_types
from ..scenarios.scenario import TaskScript, TaskState
from . import NO_QUERY, NOWHERE, Answer, Lookup, Protocol, Stored, Target, dumps

SUCCESS = {"code": 0, "info": "success"}
STATUS = {"queued": 0, "running": 0, "succeeded": 1, "failed": 2}
STATE = {"queued": "pending", "running": "processing", "succeeded": "completed",
         "failed": "failed"}  # fmt: skip
FAILED_CODE = 500
FAILED_INFO = "The task failed: the service could not generate the media."
STORED_PREFIX = "task:"
"""Task records share the stored-response store, under ids no response has."""

CHOICES = (
    ("poll method", "GET with the id in the query", "inferred from the quick start's URLs"),
    ("task id key", "`task_id` (Seedance), `taskCode` (Nano Banana)", "the relay's quick start"),
    ("`result.status`", "0 running, 1 succeeded, 2 failed",
     "a sibling relay's client treats `status == 1` as done"),
    ("`result.state`", "`pending`, `processing`, `completed`, `failed`",
     "the image service's upstream statuses"),
    ("`result.progress`", "0-100", "ours"),
    ("media URL", "`result.videoUrl`; `result.imageUrl` and `result.imageUrls`",
     "the sibling client reads `videoUrl`"),
    ("failed task", "HTTP 200, `code` non-zero (500), `info` and `result.error` the message",
     "the sibling client: non-zero `code` is an error, `info` its message, `result.error`"),
    ("other errors", "HTTP status as `code`, message as `info`, `result: null`", "ours"),
)  # fmt: skip
"""Where the relay's pages are silent: what the mock does, and on what evidence."""


@dataclass(frozen=True)
class Service:
    name: str
    submit: str
    poll: str
    query: str
    id_key: str
    media: str
    """``video`` or ``image``."""


SERVICES = (
    Service("seedance", "/ai/seedance/videos", "/ai/seedance/result", "task_id", "task_id",
            "video"),
    Service("gemini", "/ai/gemini/image/generate", "/ai/gemini/result", "code", "taskCode",
            "image"),
)  # fmt: skip
BY_SUBMIT = {s.submit: s for s in SERVICES}
_TYPES = {
    "seedance": param_types(integers=("duration",), strings=("resolution", "ratio")),
    "gemini": param_types(strings=("aspect_ratio", "resolution", "action")),
}
RESOLUTIONS = ("1K", "2K", "4K")
BY_NAME = {s.name: s for s in SERVICES}


def envelope_error(status: int, message: str) -> bytes:
    return dumps({"code": status, "info": message, "result": None}).encode()


def _prompt(body: dict[str, Any], service: Service) -> str:
    """The text the job is about: Seedance's text content parts, Nano Banana's ``prompt``."""
    if service.name == "gemini":
        prompt = body.get("prompt")
        if prompt is None:
            raise missing_param("prompt")
        if not isinstance(prompt, str):
            raise invalid_type("prompt", "a string", prompt)
        action = body.get("action") or "generate"
        if action not in ("generate", "edit"):
            raise APIError(400, f"Invalid action {action!r}: expected 'generate' or 'edit'.",
                           param="action")  # fmt: skip
        return prompt
    content = body.get("content")
    if content is None:
        raise missing_param("content")
    if not isinstance(content, list) or not content:
        raise invalid_type("content", "a non-empty array", content)
    texts = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif not (kind == "image_url" and isinstance(part.get("image_url"), dict)):
            raise APIError(
                400,
                f'\'content[{i}]\' must be {{"type": "text", "text": ...}} or '
                '{"type": "image_url", "image_url": {"url": ...}}.',
                param=f"content[{i}]",
            )
    if not texts:
        raise APIError(400, "'content' needs a part {\"type\": \"text\", \"text\": ...}.",
                       param="content")  # fmt: skip
    return "\n".join(str(t) for t in texts)


class Tasks(Protocol):
    """One instance per service (``for_route``)."""

    name = "tasks"
    routes = tuple(s.submit for s in SERVICES)
    id_prefix = "task-"
    answers_unmatched = True
    prefixes = ("",)
    creates = True
    keeps = True

    def __init__(self, service: Service = SERVICES[0]) -> None:
        self.service = service

    def for_route(self, route: str) -> Protocol:
        return Tasks(BY_SUBMIT[route])

    def api_key(
        self, headers: Mapping[str, str], query: Mapping[str, str] = NO_QUERY
    ) -> str | None:
        """The ``AIKey`` header's key, or the Bearer token's; both, when they differ, are a
        key no server accepts (a request whose credentials disagree is refused)."""
        keys = {k for k in (headers.get("AIKey", "").strip(), super().api_key(headers)) if k}
        if len(keys) > 1:
            return " and ".join(sorted(keys))
        return keys.pop() if keys else None

    def auth_error(self, headers: Mapping[str, str], key: str | None) -> APIError:
        if key is None:
            return APIError(401, "Missing AIKey: send your key in an AIKey header.")
        return APIError(401, "Invalid AIKey.", code="invalid_api_key")

    def error_body(self, err: APIError, request_id: str) -> bytes:
        return envelope_error(err.status, err.message)

    def parse(
        self, raw: bytes, headers: Mapping[str, str], lookup: Lookup, target: Target = NOWHERE
    ) -> Request:
        body, model = body_and_model(raw)
        check_types(body, _TYPES[self.service.name])
        prompt = _prompt(body, self.service)
        resolution = body.get("resolution")
        if self.service.name == "gemini" and resolution not in (None, *RESOLUTIONS):
            raise invalid_value("resolution", resolution, RESOLUTIONS)
        return Request(
            api="tasks",
            body=body,
            model=model,
            messages=[{"role": "user", "content": prompt}],
            headers=headers,
            params={"service": self.service.name},
        )

    def task_id(self, answer: Answer) -> str:
        """Unique per request and per worker (the request id's number), yet repeatable."""
        number = answer.request_id.removeprefix("req_")
        return f"cgt-{number}" if self.service.name == "seedance" else number

    def body(self, answer: Answer) -> bytes:
        return dumps({**SUCCESS, "result": {self.service.id_key: self.task_id(answer)}}).encode()

    def reply_summary(self, answer: Answer) -> dict[str, Any]:
        return {"task_id": self.task_id(answer), "service": self.service.name}

    def stored(
        self, answer: Answer, raw: bytes, body: bytes | None, filled: tuple[Any, ...] | None = None
    ) -> Stored:
        """The task as any worker can answer its polls: when it began, its script, and what it
        is about; its files by digest (every worker loaded the same scenarios)."""
        script = answer.reply.task if answer.reply is not None else None
        script = script or TaskScript()
        request = answer.request
        media = script.media
        record: dict[str, Any] = {
            "service": self.service.name,
            "id": self.task_id(answer),
            "created": answer.now,
            "prompt": request.last_user,
            "model": request.model,
            "body": request.body,
            "seed": answer.seed,
            "states": [_state_record(s) for s in script.states],
            "media": None if media is None else f"{media.digest}.{media.extension}",
        }
        return Stored(STORED_PREFIX + record["id"], (), dumps(record).encode())


def _state_record(state: TaskState) -> dict[str, Any]:
    return {k: v for k, v in vars(state).items() if v is not None}


# --- polling ---------------------------------------------------------------------------------


@dataclass
class Progress:
    """How far one task has got, where it is polled: its stage, when that began, and how many
    polls that stage has answered."""

    stage: int
    entered: float
    polls: int = 0


def advance(states: Sequence[Mapping[str, Any]], progress: Progress, now: float,
            speed: float) -> Mapping[str, Any]:  # fmt: skip
    """The stage this poll sees. A stage ends after its ``polls`` polls or its ``seconds``
    (times ``speed``: at speed 0 a stage timed in seconds is over at once, so the default
    lifecycle is done on the first poll; one counted in polls still counts them, since a
    test that scripts polls means to see them). The last stage lasts for ever."""
    while progress.stage < len(states) - 1:
        state = states[progress.stage]
        seconds = state.get("seconds")
        if seconds is not None:
            if now - progress.entered < seconds * speed:
                break
            progress.entered += seconds * speed
        elif progress.polls >= state.get("polls", 1):
            progress.entered = now
        else:
            break
        progress.stage += 1
        progress.polls = 0
    progress.polls += 1
    return states[progress.stage]


def poll_body(record: Mapping[str, Any], state: Mapping[str, Any], media_url: str) -> bytes:
    """One poll's reply in the relay's envelope (``state["body"]``, when the scenario gives
    one, as written)."""
    if "body" in state:
        return json.dumps(state["body"]).encode()
    service = BY_NAME[record["service"]]
    status = state["status"]
    result: dict[str, Any] = {
        service.id_key: record["id"],
        "status": STATUS[status],
        "state": STATE[status],
        "progress": state.get("progress", 100 if status == "succeeded" else 0),
        "model": record["model"],
    }
    if status == "succeeded":
        if service.media == "video":
            result["videoUrl"] = media_url
        else:
            result["imageUrl"] = media_url
            result["imageUrls"] = [media_url]
    if status == "failed":
        info = state.get("info", FAILED_INFO)
        result["error"] = info
        return dumps({"code": state.get("code", FAILED_CODE), "info": info,
                      "result": result}).encode()  # fmt: skip
    return dumps({**SUCCESS, "result": result}).encode()


def poll_service(path: str) -> Service | None:
    return next((s for s in SERVICES if s.poll == path), None)


def aspect_size(body: Mapping[str, Any]) -> tuple[int, int]:
    """A Nano Banana image's size: ``aspect_ratio`` (``16:9``) at ``resolution`` (1K, 2K, 4K;
    4K drawn at 3840 on the long edge), edges rounded to 16."""
    base = {"1K": 1024, "2K": 2048, "4K": 3840}.get(str(body.get("resolution") or "1K"), 1024)
    a, _, b = str(body.get("aspect_ratio") or "1:1").partition(":")
    try:
        ratio = float(a) / float(b)
    except (ValueError, ZeroDivisionError):
        ratio = 1.0
    ratio = min(max(ratio, 1 / 4), 4)
    if ratio >= 1:
        return base, max(16, round(base / ratio / 16) * 16)
    return max(16, round(base * ratio / 16) * 16), base
