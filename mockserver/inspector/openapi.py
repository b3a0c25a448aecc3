"""The OpenAPI document the server publishes at ``/openapi.json``.

It describes what this server accepts, no more and no less (the checks in each protocol
module, under the default profile), so a schema-driven fuzzer such as schemathesis can hold
the server to it: valid requests must succeed, invalid ones must get a 4xx error object.
"""

from __future__ import annotations

from typing import Any

from ..core.logprobs import MAX_TOP
from ..media.audio import CONTENT_TYPES
from ..protocols.audio import MAX_INPUT, TRANSCRIPT_FORMATS
from ..protocols.chat import MAX_N, RESPONSE_FORMATS, ROLES
from ..protocols.embeddings import MAX_DIMENSIONS, MAX_INPUT_TOKENS
from ..protocols.gemini import CALLING_MODES
from ..protocols.moderations import MAX_INPUTS
from ..protocols.responses import MESSAGE_ROLES, TOOL_CHOICES
from ..scenarios.schema import MODERATION_CATEGORIES


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"enum": list(ROLES)},
        "content": {"type": ["string", "array", "null"]},
    },
}

_FUNCTION_TOOL = {
    "type": "object",
    "required": ["function"],
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "parameters": {"type": ["object", "null"]},
            },
        },
    },
}

_OTHER_TOOL = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"not": {"const": "function"}}},
}

_NUMBER = _nullable({"type": "number"})
_INTEGER = _nullable({"type": "integer"})
_BOOLEAN = _nullable({"type": "boolean"})
_TOP_LOGPROBS = _nullable({"type": "integer", "minimum": 0, "maximum": MAX_TOP})

CHAT_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string"},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "stream": _BOOLEAN,
        "stream_options": _nullable({"type": "object"}),
        "temperature": _NUMBER,
        "top_p": _NUMBER,
        "presence_penalty": _NUMBER,
        "frequency_penalty": _NUMBER,
        "max_tokens": _nullable({"type": "integer", "minimum": 0}),
        "max_completion_tokens": _nullable({"type": "integer", "minimum": 0}),
        "n": _nullable({"type": "integer", "minimum": 1, "maximum": MAX_N}),
        "seed": _INTEGER,
        "top_logprobs": _TOP_LOGPROBS,
        "logprobs": _BOOLEAN,
        "parallel_tool_calls": _BOOLEAN,
        "store": _BOOLEAN,
        "stop": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}},
                {"type": "null"},
            ]
        },
        "tools": _nullable({"type": "array", "items": {"anyOf": [_FUNCTION_TOOL, _OTHER_TOOL]}}),
        "tool_choice": {"type": ["string", "object", "null"]},
        "response_format": _nullable(
            {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": list(RESPONSE_FORMATS)}},
            }
        ),
    },
}

_PARTS = {"type": "array", "items": {"type": "object"}}
_ITEM_TYPES = ["message", "function_call", "function_call_output"]
_INPUT_ITEM = {
    "anyOf": [
        {
            "type": "object",
            "required": ["role", "content"],
            "properties": {
                "type": {"const": "message"},
                "role": {"enum": list(MESSAGE_ROLES)},
                "content": {"anyOf": [{"type": "string"}, _PARTS]},
            },
        },
        {
            "type": "object",
            "required": ["type", "call_id", "name", "arguments"],
            "properties": {
                "type": {"const": "function_call"},
                **{k: {"type": "string"} for k in ("call_id", "name", "arguments")},
            },
        },
        {
            "type": "object",
            "required": ["type", "call_id", "output"],
            "properties": {
                "type": {"const": "function_call_output"},
                "call_id": {"type": "string"},
                "output": {"anyOf": [{"type": "string"}, _PARTS]},
            },
        },
        {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"type": "string", "not": {"enum": _ITEM_TYPES}}},
            "description": "reasoning, item_reference and other items: journalled, not matched",
        },
    ]
}
_FLAT_TOOL = {
    "type": "object",
    "required": ["type", "name"],
    "properties": {
        "type": {"const": "function"},
        "name": {"type": "string"},
        "parameters": {"type": ["object", "null"]},
    },
}
_OTHER_FLAT_TOOL = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"type": "string", "not": {"const": "function"}}},
}
_TEXT_FORMAT = {
    "anyOf": [
        {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": ["text", "json_object"]}},
        },
        {
            "type": "object",
            "required": ["type", "name", "schema"],
            "properties": {
                "type": {"const": "json_schema"},
                "name": {"type": "string"},
                "schema": {"type": "object"},
            },
        },
        {"type": "null"},
    ]
}

