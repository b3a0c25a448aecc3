"""The scenario format as a JSON Schema, and the small validator that checks files against it.

One definition serves three readers: the loader (which reports every violation with its key
path), ``mockserver schema`` (editors complete and check files with it) and the README.
The validator covers the subset of JSON Schema used here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

Path = tuple[str | int, ...]

API_NAMES = (
    "chat",
    "responses",
    "messages",
    "embeddings",
    "speech",
    "transcriptions",
    "translations",
    "moderations",
    "images",
    "tasks",
    "gemini",
    "gemini_embeddings",
)
"""The values of a scenario's ``match.api``: each names a protocol (``Protocol.name``)."""

MODERATION_CATEGORIES = (
    "sexual",
    "hate",
    "harassment",
    "self-harm",
    "sexual/minors",
    "hate/threatening",
    "violence/graphic",
    "self-harm/intent",
    "self-harm/instructions",
    "harassment/threatening",
    "violence",
    "illicit",
    "illicit/violent",
)
"""OpenAI's moderation categories, in the order its replies list them: what a moderations
reply's ``flagged`` and ``scores`` may name."""

_VECTOR: dict[str, Any] = {
    "anyOf": [
        {"type": "array", "items": {"type": "number"}, "minItems": 1},
        {"type": "string", "minLength": 1},
    ],
    "description": "a vector: its floats, or OpenAI's base64 of them (little-endian float32)",
}

_TEXT_MATCH: dict[str, Any] = {
    "x-expected": "a string or a mapping with one of exact, contains, regex",
    "anyOf": [
        {"type": "string"},
        {
            "type": "object",
            "x-expected": "exactly one of exact, contains, regex",
            "additionalProperties": False,
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "exact": {"type": "string"},
                "contains": {"type": "string"},
                "regex": {"type": "string"},
            },
        },
    ],
}
_DELAY = {"type": "number", "minimum": 0}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_FINISH = {"enum": ["stop", "length", "tool_calls", "content_filter", "function_call"]}

_MATCH = {
    "type": "object",
    "description": "Conditions that must all hold for the scenario to answer.",
    "additionalProperties": False,
    "properties": {
        "api": {
            "enum": list(API_NAMES),
            "description": "only requests of this protocol (default: any)",
        },
        "model": {"type": "string", "description": "exact name or glob (gpt-4*)"},
        "last_user": _TEXT_MATCH,
        "any_message": _TEXT_MATCH,
        "system": _TEXT_MATCH,
        "last_role": {"enum": ["system", "user", "assistant", "tool", "developer", "function"]},
        "tools": {"type": "array", "items": {"type": "string"}},
        "tool_choice": {"type": "string"},
        "stream": {"type": "boolean"},
        "response_format": {"enum": ["text", "json_object", "json_schema"]},
        "headers": {"type": "object", "additionalProperties": _TEXT_MATCH},
        "body": {"type": "object", "description": "dotted path -> value or text match"},
        "file": {
            "description": "the uploaded file (transcriptions, translations)",
            "x-expected": "its name, or a mapping with name (a text match) and/or sha256",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "minProperties": 1,
                    "properties": {
                        "name": _TEXT_MATCH,
                        "sha256": {"type": "string", "description": "the file's digest, hex"},
                    },
                },
            ],
        },
        "recorded": {
            "description": "a recorded request, exactly: the digest of its canonical form",
            "x-expected": "a digest, or a mapping with digest and optionally fields, redact, "
            "covers",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["digest"],
                    "properties": {
                        "digest": {"type": "string"},
                        "fields": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        "redact": {
                            "type": "array",
                            "items": {
                                "x-expected": "a regex, or a mapping NAME: regex (placeholders)",
                                "anyOf": [
                                    {"type": "string"},
                                    {
                                        "type": "object",
                                        "minProperties": 1,
                                        "maxProperties": 1,
                                        "additionalProperties": {"type": "string"},
                                    },
                                ],
                            },
                        },
                        "covers": {
                            "type": "object",
                            "description": "what the digest covered, readable: explains a miss",
                        },
                    },
                },
            ],
        },
    },
}

_TOOL_CALL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "arguments": {
            "x-expected": "a mapping or a JSON string",
            "anyOf": [{"type": "object"}, {"type": "string"}],
        },
    },
}

_USAGE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        name: {"type": "integer", "minimum": 0}
        for name in (
            "prompt_tokens",
            "completion_tokens",
            "reasoning_tokens",
            "cached_tokens",
            "cache_write_tokens",
        )
    },
}

_MESSAGE = {
    "content": {"type": ["string", "null"], "description": "text; may use {{ templates }}"},
    "reasoning": {"type": "string", "description": "sent as reasoning_content"},
    "tool_calls": {"type": "array", "items": _TOOL_CALL, "minItems": 1},
    "refusal": {"type": "string"},
    "finish_reason": _FINISH,
}

