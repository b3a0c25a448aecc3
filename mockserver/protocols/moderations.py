"""Moderations: ``POST /v1/moderations``, text and image inputs.

Needs no script: nothing is flagged, every category is present with a low score that is the
same for the same input. A scenario (``api: moderations``) says which categories fire
(``reply.flagged``) and may pin scores (``reply.scores``); ``last_user`` reads the input's
text (every text input, one per line), so the usual conditions select moderation scenarios.

An array of strings gets one result per string; a string, or an array of text and image
parts (omni-moderation), gets one result. ``category_applied_input_types`` is sent for the
omni-moderation models only, as OpenAI does.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from ..core.caching import Plan
from ..core.errors import APIError, invalid_type, missing_param
from ..core.request import Request, json_object
from ..core.tokens import count_tokens
from ..scenarios.schema import MODERATION_CATEGORIES
from . import NOWHERE, Answer, Lookup, Protocol, Target, dumps
from .capture import Captured, text_of

DEFAULT_MODEL = "omni-moderation-latest"
IMAGE_CATEGORIES = frozenset(
    {"self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "violence",
     "violence/graphic"}
)  # fmt: skip
"""The categories omni-moderation also scores images for."""
LEGACY = frozenset({"illicit", "illicit/violent"})
"""Categories the text-moderation models do not have."""
MAX_INPUTS = 32


def _omni(model: str) -> bool:
    return model.startswith("omni-moderation")


def _parts(value: list[Any]) -> tuple[list[str], int]:
    """The texts and the number of images of a multi-modal input."""
    texts, images = [], 0
    for i, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif (
            kind == "image_url"
            and isinstance(part.get("image_url"), dict)
            and isinstance(part["image_url"].get("url"), str)
        ):
            images += 1
        else:
            raise invalid_type(f"input[{i}]", "a text part or an image_url part with a url", part)
    return texts, images


def _inputs(value: Any) -> list[tuple[str, int]]:
    """Each input that gets its own result: its text (parts' texts one per line) and how many
    images it has."""
    if isinstance(value, str):
        return [(value, 0)]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [(v, 0) for v in value]
    if isinstance(value, list) and value:
        texts, images = _parts(value)
        return [("\n".join(texts), images)]
    raise invalid_type("input", "a string, an array of strings or an array of parts", value)


def parse_moderation(raw: bytes, headers: Mapping[str, str], lookup: Lookup) -> Request:
    body = json_object(raw)
    model = body.get("model", DEFAULT_MODEL)
    if not isinstance(model, str):
        raise invalid_type("model", "a string", model)
    if "input" not in body:
        raise missing_param("input")
    inputs = _inputs(body["input"])
    if len(inputs) > MAX_INPUTS:
        raise APIError(
            400,
            f"Invalid 'input': array too long. Expected an array with maximum length "
            f"{MAX_INPUTS}, but got an array with length {len(inputs)} instead.",
            param="input",
            code="array_above_max_length",
        )
    if not _omni(model) and any(images for _, images in inputs):
        raise APIError(
            400,
            f"Model '{model}' does not support image inputs; use omni-moderation-latest.",
            param="input",
            code="invalid_value",
        )
    texts = [text for text, _ in inputs]
    return Request(
        api="moderations",
        body=body,
        model=model,
        messages=[{"role": "user", "content": "\n".join(texts)}],
        headers=headers,
        inputs=tuple(texts),
        tokens=sum(count_tokens(t) for t in texts),
    )


def low_score(category: str, text: str) -> float:
    """A score well under any threshold, the same for the same text (1e-6 to 1e-3)."""
    return round((1 + zlib.crc32(f"{category}\0{text}".encode()) % 1000) * 1e-6, 8)


def high_score(category: str, text: str) -> float:
    """The score of a category that fires: 0.9 to 0.999."""
    return round(0.9 + zlib.crc32(f"{category}\0{text}".encode()) % 100 / 1000, 6)


class Moderations(Protocol):
    name = "moderations"
    routes = ("/moderations",)
    id_prefix = "modr-"
    answers_unmatched = True

    def parse(
        self, raw: bytes, headers: Mapping[str, str], lookup: Lookup, target: Target = NOWHERE
    ) -> Request:
        return parse_moderation(raw, headers, lookup)

    def cache_plan(self, req: Request, scope: str, ttl: float) -> Plan | None:
        return None  # moderation inputs are not a conversation: nothing is cached

    def _result(self, answer: Answer, text: str, images: int) -> dict[str, Any]:
        reply = answer.reply
        flagged = set(reply.flagged or ()) if reply is not None else set()
        pinned = reply.scores if reply is not None else {}
        omni = _omni(answer.request.model)
        names = [c for c in MODERATION_CATEGORIES if omni or c not in LEGACY or c in flagged]
        scores = {
            c: pinned[c]
            if c in pinned
            else high_score(c, text)
            if c in flagged
            else low_score(c, text)
            for c in names
        }
        result: dict[str, Any] = {
            "flagged": bool(flagged),
            "categories": {c: c in flagged for c in names},
            "category_scores": scores,
        }
        if omni:
            kinds = (["text"] if text or not images else []) + (["image"] if images else [])
            result["category_applied_input_types"] = {
                c: [k for k in kinds if k == "text" or c in IMAGE_CATEGORIES] for c in names
            }
        return result

    def body(self, answer: Answer) -> bytes:
        inputs = _inputs(answer.request.body["input"])
        results = [self._result(answer, text, images) for text, images in inputs]
        body = {"id": answer.env.id, "model": answer.env.model, "results": results}
        return dumps(body).encode()

    def reply_summary(self, answer: Answer) -> dict[str, Any]:
        reply = answer.reply
        return {"flagged": list(reply.flagged or ()) if reply is not None else []}

    def read_body(self, body: Any) -> Captured | None:
        """The first result's categories that fired, and its scores."""
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or not results or not isinstance(results[0], dict):
            return None
        first = results[0]
        categories = first.get("categories") or {}
        flagged = [c for c in MODERATION_CATEGORIES if categories.get(c) is True]
        scores = {
            c: float(v)
            for c, v in (first.get("category_scores") or {}).items()
            if c in MODERATION_CATEGORIES and isinstance(v, int | float)
        }
        return Captured(
            [], None, text_of(body.get("model")), extra={"flagged": flagged, "scores": scores}
        )