RESPONSES_REQUEST = {
    "type": "object",
    "required": ["model", "input"],
    "description": "previous_response_id is accepted too: an unknown id is a 400",
    "properties": {
        "model": {"type": "string"},
        "input": {"anyOf": [{"type": "string"}, {"type": "array", "items": _INPUT_ITEM}]},
        "instructions": _nullable({"type": "string"}),
        "stream": _BOOLEAN,
        "store": _BOOLEAN,
        "background": _BOOLEAN,
        "parallel_tool_calls": _BOOLEAN,
        "temperature": _NUMBER,
        "top_p": _NUMBER,
        "max_output_tokens": _nullable({"type": "integer", "minimum": 0}),
        "top_logprobs": _TOP_LOGPROBS,
        "max_tool_calls": _INTEGER,
        "user": _nullable({"type": "string"}),
        "metadata": _nullable({"type": "object"}),
        "reasoning": _nullable({"type": "object"}),
        "stream_options": _nullable({"type": "object"}),
        "text": _nullable({"type": "object", "properties": {"format": _TEXT_FORMAT}}),
        "tools": _nullable({"type": "array", "items": {"anyOf": [_FLAT_TOOL, _OTHER_FLAT_TOOL]}}),
        "tool_choice": {
            "anyOf": [
                {"enum": list(TOOL_CHOICES)},
                {
                    "type": "object",
                    "required": ["type", "name"],
                    "properties": {"type": {"const": "function"}, "name": {"type": "string"}},
                },
                {"type": "object", "properties": {"type": {"not": {"const": "function"}}}},
                {"type": "null"},
            ]
        },
    },
}

_RESPONSE = {
    "type": "object",
    "required": ["id", "object", "created_at", "status", "model", "output", "tools"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "response"},
        "created_at": {"type": "integer"},
        "status": {"enum": ["completed", "incomplete", "in_progress", "failed"]},
        "model": {"type": "string"},
        "output": {"type": "array", "items": {"type": "object", "required": ["type"]}},
        "usage": {
            "type": "object",
            "required": ["input_tokens", "output_tokens", "total_tokens"],
        },
    },
}

_BLOCKS = {
    "type": "array",
    "items": {
        "anyOf": [
            {
                "type": "object",
                "required": ["type", "text"],
                "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
            },
            {
                "type": "object",
                "required": ["type", "id", "name"],
                "properties": {
                    "type": {"const": "tool_use"},
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                },
            },
            {
                "type": "object",
                "required": ["type", "tool_use_id"],
                "properties": {
                    "type": {"const": "tool_result"},
                    "tool_use_id": {"type": "string"},
                    "content": {"anyOf": [{"type": "string"}, _PARTS]},
                },
            },
            {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"type": "string", "not": {"enum": ["text", "tool_use", "tool_result"]}}
                },
            },
        ]
    },
}
MESSAGES_REQUEST = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": {"type": "string"},
        "max_tokens": {"type": "integer", "minimum": 1},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"enum": ["user", "assistant", "system"]},
                    "content": {"anyOf": [{"type": "string"}, _BLOCKS]},
                },
            },
        },
        "system": {"anyOf": [{"type": "string"}, _PARTS, {"type": "null"}]},
        "temperature": _NUMBER,
        "top_p": _NUMBER,
        "top_k": _INTEGER,
        "stream": _BOOLEAN,
        "stop_sequences": _nullable({"type": "array", "items": {"type": "string"}}),
        "metadata": _nullable({"type": "object"}),
        "thinking": _nullable({"type": "object"}),
        "tools": _nullable(
            {
                "type": "array",
                "items": {
                    "anyOf": [
                        {
                            "type": "object",
                            "required": ["name", "input_schema"],
                            "properties": {
                                "name": {"type": "string"},
                                "type": {"enum": ["custom", None]},
                                "input_schema": {"type": "object"},
                            },
                        },
                        {
                            "type": "object",
                            "required": ["name", "type"],
                            "properties": {
                                "name": {"type": "string"},
                                "type": {"type": "string", "not": {"const": "custom"}},
                            },
                        },
                    ]
                },
            }
        ),
        "tool_choice": {
            "anyOf": [
                {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"enum": ["auto", "any", "none"]}},
                },
                {
                    "type": "object",
                    "required": ["type", "name"],
                    "properties": {"type": {"const": "tool"}, "name": {"type": "string"}},
                },
                {"type": "null"},
            ]
        },
    },
}
_MESSAGE_REPLY = {
    "type": "object",
    "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
    "properties": {
        "id": {"type": "string"},
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "content": {"type": "array", "items": {"type": "object", "required": ["type"]}},
        "usage": {"type": "object", "required": ["input_tokens", "output_tokens"]},
    },
}
_ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}

