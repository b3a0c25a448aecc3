"""Parameter profiles: how a provider treats sampling and length parameters.

A profile is a table of rules per protocol. Each rule reads one parameter of the request and
either adjusts it (recording what it did, so the caller can see it in ``x-mock-adjusted`` and the
journal) or rejects the request the way that provider does. Parameters are read from the
neutral request's ``params`` (``reasoning.effort`` for Responses' nested one), so a quirk of one
endpoint stays in that endpoint's table. Adding a provider is adding a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Protocol

from .errors import APIError
from .request import Request


@dataclass(slots=True)
class Settings:
    """What the reply must honour once the profile has had its say (one per request that
    sets a parameter: not frozen, which would set each field through
    ``object.__setattr__``)."""

    limit: int | None = None
    stop: tuple[str, ...] = ()
    adjusted: tuple[str, ...] = ()
    empty: bool = False
    """The provider answers with empty content (the relay's Responses effort quirk)."""


class Rule(Protocol):
    def apply(self, request: Request, params: dict[str, Any], adjusted: list[str]) -> None: ...


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Clamp:
    """Out-of-range values are moved to the nearest bound instead of rejected."""

    param: str
    low: float
    high: float

    def apply(self, request: Request, params: dict[str, Any], adjusted: list[str]) -> None:
        value = params.get(self.param)
        if value is None:
            return
        bounded = min(max(value, self.low), self.high)
        if bounded != value:
            params[self.param] = bounded
            adjusted.append(f"{self.param}={_fmt(bounded)}")


@dataclass(frozen=True)
class Reject:
    """Out-of-range values are a 400, as OpenAI answers them (or with ``message``, a format
    of ``param``, ``low``, ``high`` and ``value``, as another provider words it)."""

    param: str
    low: float | None
    high: float | None
    message: str | None = None

    def apply(self, request: Request, params: dict[str, Any], adjusted: list[str]) -> None:
        value = params.get(self.param)
        if value is None:
            return
        if self.low is not None and value < self.low:
            bound, side = self.low, f">= {_fmt(self.low)}"
        elif self.high is not None and value > self.high:
            bound, side = self.high, f"<= {_fmt(self.high)}"
        else:
            return
        if self.message is not None:
            text = self.message.format(
                param=self.param, low=_fmt(self.low or 0), high=_fmt(self.high or 0), value=value
            )
            raise APIError(400, text, param=self.param, code="invalid_value")
        kind = "below minimum" if bound == self.low else "above maximum"
        raise APIError(
            400,
            f"Invalid '{self.param}': value {kind} value. Expected a value {side}, "
            f"but got {value} instead.",
            param=self.param,
            code="invalid_value",
        )


@dataclass(frozen=True)
class Ignore:
    """The parameter is accepted and has no effect."""

    param: str
    values: tuple[Any, ...] | None = None

    def apply(self, request: Request, params: dict[str, Any], adjusted: list[str]) -> None:
        value = params.get(self.param)
        if value is None or (self.values is not None and value not in self.values):
            return
        params[self.param] = None
        adjusted.append(f"{self.param}=ignored")


@dataclass(frozen=True)
class Empty:
    """These values of the parameter make the provider answer with empty content."""

    param: str
    values: tuple[Any, ...]

    def apply(self, request: Request, params: dict[str, Any], adjusted: list[str]) -> None:
        value = params.get(self.param)
        if value in self.values:
            params["empty"] = True
            adjusted.append(f"{self.param}={value}: empty content")


@dataclass(frozen=True)
class Minimum:
    """Integers below ``low`` are a 400 ``integer_below_min_value`` (OpenAI's length floors)."""

    param: str
    low: int

    def apply(self, request: Request, params: dict[str, Any], adjusted: list[str]) -> None:
        value = params.get(self.param)
        if value is not None and value < self.low:
            raise APIError(
                400,
                f"Invalid '{self.param}': integer below minimum value. Expected a value >= "
                f"{self.low}, but got {value} instead.",
                param=self.param,
                code="integer_below_min_value",
            )


@dataclass(frozen=True)
class Unsupported:
    """Models matching ``models`` reject the parameter with OpenAI's ``unsupported_parameter``."""

    param: str
    models: str
    instead: str | None = None

    def apply(self, request: Request, params: dict[str, Any], adjusted: list[str]) -> None:
        if params.get(self.param) is None or not fnmatchcase(request.model, self.models):
            return
        hint = f" Use '{self.instead}' instead." if self.instead else ""
        raise APIError(
            400,
            f"Unsupported parameter: '{self.param}' is not supported with this model.{hint}",
            param=self.param,
            code="unsupported_parameter",
        )


_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


UNTOUCHED = Settings()
"""What a request that sets no parameter a rule reads gets (shared: never changed)."""


@dataclass(frozen=True)
class Profile:
    name: str
    rules: Mapping[str, Sequence[Rule]]
    """Rules per protocol (``chat``, ``responses``, ...); a protocol with none is untouched."""
    description: str = ""

    def apply(self, request: Request) -> Settings:
        if not request.params:
            return UNTOUCHED
        params: Mapping[str, Any] = request.params
        adjusted: list[str] = []
        rules = self.rules.get(request.api)
        if rules:  # a copy only for rules to change
            changed = dict(params)
            for rule in rules:
                rule.apply(request, changed, adjusted)
            params = changed
        limits = [params[k] for k in _LIMITS if params.get(k) is not None]
        stop = params.get("stop")
        return Settings(
            limit=min(limits) if limits else None,
            stop=(stop,) if isinstance(stop, str) else tuple(s for s in stop or () if s),
            adjusted=tuple(adjusted),
            empty=bool(params.get("empty")),
        )


_OPENAI_SAMPLING = (Reject("temperature", 0, 2), Reject("top_p", 0, 1))

APIFACTORY = Profile(
    "apifactory",
    {
        "chat": (
            Clamp("temperature", 0, 2),
            Clamp("top_p", 0, 1),
            Ignore("stop"),
            Ignore("max_tokens", values=(0, 1)),
        ),
        "responses": (
            Ignore("max_output_tokens"),
            Empty("reasoning.effort", ("low", "medium")),
        ),
    },
    "the API factory relay: chat clamps temperature/top_p and ignores stop and max_tokens 0/1; "
    "responses ignore max_output_tokens, and reasoning.effort low/medium answer empty",
)

OPENAI = Profile(
    "openai",
    {
        "chat": (
            *_OPENAI_SAMPLING,
            Reject("max_tokens", 1, None),
            Reject("max_completion_tokens", 1, None),
            Unsupported("max_tokens", "o[1-9]*", instead="max_completion_tokens"),
        ),
        "responses": (*_OPENAI_SAMPLING, Minimum("max_output_tokens", 16)),
    },
    "OpenAI: out-of-range values are 400, stop and length limits are honoured",
)

_ANTHROPIC_RANGE = "{param}: range: {low}..{high}"

ANTHROPIC = Profile(
    "anthropic",
    {
        **OPENAI.rules,
        "messages": (
            Reject("temperature", 0, 1, _ANTHROPIC_RANGE),
            Reject("top_p", 0, 1, _ANTHROPIC_RANGE),
        ),
    },
    "Anthropic where it differs: temperature and top_p outside [0, 1] are 400 on messages "
    "(and OpenAI's rules on the OpenAI routes)",
)

_GOOGLE_RANGE = (
    "* GenerateContentRequest.generation_config.{param}: {param} must be in the range "
    "[{low}, {high}], got {value}.\n"
)

GEMINI = Profile(
    "gemini",
    {
        **OPENAI.rules,
        "messages": ANTHROPIC.rules["messages"],
        "gemini": (
            Reject("temperature", 0, 2, _GOOGLE_RANGE),
            Reject("top_p", 0, 1, _GOOGLE_RANGE),
            Reject("top_k", 1, None, _GOOGLE_RANGE),
            Reject("candidate_count", 1, 8, _GOOGLE_RANGE),
            Reject("max_output_tokens", 1, 65536, _GOOGLE_RANGE),
        ),
    },
    "Google Gemini: temperature outside [0, 2], topP outside [0, 1], topK below 1, "
    "candidateCount outside [1, 8] and maxOutputTokens outside [1, 65536] are 400 "
    "INVALID_ARGUMENT (and OpenAI's and Anthropic's rules on their routes)",
)

PROFILES = {p.name: p for p in (APIFACTORY, OPENAI, ANTHROPIC, GEMINI)}
