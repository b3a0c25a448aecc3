"""One request must not stall the others (issue 21): a reply that takes seconds of CPU to make
is made in slices, or off the event loop, and a one-line request sent meanwhile is answered
at once.

Each test measures the server's loop lag, not wall time against a fixed figure: small requests
go one after another for as long as the big one lasts, and the slowest of them must take a
small part of the big one's time. Before, the first small request waited for the whole big
reply to be made (1.5 s of 1.8 s for 2,048 inputs).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from typing import Any

import httpx
import openai

from mockserver import MockServer, Options

AUTH = {"Authorization": "Bearer sk-test"}
PING = {"model": "m", "messages": [{"role": "user", "content": "ping"}]}
LONG = " ".join(f"word{i}" for i in range(4000))  # 8,000 tokens
MEDIUM = " ".join(f"word{i}" for i in range(6000))  # 12,000 tokens: just heavy
LONGER = " ".join(f"word{i}" for i in range(60_000))  # 120,000 tokens


async def _timed(request: Awaitable[httpx.Response]) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await request
    return time.perf_counter() - started, response


async def _lags_during(server: MockServer, path: str, body: dict[str, Any]) -> list[float]:
    """How long each small chat request took while the big request was being answered."""
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=300) as client:
        big = asyncio.create_task(_timed(client.post(path, json=body)))
        await asyncio.sleep(0)  # the big request goes out first
        lags = []
        while not big.done():
            lag, pong = await _timed(client.post("/chat/completions", json=PING))
            assert pong.status_code == 200
            lags.append(lag)
        took, response = await big
    assert response.status_code == 200, response.text[:300]
    assert len(lags) >= 3, f"the big request took {took:.3f}s, {len(lags)} small ones"
    assert max(lags) < took / 4, f"slowest small request {max(lags):.3f}s of {took:.3f}s"
    print(f"{path}: {len(lags)} small requests during {took:.3f}s, slowest {max(lags):.3f}s")
    return lags


async def test_a_batch_of_2048_embeddings_leaves_the_loop_serving() -> None:
    texts = [f"document {i} about the weather in town {i % 97}" for i in range(2048)]
    body = {"model": "text-embedding-3-large", "input": texts, "encoding_format": "base64"}
    with MockServer([{"match": {"api": "chat"}, "reply": {"content": "pong"}}]) as server:
        await _lags_during(server, "/embeddings", body)


async def test_many_long_choices_leave_the_loop_serving() -> None:
    scenarios = [
        {"match": {"last_user": "ping"}, "reply": {"content": "pong"}},
        {"match": {"last_user": "long"}, "reply": {"content": LONG}},
        {"match": {"last_user": "longer"}, "reply": {"content": LONGER}},
    ]
    long = {"model": "m", "messages": [{"role": "user", "content": "long"}], "n": 16}
    longer = {"model": "m", "messages": [{"role": "user", "content": "longer"}], "n": 128}
    with MockServer(scenarios) as server:
        await _lags_during(server, "/chat/completions", longer)  # 77 MB of JSON
        await _lags_during(server, "/chat/completions", {**long, "stream": True})  # 128k chunks
        await _lags_during(server, "/responses", {"model": "m", "input": "longer", "stream": True})


def _chunks(server: MockServer, body: dict[str, Any]) -> list[Any]:
    """A streamed chat reply's chunks, read without an SDK (which takes seconds for 10,000)."""
    body = {"model": "m", "stream": True, **body}
    r = httpx.post(f"{server.base_url}/chat/completions", json=body, headers=AUTH, timeout=60)
    lines = [line[6:] for line in r.text.splitlines() if line[:6] == "data: "]
    return [json.loads(line) for line in lines if line != "[DONE]"]


def test_a_heavy_reply_is_the_same_reply() -> None:
    """Made in slices, a heavy reply is what a light one would be: stored and retrievable,
    its stream whole, a fault in it still struck, a cadence at ``--speed 0`` not waited for."""
    scenarios = [
        {"match": {"last_user": "medium"}, "reply": {"content": MEDIUM}},
        {"match": {"last_user": "paced"}, "reply": {"content": LONG},
         "cadence": {"delay": 0.5}},
        {"match": {"last_user": "cut"}, "reply": {"content": MEDIUM},
         "fault": {"kind": "stream_error", "after_chunks": 5_000}},
    ]  # fmt: skip
    with (
        MockServer(scenarios, options=Options(speed=0)) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        streamed = httpx.post(
            f"{server.base_url}/responses",
            json={"model": "m", "input": "medium", "stream": True},
            headers=AUTH,
        )
        events = [
            json.loads(line[6:]) for line in streamed.text.splitlines() if line[:6] == "data: "
        ]
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        assert "".join(e.get("delta", "") for e in events[:-1]) == MEDIUM
        final = events[-1]["response"]
        assert events[-1]["type"] == "response.completed"
        assert client.responses.retrieve(final["id"]).output_text == MEDIUM
        texts = [""] * 2
        for chunk in _chunks(server, {"messages": [{"role": "user", "content": "paced"}], "n": 2}):
            for choice in chunk["choices"]:
                texts[choice["index"]] += choice["delta"].get("content") or ""
        assert texts == [LONG] * 2
        chunks = _chunks(server, {"messages": [{"role": "user", "content": "cut"}]})
        assert "error" in chunks[-1]  # the fault struck, after its 5,000 pieces
        got = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
        assert 0 < len(got) < len(MEDIUM)