_TASK_STATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["status"],
    "properties": {
        "status": {"enum": ["queued", "running", "succeeded", "failed"]},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "polls": {"type": "integer", "minimum": 1, "description": "polls this stage lasts"},
        "seconds": {"type": "number", "minimum": 0, "description": "how long it lasts"},
        "code": {"type": "integer", "description": "failed: the envelope's code"},
        "info": {"type": "string", "description": "failed: the envelope's info"},
        "body": {"description": "the whole poll reply for this stage, as written"},
    },
}

_TASK = {
    "type": "object",
    "description": "tasks: the lifecycle polls walk (default: queued, running 50%, succeeded)",
    "additionalProperties": False,
    "properties": {
        "states": {"type": "array", "items": _TASK_STATE, "minItems": 1},
        "media": {"type": "string", "description": "the file it ends with, relative to this file"},
    },
}

_REPLY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **_MESSAGE,
        "usage": _USAGE,
        "model": {"type": "string"},
        "embedding": {
            **_VECTOR,
            "description": "embeddings: this vector for every input, as written",
        },
        "embeddings": {
            "type": "array",
            "items": _VECTOR,
            "minItems": 1,
            "description": "embeddings: one vector per input, in order (reused if fewer)",
        },
        "embedding_style": {
            "enum": ["semantic", "random"],
            "description": "embeddings: generated vectors that reflect meaning (default) or not",
        },
        "flagged": {
            "type": "array",
            "items": {"enum": list(MODERATION_CATEGORIES)},
            "description": "moderations: the categories that fire (none by default)",
        },
        "scores": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                name: {"type": "number", "minimum": 0, "maximum": 1}
                for name in MODERATION_CATEGORIES
            },
            "description": "moderations: category scores (others: low, deterministic)",
        },
        "image": {
            "type": "string",
            "description": "images: a file (relative to this scenario file) every image is",
        },
        "images": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "description": "images: files, one per image asked for (reused in turn)",
        },
        "revised_prompt": {"type": "string", "description": "images: data[].revised_prompt"},
        "task": _TASK,
        "templates": {
            "type": "boolean",
            "description": "false: texts are literal, {{ }} included (recordings say so)",
        },
        "choices": {
            "type": "array",
            "description": "one entry per choice when the request asks for n > 1",
            "minItems": 1,
            "items": {"type": "object", "additionalProperties": False, "properties": _MESSAGE},
        },
    },
}

_ERROR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["status"],
    "properties": {
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "message": {"type": "string"},
        "type": {"type": "string"},
        "param": {"type": ["string", "null"]},
        "code": {"type": ["string", "null"]},
    },
}

_RAW = {
    "type": "object",
    "additionalProperties": False,
    "description": "a reply sent as it is: its body as text, or a file (relative to the "
    "scenario file) for binary bodies such as recorded speech",
    "properties": {
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "body": {"type": "string"},
        "file": {"type": "string", "minLength": 1},
        "content_type": {"type": "string"},
    },
}

_CHUNK = {
    "type": "object",
    "additionalProperties": False,
    "x-expected": "one of text, reasoning, refusal, arguments (with call), and a delay",
    "minProperties": 1,
    "properties": {
        "text": {"type": "string", "description": "a piece of reply.content"},
        "reasoning": {"type": "string", "description": "a piece of reply.reasoning"},
        "refusal": {"type": "string", "description": "a piece of reply.refusal"},
        "arguments": {"type": "string", "description": "a piece of a tool call's arguments"},
        "call": {"type": "integer", "minimum": 0, "description": "which tool call (0)"},
        "delay": _DELAY,
    },
}

_CADENCE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "first_delay": _DELAY,
        "delay": _DELAY,
        "jitter": _DELAY,
        "cached_first_delay": _DELAY,
        "chunk": {
            "x-expected": "token, word, char or a number of characters",
            "anyOf": [{"enum": ["token", "word", "char"]}, {"type": "integer", "minimum": 1}],
        },
        "chunks": {"type": "array", "items": _CHUNK, "minItems": 1},
    },
}

FAULTS = (
    "hang",
    "reset",
    "drop",
    "stall",
    "malformed",
    "stream_error",
    "failed",
    "no_done",
)

_FAULT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind"],
    "properties": {
        "kind": {"enum": list(FAULTS)},
        "after_chunks": {"type": "integer", "minimum": 0},
        "nth": {"type": "integer", "minimum": 1},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "error": _ERROR,
    },
}

_RATE_LIMIT = {
    "type": "object",
    "description": "request and token budgets per API key and model, per window",
    "additionalProperties": False,
    "minProperties": 1,
    "x-expected": "requests and/or tokens, and optionally per (seconds)",
    "properties": {
        "requests": {"type": "integer", "minimum": 0, "description": "requests per window"},
        "tokens": {"type": "integer", "minimum": 0, "description": "tokens per window"},
        "per": {"type": "number", "minimum": 0.001, "description": "window in seconds (60)"},
    },
}

_STEP_PROPS = {
    "reply": _REPLY,
    "error": _ERROR,
    "raw": _RAW,
    "headers": _STRING_MAP,
    "delay": _DELAY,
    "cadence": _CADENCE,
    "fault": _FAULT,
}

