"""The OpenAPI document the server publishes at ``/openapi.json``.

It describes what this server accepts, no more and no less (the checks in ``request.py``,
under the default profile), so a schema-driven fuzzer such as schemathesis can hold the server
to it: valid requests must succeed, invalid ones must get a 4xx error object.
"""

from __future__ import annotations

from typing import Any

from .protocols.chat import MAX_N, RESPONSE_FORMATS, ROLES


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
        "top_logprobs": _INTEGER,
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


def _errors(*statuses: int) -> dict[str, Any]:
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {str(s): {"description": "an OpenAI error object", **body} for s in statuses}


_AUTH_ERRORS = _errors(401, 431)

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "mockserver",
        "version": "1",
        "description": "A scripted mock of the OpenAI chat completions API.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": _ERROR,
            "ChatRequest": CHAT_REQUEST,
            "ChatCompletion": _COMPLETION,
            "Model": _MODEL,
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
    },
}