_TOKENS = {"type": "array", "items": {"type": "integer"}, "minItems": 1,
           "maxItems": MAX_INPUT_TOKENS}  # fmt: skip
EMBEDDINGS_REQUEST = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string"},
        "input": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "minItems": 1,
                    "maxItems": 2048,
                },
                _TOKENS,
                {"type": "array", "items": _TOKENS, "minItems": 1, "maxItems": 2048},
            ]
        },
        "encoding_format": _nullable({"enum": ["float", "base64"]}),
        "dimensions": {"type": "integer", "minimum": 1, "maximum": MAX_DIMENSIONS},
        "user": _nullable({"type": "string"}),
    },
    "description": "dimensions is refused for text-embedding-ada-002, as OpenAI refuses it",
}
_EMBEDDINGS = {
    "type": "object",
    "required": ["object", "data", "model", "usage"],
    "properties": {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["object", "index", "embedding"],
                "properties": {
                    "object": {"const": "embedding"},
                    "index": {"type": "integer"},
                    "embedding": {
                        "anyOf": [
                            {"type": "array", "items": {"type": "number"}},
                            {"type": "string"},
                        ]
                    },
                },
            },
        },
        "usage": {"type": "object", "required": ["prompt_tokens", "total_tokens"]},
    },
}

SPEECH_REQUEST = {
    "type": "object",
    "required": ["model", "input", "voice"],
    "properties": {
        "model": {"type": "string"},
        "input": {"type": "string", "maxLength": MAX_INPUT},
        "voice": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
            ]
        },
        "instructions": _nullable({"type": "string"}),
        "response_format": _nullable({"enum": list(CONTENT_TYPES)}),
        "speed": _nullable({"type": "number", "minimum": 0.25, "maximum": 4.0}),
        "stream_format": _nullable({"enum": ["audio", "sse"]}),
    },
    "description": "stream_format 'sse' (audio deltas) is refused for the tts-1 models",
}
_SPEECH_EVENT = {
    "description": "one server-sent event: speech.audio.delta (base64 audio), speech.audio.done",
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string"}},
}


def _transcription_request(language: bool) -> dict[str, Any]:
    """The multipart form. ``srt``, ``vtt`` and ``verbose_json`` are refused for the gpt-
    models (json and text only), as OpenAI refuses them; ``diarized_json`` is for
    gpt-4o-transcribe-diarize only, so the document leaves it out."""
    properties: dict[str, Any] = {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "its name ends .wav, .mp3...",
        },
        "model": {"type": "string", "minLength": 1},
        "prompt": {"type": "string"},
        "response_format": {"enum": [f for f in TRANSCRIPT_FORMATS if f != "diarized_json"]},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
    }
    if language:
        properties["language"] = {"type": "string", "pattern": "^[a-z]{2}$"}
        properties["timestamp_granularities[]"] = {
            "type": "array",
            "items": {"enum": ["word", "segment"]},
        }
    return {"type": "object", "required": ["file", "model"], "properties": properties}


