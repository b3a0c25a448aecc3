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
import time
from collections.abc import Awaitable
from typing import Any

import httpx

from mockserver import MockServer

AUTH = {"Authorization": "Bearer sk-test"}
PING = {"model": "m", "messages": [{"role": "user", "content": "ping"}]}
LONG = " ".join(f"word{i}" for i in range(4000))  # 8,000 tokens
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
