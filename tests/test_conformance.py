"""Replies, chunks and errors validate against OpenAI's official OpenAPI schemas.

``openapi-chat-schemas.json`` holds only the schemas needed here (with their references),
taken from openai/openai-openapi at commit f85dbe223d40e1a31cba812ab2d755c7e98a92a3.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from mockserver import MockServer


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` (still used in places) as JSON Schema's ``null`` type."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable(v) for k, v in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


_DOC = _nullable(json.loads((Path(__file__).parent / "openapi-chat-schemas.json").read_text()))
_ROOT = {"components": {"schemas": _DOC["schemas"]}}


def validator(name: str) -> Callable[[Any], None]:
    schema = {**_DOC["schemas"][name], "components": _ROOT["components"]}
    check = jsonschema.Draft202012Validator(schema)

    def validate(instance: Any) -> None:
        errors = sorted(check.iter_errors(instance), key=str)
        assert not errors, f"{name}: {errors[0].message} at {list(errors[0].absolute_path)}"

    return validate


SCENARIOS = [
    {"reply": {"content": "Plain text reply with several words."}},
    {"reply": {"reasoning": "Think first.", "content": "Then answer."}},
    {"reply": {"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}},
                              {"name": "lookup", "arguments": {"q": "y"}}]}},
    {"reply": {"refusal": "I can't help with that."}},
    {"reply": {"content": "Cut short", "finish_reason": "length"}},
]  # fmt: skip
REQUESTS = [
    {"model": "gpt-4", "messages": [{"role": "user", "content": "hello"}]},
    {"model": "gpt-4", "messages": [{"role": "user", "content": "hello"}], "n": 2},
    {"model": "gpt-4", "messages": [{"role": "user", "content": "hello"}],
     "max_completion_tokens": 2},
]  # fmt: skip


@pytest.fixture
def post(mockserver: MockServer) -> Iterator[Callable[..., httpx.Response]]:
    with httpx.Client(base_url=mockserver.base_url, headers={"Authorization": "Bearer k"}) as c:
        yield lambda body: c.post("/chat/completions", json=body)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("body", REQUESTS)
def test_reply_and_chunks_validate(
    mockserver: MockServer,
    post: Callable[..., httpx.Response],
    scenario: dict[str, Any],
    body: dict[str, Any],
) -> None:
    mockserver.add(scenario)
    reply = post(body)
    assert reply.status_code == 200
    validator("CreateChatCompletionResponse")(reply.json())
    assert len(reply.json()["choices"]) == body.get("n", 1)
    stream = post({**body, "stream": True, "stream_options": {"include_usage": True}})
    frames = stream.content.decode().split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""]
    check = validator("CreateChatCompletionStreamResponse")
    for frame in frames[:-2]:
        check(json.loads(frame.removeprefix("data: ")))


def test_errors_validate(mockserver: MockServer, post: Callable[..., httpx.Response]) -> None:
    check = validator("ErrorResponse")
    check(post({"model": 1}).json())
    mockserver.add({"error": {"status": 429}})
    check(post(REQUESTS[0]).json())


def test_models_validate(mockserver: MockServer) -> None:
    listing = httpx.get(f"{mockserver.base_url}/models", headers={"Authorization": "Bearer k"})
    validator("ListModelsResponse")(listing.json())