_TRANSCRIPTION = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string"},
        "duration": {"type": "number"},
        "language": {"type": "string"},
        "segments": {"type": "array", "items": {"type": "object"}},
        "words": {"type": "array", "items": {"type": "object"}},
        "usage": {"type": "object", "required": ["type"]},
    },
}
MODERATION_REQUEST = {
    "type": "object",
    "required": ["input"],
    "properties": {
        "model": {"type": "string"},
        "input": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1,
                 "maxItems": MAX_INPUTS},
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                    },
                },
            ]
        },
    },
    "description": "image_url parts are accepted by the omni-moderation models",
}  # fmt: skip
_MODERATION = {
    "type": "object",
    "required": ["id", "model", "results"],
    "properties": {
        "id": {"type": "string"},
        "model": {"type": "string"},
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["flagged", "categories", "category_scores"],
                "properties": {
                    "flagged": {"type": "boolean"},
                    "categories": {
                        "type": "object",
                        "properties": {c: {"type": "boolean"} for c in MODERATION_CATEGORIES},
                    },
                    "category_scores": {
                        "type": "object",
                        "properties": {
                            c: {"type": "number", "minimum": 0, "maximum": 1}
                            for c in MODERATION_CATEGORIES
                        },
                    },
                    "category_applied_input_types": {"type": "object"},
                },
            },
        },
    },
}
_IMAGE_PARAMS: dict[str, Any] = {
    "prompt": {"type": "string", "maxLength": 32000},
    "model": _nullable({"type": "string", "description": "default gpt-image-2 (the relay's)"}),
    "n": _nullable({"type": "integer", "minimum": 1, "maximum": 10}),
    "size": _nullable({"enum": ["auto", "1024x1024", "1536x1024", "1024x1536"]}),
    "quality": _nullable({"enum": ["low", "medium", "high", "auto"]}),
    "background": _nullable({"enum": ["transparent", "opaque", "auto"]}),
    "output_format": _nullable({"enum": ["png", "jpeg", "webp"]}),
    "output_compression": _nullable({"type": "integer", "minimum": 0, "maximum": 100}),
    "response_format": _nullable({"enum": ["url", "b64_json"]}),
    "moderation": _nullable({"enum": ["low", "auto"]}),
    "user": _nullable({"type": "string"}),
    "stream": _nullable({"type": "boolean"}),
    "partial_images": _nullable({"type": "integer", "minimum": 0, "maximum": 3}),
}
_NO_TRANSPARENT_JPEG = {
    "not": {
        "required": ["background", "output_format"],
        "properties": {"background": {"const": "transparent"}, "output_format": {"const": "jpeg"}},
    }
}
IMAGES_REQUEST = {
    "type": "object",
    "required": ["prompt"],
    "properties": _IMAGE_PARAMS,
    **_NO_TRANSPARENT_JPEG,
    "description": "sizes are the GPT image models' (gpt-image-2 takes any WIDTHxHEIGHT in "
    "multiples of 16 up to 3840x2160; DALL-E its own list); stream and partial_images stream",
}
_BINARY = {"type": "string", "format": "binary"}
IMAGE_EDIT_REQUEST = {
    "type": "object",
    "required": ["prompt", "image"],
    "properties": {
        **_IMAGE_PARAMS,
        "image": {"anyOf": [_BINARY, {"type": "array", "items": _BINARY, "minItems": 1}]},
        "mask": {**_BINARY, "description": "a PNG the size of the first image"},
    },
    "description": "images are PNG, JPEG or WebP files (anything else is a 400); a transparent "
    "background needs png or webp",
}
_IMAGES = {
    "type": "object",
    "required": ["created", "data"],
    "properties": {
        "created": {"type": "integer"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "b64_json": {"type": "string"},
                    "url": {"type": "string"},
                    "revised_prompt": {"type": "string"},
                },
            },
        },
        "background": {"enum": ["transparent", "opaque"]},
        "output_format": {"enum": ["png", "jpeg", "webp"]},
        "quality": {"type": "string"},
        "size": {"type": "string"},
        "usage": {
            "type": "object",
            "required": ["input_tokens", "output_tokens", "total_tokens"],
        },
    },
}
_ENVELOPE = {
    "type": "object",
    "required": ["code", "info", "result"],
    "properties": {"code": {"type": "integer"}, "info": {"type": "string"}, "result": {}},
    "description": "the relay's envelope: code 0 and info 'success', or an error's code and "
    "message (result null)",
}
SEEDANCE_REQUEST = {
    "type": "object",
    "required": ["model", "content"],
    "properties": {
        "model": {"type": "string"},
        "content": {
            "type": "array",
            "minItems": 1,
            "items": {
                "anyOf": [
                    {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                    },
                    {
                        "type": "object",
                        "required": ["type", "image_url"],
                        "properties": {
                            "type": {"const": "image_url"},
                            "image_url": {"type": "object"},
                        },
                    },
                ]
            },
            "contains": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"const": "text"}},
            },
        },
        "resolution": _nullable({"type": "string"}),
        "ratio": _nullable({"type": "string"}),
        "duration": _nullable({"type": "integer"}),
    },
}
GEMINI_IMAGE_REQUEST = {
    "type": "object",
    "required": ["model", "prompt"],
    "properties": {
        "model": {"type": "string"},
        "prompt": {"type": "string"},
        "action": _nullable({"enum": ["generate", "edit"]}),
        "aspect_ratio": _nullable({"type": "string"}),
        "resolution": _nullable({"enum": ["1K", "2K", "4K"]}),
    },
}