_STEP = {"type": "object", "additionalProperties": False, "properties": _STEP_PROPS}

_PRIORITY = {"type": "integer", "description": "higher is tried first; ties in file order"}
_SEED = {"type": "integer", "description": "mixed into every seeded choice"}

_RECORDING = {
    "type": "object",
    "description": "where a recording came from, and what drift needs to send it again",
    "additionalProperties": False,
    "properties": {
        "upstream": {"type": "string", "description": "the base URL it was recorded from"},
        "at": {"type": "string", "description": "when (UTC, ISO 8601)"},
        "mockserver": {"type": "string", "description": "the mockserver version that wrote it"},
        "fields": {"type": "array", "items": {"type": "string"}, "description": "digest fields"},
        "path": {"type": "string", "description": "the request's path"},
        "query": {"type": "string", "description": "its query string, without credentials"},
        "headers": _STRING_MAP,
        "request": {"type": "object", "description": "the request body, redacted"},
        "answers": {
            "type": "array",
            "description": "per step: the upstream's status, JSON shape and stream event types",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "status": {"type": "integer"},
                    "shape": {"type": "object", "additionalProperties": {"type": "string"}},
                    "events": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

SCENARIO_KEYS: dict[str, Any] = {
    "name": {"type": "string"},
    "priority": _PRIORITY,
    "seed": _SEED,
    "match": _MATCH,
    **_STEP_PROPS,
    "steps": {"type": "array", "items": _STEP, "minItems": 1},
    "after_last": {"enum": ["repeat", "cycle", "stop"]},
    "rate_limit": _RATE_LIMIT,
    "conversation": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"header": {"type": "string"}},
    },
    "recording": _RECORDING,
}

SCENARIO = {"type": "object", "additionalProperties": False, "properties": SCENARIO_KEYS}

_DEFAULTS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "priority": _PRIORITY,
        "seed": _SEED,
        "cadence": _CADENCE,
        "headers": _STRING_MAP,
        "rate_limit": {**_RATE_LIMIT, "description": "one budget shared by the file's scenarios"},
    },
}

FILE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mockserver scenario file",
    "x-expected": "a mapping with 'scenarios', or a list of scenarios",
    "anyOf": [
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["scenarios"],
            "properties": {
                "version": {"const": 1},
                "include": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "files (or globs) relative to this one, loaded first",
                },
                "defaults": _DEFAULTS,
                "scenarios": {"type": "array", "items": SCENARIO},
            },
        },
        {"type": "array", "items": SCENARIO},
    ],
}

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return value is None


def _expected(schema: dict[str, Any]) -> str:
    if "x-expected" in schema:
        return str(schema["x-expected"])
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    types = schema.get("type")
    if isinstance(types, str):
        return _TYPE_NAMES[types]
    if isinstance(types, list):
        return " or ".join(_TYPE_NAMES[t] for t in types)
    return "something else"


def _got(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def validate(value: Any, schema: dict[str, Any], path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Yield ``(path, message)`` for every violation of ``schema`` by ``value``."""
    if "anyOf" in schema:
        branches = schema["anyOf"]
        fitting = [b for b in branches if not list(validate(value, b, path))]
        if fitting:
            return
        typed = [b for b in branches if "type" in b and _is_type(value, b["type"])]
        if len(typed) == 1:
            yield from validate(value, typed[0], path)
        else:
            yield path, f"expected {_expected(schema)}, got {_got(value)}"
        return
    if "enum" in schema and value not in schema["enum"]:
        yield path, f"{_got(value)} is not {_expected(schema)}"
        return
    if "const" in schema and value != schema["const"]:
        yield path, f"expected {schema['const']!r}, got {_got(value)}"
        return
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is_type(value, t) for t in names):
            yield path, f"expected {_expected(schema)}, got {_got(value)}"
            return
    if isinstance(value, dict):
        yield from _validate_object(value, schema, path)
    elif isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            yield path, f"expected at least {schema['minItems']} item(s)"
        items = schema.get("items")
        if items:
            for i, item in enumerate(value):
                yield from validate(item, items, (*path, i))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            yield path, f"must be >= {schema['minimum']}, got {value}"
        if "maximum" in schema and value > schema["maximum"]:
            yield path, f"must be <= {schema['maximum']}, got {value}"


def _validate_object(
    value: dict[str, Any], schema: dict[str, Any], path: Path
) -> Iterator[tuple[Path, str]]:
    props: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key in schema.get("required", ()):
        if key not in value:
            yield path, f"missing required key '{key}'"
    for key, item in value.items():
        if key in props:
            yield from validate(item, props[key], (*path, key))
        elif extra is False:
            yield (*path, key), _unknown_key(str(key), list(props))
        elif isinstance(extra, dict):
            yield from validate(item, extra, (*path, key))
    if len(value) < schema.get("minProperties", 0) or len(value) > schema.get(
        "maxProperties", len(value)
    ):
        yield path, f"expected {_expected(schema)}"


def _unknown_key(key: str, allowed: list[str]) -> str:
    near = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    return f"unknown key{hint}; expected one of: {', '.join(allowed)}"


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
