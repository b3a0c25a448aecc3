"""The official Node SDKs (openai, @anthropic-ai/sdk) and the Vercel AI SDK's Google provider
(@ai-sdk/google) against the mock, unchanged.

``make test`` installs them into tests/node (``npm ci``, versions pinned by its lock file)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mockserver import MockServer

NODE = Path(__file__).parent / "node"
SCENARIOS = [
    {"name": "tool", "match": {"tools": ["get_weather"]},
     "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}},
    {"name": "overload", "match": {"last_user": "overload"},
     "error": {"status": 529, "message": "Overloaded"}},
    {"name": "hello", "reply": {"content": "Hello, Node."}},
]  # fmt: skip


def test_node_sdks_chat_responses_embeddings_and_messages() -> None:
    node = shutil.which("node")
    if node is None or not (NODE / "node_modules" / "openai").is_dir():
        pytest.fail(
            "the Node SDK test needs node and the SDKs: cd tests/node && npm ci "
            "(make test does it)",
            pytrace=False,
        )
    with MockServer(SCENARIOS) as server:
        run = subprocess.run(
            [node, "clients.mjs", server.url], cwd=NODE, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        apis = [e.api for e in server.journal]
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got == {
        "chat": "Hello, Node.",
        "chatStream": "Hello, Node.",
        "toolCall": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        "responses": "Hello, Node.",
        "responsesEvents": ["response.created", "response.completed"],
        "embeddings": [1536, 1536],
        "messages": "Hello, Node.",
        "messagesStream": "Hello, Node.",
        "messagesError": ["OverloadedError", 529, "overloaded_error"],
        "google": ["Hello, Node.", "stop", 10, 4],
        "googleStream": "Hello, Node.",
        "googleToolCall": [["get_weather", {"city": "Paris"}]],
        "googleEmbeddings": [3072, 3072],
    }
    assert set(apis) == {
        "chat",
        "responses",
        "embeddings",
        "messages",
        "gemini",
        "gemini_embeddings",
    }