_COMPLETION = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "chat.completion"},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "message", "finish_reason"],
                "properties": {
                    "index": {"type": "integer"},
                    "message": {
                        "type": "object",
                        "required": ["role"],
                        "properties": {
                            "role": {"const": "assistant"},
                            "content": {"type": ["string", "null"]},
                        },
                    },
                    "finish_reason": {"type": "string"},
                },
            },
        },
        "usage": {
            "type": "object",
            "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
            "properties": {
                k: {"type": "integer", "minimum": 0}
                for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            },
        },
    },
}

_MODEL = {
    "type": "object",
    "required": ["id", "object", "created", "owned_by"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "model"},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
    },
}


_EVENT = {
    "description": "one server-sent event: a chat.completion.chunk as JSON, or [DONE]",
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string"}, "event": {"const": "message"}},
}
_NAMED_EVENT = {
    "description": "one server-sent event, named (response.created, ...), its data JSON",
    "type": "object",
    "required": ["data", "event"],
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
}


def _errors(*statuses: int, shape: str = "Error") -> dict[str, Any]:
    body = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{shape}"}}}}
    return {str(s): {"description": f"an error object ({shape})", **body} for s in statuses}


def _post(
    operation: str,
    request: str,
    reply: str,
    stream: Any,
    errors: str,
    media: str = "application/json",
    statuses: tuple[int, ...] = (400, 404, 408, 413, 429, 401, 431),
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{reply}"}}
    }
    if stream is not None:
        content["text/event-stream"] = {"schema": stream}
    return {
        "post": {
            "operationId": operation,
            "requestBody": {
                "required": True,
                "content": {media: {"schema": {"$ref": f"#/components/schemas/{request}"}}},
            },
            "responses": {
                "200": {"description": "the scenario's reply", "content": content},
                **_errors(*statuses, shape=errors),
            },
        }
    }


_AUTH_ERRORS = _errors(401, 431)
_TASK_ERRORS = (400, 404, 408, 413, 429, 401, 431)


def _poll(operation: str, query: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation,
            "security": [{"aikey": []}, {"bearer": []}],
            "parameters": [
                {
                    "name": query,
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1},
                }
            ],
            "responses": {
                "200": {
                    "description": "the task's next stage (its script's), in the envelope",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}
                    },
                },
                **_errors(400, 404, 401, 431, shape="Envelope"),
            },
        }
    }


def _submit(operation: str, request: str) -> dict[str, Any]:
    post = _post(operation, request, "Envelope", None, "Envelope", statuses=_TASK_ERRORS)
    post["post"]["security"] = [{"aikey": []}, {"bearer": []}]
    return post


def _media(operation: str, name: str, types: list[str]) -> dict[str, Any]:
    content = {t: {"schema": {"type": "string", "format": "binary"}} for t in types}
    return {
        "get": {
            "operationId": operation,
            "security": [],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "the file", "content": content},
                **_errors(404),
            },
        }
    }


_FILE_NAME = "the name's extension says the format, as OpenAI wants"
_FILE_PART = 'form-data; name="file"; filename="audio.wav"'


def _form_post(operation: str, request: str) -> dict[str, Any]:
    """A multipart upload answered with JSON (json, verbose_json) or text (text, srt, vtt)."""
    return {
        "post": {
            "operationId": operation,
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {"$ref": f"#/components/schemas/{request}"},
                        "encoding": {
                            "file": {
                                "headers": {
                                    "Content-Disposition": {
                                        "description": _FILE_NAME,
                                        "schema": {"type": "string", "example": _FILE_PART},
                                    }
                                }
                            }
                        },
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "the transcript: its scenario's content, or generated",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/Transcription"}
                        },
                        "text/plain": {"schema": {"type": "string"}},
                    },
                },
                **_errors(400, 404, 408, 413, 429),
                **_AUTH_ERRORS,
            },
        }
    }


# --- Google Gemini ----------------------------------------------------------------------------


