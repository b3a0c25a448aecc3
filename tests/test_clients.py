"""Other clients people point at the mock, unchanged: langchain and LiteLLM.

Both would reach the network on their own (tiktoken's encoding download, LiteLLM's price list),
so each test sets what their documentation offers to stay offline, as a user would."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from mockserver import MockServer

SCENARIOS = [
    {"name": "claude", "match": {"api": "messages"}, "reply": {"content": "Hello from Claude."}},
    {"name": "tool", "match": {"api": "messages", "tools": ["get_weather"]},
     "priority": 1, "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}},
    {"name": "chat", "match": {"api": "chat"}, "reply": {"content": "Hello from chat."}},
]  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockServer(SCENARIOS) as server:
        yield server


def test_langchain_embeddings_and_chat(server: MockServer) -> None:
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(
        model="text-embedding-3-small",
        base_url=server.base_url,
        api_key="sk-test",
        check_embedding_ctx_length=False,  # else tiktoken downloads its encoding
    )
    docs = embeddings.embed_documents(["sunny in Paris", "rain in Paris", "beef stew"])
    query = embeddings.embed_query("weather in Paris")
    assert len(docs) == 3
    assert len(query) == 1536
    scores = [sum(a * b for a, b in zip(query, d, strict=True)) for d in docs]
    assert min(scores[0], scores[1]) > scores[2]
    chat = ChatOpenAI(model="gpt-4o", base_url=server.base_url, api_key="sk-test")
    assert chat.invoke("hi").content == "Hello from chat."
    assert "".join(str(c.content) for c in chat.stream("hi")) == "Hello from chat."


@pytest.fixture
def litellm_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price list from the network
    monkeypatch.setenv("LITELLM_TELEMETRY", "False")


@pytest.mark.usefixtures("litellm_offline")
def test_litellm_embedding_and_anthropic_models(server: MockServer) -> None:
    import litellm

    result = litellm.embedding(
        model="openai/text-embedding-3-small", input=["hello"], api_base=server.base_url,
        api_key="sk-test",
    )  # fmt: skip
    assert len(result.data[0]["embedding"]) == 1536
    reply = litellm.completion(
        model="anthropic/claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}],
        api_base=server.url, api_key="sk-ant-test", max_tokens=50,
    )  # fmt: skip
    assert reply.choices[0].message.content == "Hello from Claude."
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]  # fmt: skip
    called = litellm.completion(
        model="anthropic/claude-sonnet-4-5", messages=[{"role": "user", "content": "weather?"}],
        api_base=server.url, api_key="sk-ant-test", max_tokens=50, tools=tools,
    )  # fmt: skip
    (call,) = called.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": "Oslo"}')
    streamed = litellm.completion(
        model="anthropic/claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}],
        api_base=server.url, api_key="sk-ant-test", max_tokens=50, stream=True,
    )  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == "Hello from Claude."
    assert {e.api for e in server.journal} >= {"embeddings", "messages"}
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
