"""Errors, in two families.

* ``APIError``: what a client sees. It carries the HTTP status and the OpenAI error object
  ``{"error": {"message", "type", "param", "code"}}`` and is raised anywhere on the request path.
* ``ScenarioError``: what a scenario author sees. Each ``Problem`` names the file, the line and
  the key path; ``ScenarioError`` holds every problem found, not only the first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class MockServerError(Exception):
    """Base of every error this package raises on purpose."""


def openai_error_type(status: int) -> str:
    """The ``type`` OpenAI gives an error of this status when nothing more precise is known
    (its own 429s name the limit, ``requests`` or ``tokens``; a scenario's get this)."""
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


@dataclass
class APIError(MockServerError):
    """An HTTP error reply, in OpenAI's shape unless the protocol shapes it its way.

    ``type`` None means "not stated": each protocol gives the status its own type (OpenAI
    ``invalid_request_error``, Anthropic ``not_found_error`` for the same 404), so an error
    raised below the protocols, or a scenario's ``error:`` without ``type``, names none."""

    status: int
    message: str
    type: str | None = None
    param: str | None = None
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    ticket: Any = field(default=None, repr=False, compare=False)
    """The rate-limit window a 429 refused, for protocols that describe it their way."""

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type or openai_error_type(self.status),
                "param": self.param,
                "code": self.code,
            }
        }

    def body_bytes(self) -> bytes:
        return json.dumps(self.body()).encode()


def invalid_type(param: str, expected: str, value: object) -> APIError:
    return APIError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {describe_type(value)} instead.",
        param=param,
        code="invalid_type",
    )


def missing_param(param: str) -> APIError:
    return APIError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def describe_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@dataclass(frozen=True)
class Problem:
    """One defect in a scenario file: where it is and what is wrong."""

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ScenarioError(MockServerError):
    """A scenario set that cannot be loaded; ``problems`` lists every defect found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