def _proto(schema: dict[str, Any]) -> dict[str, Any]:
    """A request schema as Google's JSON reads it: a null field is an unset one, at every
    level (required ones aside)."""
    out = dict(schema)
    if "items" in out:
        out["items"] = _proto(out["items"])
    if "properties" in out:
        required = set(out.get("required", ()))
        out["properties"] = {
            name: _proto(sub) if name in required else _nullable(_proto(sub))
            for name, sub in out["properties"].items()
        }
    return out


_PART = {
    "type": "object",
    "description": "one of text, functionCall, functionResponse, inlineData, fileData; "
    "field names in camelCase or snake_case",
    "properties": {
        "text": {"type": "string"},
        "thought": {"type": "boolean"},
        "functionCall": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "args": {"type": "object"},
                "id": {"type": "string"},
            },
        },
        "functionResponse": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "response": {"type": "object"},
                "id": {"type": "string"},
            },
        },
        "inlineData": {"type": "object"},
        "fileData": {"type": "object"},
    },
}
_CONTENT = {
    "type": "object",
    "required": ["parts"],
    "properties": {
        # "" is proto3's unset string, which Google reads as the default, user.
        "role": {"enum": ["user", "model", ""]},
        "parts": {"type": "array", "items": _PART},
    },
}
GEMINI_REQUEST = {
    "type": "object",
    "required": ["contents"],
    "properties": {
        "contents": {"type": "array", "items": _CONTENT, "minItems": 1},
        "systemInstruction": _CONTENT,
        "tools": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "functionDeclarations": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string", "minLength": 1}},
                        },
                    }
                },
            },
        },
        "toolConfig": {
            "type": "object",
            "properties": {
                "functionCallingConfig": {
                    "type": "object",
                    "properties": {
                        "mode": {"enum": list(CALLING_MODES)},
                        "allowedFunctionNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
        "generationConfig": {
            "type": "object",
            "properties": {
                "temperature": {"type": "number"},
                "topP": {"type": "number"},
                "topK": {"type": "number"},
                "candidateCount": {"type": "integer", "minimum": 1, "maximum": MAX_N},
                "maxOutputTokens": {"type": "integer"},
                "presencePenalty": {"type": "number"},
                "frequencyPenalty": {"type": "number"},
                "seed": {"type": "integer"},
                "responseModalities": {"type": "array", "items": {"type": "string"}},
                "stopSequences": {"type": "array", "items": {"type": "string"}},
                "responseMimeType": {"type": "string"},
                "responseSchema": {"type": "object"},
                "thinkingConfig": {
                    "type": "object",
                    "properties": {
                        "includeThoughts": {"type": "boolean"},
                        "thinkingBudget": {"type": "integer"},
                        "thinkingLevel": {"type": "string"},
                    },
                },
            },
        },
    },
}
_EMBED_REQUEST = {
    "type": "object",
    "required": ["content"],
    "properties": {
        "content": _CONTENT,
        "outputDimensionality": {"type": "integer", "minimum": 1, "maximum": MAX_DIMENSIONS},
        "taskType": {"type": "string"},
        "title": {"type": "string"},
    },
}
GEMINI_EMBED_REQUEST = _EMBED_REQUEST
GEMINI_BATCH_EMBED_REQUEST = {
    "type": "object",
    "required": ["requests"],
    "properties": {"requests": {"type": "array", "items": _EMBED_REQUEST, "minItems": 1}},
}
_CANDIDATES = {
    "type": "object",
    "required": ["candidates", "usageMetadata", "modelVersion", "responseId"],
    "properties": {
        "candidates": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["content", "index"],
                "properties": {
                    "content": {"type": "object", "required": ["parts", "role"]},
                    "finishReason": {"enum": ["STOP", "MAX_TOKENS", "SAFETY"]},
                    "index": {"type": "integer"},
                },
            },
        },
        "usageMetadata": {
            "type": "object",
            "required": ["promptTokenCount", "totalTokenCount"],
        },
        "modelVersion": {"type": "string"},
        "responseId": {"type": "string"},
    },
}
_VALUES = {
    "type": "object",
    "required": ["values"],
    "properties": {"values": {"type": "array", "items": {"type": "number"}}},
}
_GOOGLE_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "status"],
            "properties": {
                "code": {"type": "integer"},
                "message": {"type": "string"},
                "status": {"type": "string"},
            },
        }
    },
}
_GOOGLE_EVENT = {
    "description": "one server-sent event (with ?alt=sse): a partial GenerateContentResponse",
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string"}},
}
_MODEL_NAME = {
    "name": "model",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
}
_GOOGLE_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
"""Described as Bearer, which relays (and the mock) accept; Google's clients send the key as
``x-goog-api-key`` or ``?key=``, which the mock accepts too (listed as security schemes)."""


def _gemini(operation: str, request: str, replies: dict[str, Any]) -> dict[str, Any]:
    """A Gemini method: ``POST /v1beta/models/{model}:method`` (``/v1`` too)."""
    return {
        "post": {
            "operationId": operation,
            "security": _GOOGLE_SECURITY,
            "parameters": [_MODEL_NAME],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}
                },
            },
            "responses": {
                "200": {"description": "the scenario's reply", "content": replies},
                **_errors(400, 403, 404, 408, 413, 429, shape="GoogleError"),
            },
        }
    }


def _json_reply(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


GEMINI_PATHS = {
    "/v1beta/models/{model}:generateContent": _gemini(
        "generateContent",
        "GeminiRequest",
        _json_reply({"$ref": "#/components/schemas/GenerateContentResponse"}),
    ),
    "/v1beta/models/{model}:streamGenerateContent": _gemini(
        "streamGenerateContent",
        "GeminiRequest",
        {
            "application/json": {
                "schema": {
                    "description": "without ?alt=sse: one JSON array, sent element by element",
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/GenerateContentResponse"},
                }
            },
            "text/event-stream": {"schema": _GOOGLE_EVENT},
        },
    ),
    "/v1beta/models/{model}:countTokens": _gemini(
        "countTokens",
        "GeminiRequest",
        _json_reply(
            {
                "type": "object",
                "required": ["totalTokens"],
                "properties": {"totalTokens": {"type": "integer"}},
            }
        ),
    ),
    "/v1beta/models/{model}:embedContent": _gemini(
        "embedContent",
        "GeminiEmbedRequest",
        _json_reply(
            {"type": "object", "required": ["embedding"], "properties": {"embedding": _VALUES}}
        ),
    ),
    "/v1beta/models/{model}:batchEmbedContents": _gemini(
        "batchEmbedContents",
        "GeminiBatchEmbedRequest",
        _json_reply(
            {
                "type": "object",
                "required": ["embeddings"],
                "properties": {"embeddings": {"type": "array", "items": _VALUES}},
            }
        ),
    ),
    "/v1beta/models": {
        "get": {
            "operationId": "listGeminiModels",
            "security": _GOOGLE_SECURITY,
            "responses": {
                "200": {
                    "description": "the models the scenarios name, in Google's shape",
                    "content": _json_reply(
                        {
                            "type": "object",
                            "required": ["models"],
                            "properties": {"models": {"type": "array"}},
                        }
                    ),
                },
                **_errors(400, 403, shape="GoogleError"),
            },
        }
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "mockserver",
        "version": "1",
        "description": "A scripted mock of LLM APIs: chat completions, responses, "
        "Anthropic messages, embeddings, speech, transcription, translation, moderation, "
        "images, a relay's task APIs (video, images), and Google Gemini (under /v1beta and /v1).",
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "aikey": {"type": "apiKey", "in": "header", "name": "AIKey"},
            "googApiKey": {"type": "apiKey", "in": "header", "name": "x-goog-api-key"},
            "googQueryKey": {"type": "apiKey", "in": "query", "name": "key"},
        },
        "schemas": {
            "Error": _ERROR,
            "ChatRequest": CHAT_REQUEST,
            "ChatCompletion": _COMPLETION,
            "ResponsesRequest": RESPONSES_REQUEST,
            "Response": _RESPONSE,
            "MessagesRequest": MESSAGES_REQUEST,
            "Message": _MESSAGE_REPLY,
            "AnthropicError": _ANTHROPIC_ERROR,
            "EmbeddingsRequest": EMBEDDINGS_REQUEST,
            "Embeddings": _EMBEDDINGS,
            "Model": _MODEL,
            "GeminiRequest": _proto(GEMINI_REQUEST),
            "GenerateContentResponse": _CANDIDATES,
            "GeminiEmbedRequest": _proto(GEMINI_EMBED_REQUEST),
            "GeminiBatchEmbedRequest": _proto(GEMINI_BATCH_EMBED_REQUEST),
            "GoogleError": _GOOGLE_ERROR,
            "SpeechRequest": SPEECH_REQUEST,
            "TranscriptionRequest": _transcription_request(language=True),
            "TranslationRequest": _transcription_request(language=False),
            "Transcription": _TRANSCRIPTION,
            "ModerationRequest": MODERATION_REQUEST,
            "Moderation": _MODERATION,
            "ImagesRequest": IMAGES_REQUEST,
            "ImageEditRequest": IMAGE_EDIT_REQUEST,
            "Images": _IMAGES,
            "Envelope": _ENVELOPE,
            "SeedanceRequest": SEEDANCE_REQUEST,
            "GeminiImageRequest": GEMINI_IMAGE_REQUEST,
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/chat/completions": {
            "post": {
                "operationId": "createChatCompletion",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}
                    },
                },
                "responses": {
                    "200": {
                        "description": "the scenario's reply, as JSON or as server-sent events",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ChatCompletion"}
                            },
                            "text/event-stream": {"schema": _EVENT},
                        },
                    },
                    **_errors(400, 404, 408, 413, 429),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/v1/responses": {
            "post": {
                "operationId": "createResponse",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ResponsesRequest"}
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "the scenario's reply, as JSON or as server-sent events",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Response"}
                            },
                            "text/event-stream": {"schema": _NAMED_EVENT},
                        },
                    },
                    **_errors(400, 404, 408, 413, 429),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/v1/responses/{response_id}": {
            "get": {
                "operationId": "retrieveResponse",
                "parameters": [
                    {
                        "name": "response_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "a stored response (one created without store: false)",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Response"}
                            }
                        },
                    },
                    **_errors(404),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/v1/messages": _post(
            "createMessage", "MessagesRequest", "Message", _NAMED_EVENT, "AnthropicError"
        ),
        "/v1/embeddings": _post(
            "createEmbeddings", "EmbeddingsRequest", "Embeddings", None, "Error"
        ),
        "/v1/audio/speech": {
            "post": {
                "operationId": "createSpeech",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/SpeechRequest"}
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "a file of the requested format (mp3 by default)",
                        "content": {
                            **{
                                t: {"schema": {"type": "string", "format": "binary"}}
                                for t in CONTENT_TYPES.values()
                            },
                            "text/event-stream": {"schema": _SPEECH_EVENT},
                        },
                    },
                    **_errors(400, 404, 408, 413, 429),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/v1/audio/transcriptions": _form_post("createTranscription", "TranscriptionRequest"),
        "/v1/audio/translations": _form_post("createTranslation", "TranslationRequest"),
        "/v1/moderations": _post(
            "createModeration", "ModerationRequest", "Moderation", None, "Error"
        ),
        "/v1/images/generations": _post(
            "createImage", "ImagesRequest", "Images", _NAMED_EVENT, "Error"
        ),
        "/v1/images/edits": _post(
            "createImageEdit",
            "ImageEditRequest",
            "Images",
            _NAMED_EVENT,
            "Error",
            media="multipart/form-data",
        ),
        "/ai/seedance/videos": _submit("submitSeedanceVideo", "SeedanceRequest"),
        "/ai/seedance/result": _poll("pollSeedanceVideo", "task_id"),
        "/ai/gemini/image/generate": _submit("submitGeminiImage", "GeminiImageRequest"),
        "/ai/gemini/result": _poll("pollGeminiImage", "code"),
        "/media/images/{token}": _media(
            "getGeneratedImage", "token", ["image/png", "image/jpeg", "image/webp"]
        ),
        "/media/files/{name}": _media(
            "getScenarioFile", "name", ["image/png", "image/jpeg", "image/webp", "video/mp4"]
        ),
        "/v1/models": {
            "get": {
                "operationId": "listModels",
                "responses": {
                    "200": {
                        "description": "the models the scenarios name",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["object", "data"],
                                    "properties": {
                                        "object": {"const": "list"},
                                        "data": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Model"},
                                        },
                                    },
                                }
                            }
                        },
                    },
                    **_AUTH_ERRORS,
                },
            }
        },
        "/v1/models/{model}": {
            "get": {
                "operationId": "retrieveModel",
                "parameters": [
                    {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "one model",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Model"}}
                        },
                    },
                    **_errors(404),
                    **_AUTH_ERRORS,
                },
            }
        },
        **GEMINI_PATHS,
    },
}
