"""The baseline: a bare aiohttp handler returning a fixed reply (streamed: one write per chunk)."""

from __future__ import annotations

import json
import sys

from aiohttp import web

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import REPLY, USER

CHUNKS = [REPLY[i : i + 20] for i in range(0, len(REPLY), 20)]
HEAD = {"id": "chatcmpl-bare", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4"}


def frame(delta: dict[str, str], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return f"data: {json.dumps({**HEAD, 'choices': [choice]})}\n\n".encode()


FRAMES = [
    frame({"role": "assistant", "content": ""}),
    *(frame({"content": c}) for c in CHUNKS),
    frame({}, "stop"),
    b"data: [DONE]\n\n",
]
PLAIN = json.dumps(
    {
        "id": "chatcmpl-bare",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": REPLY, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 56, "total_tokens": 66},
    }
).encode()


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    assert body["messages"][-1]["content"].startswith(USER)
    if not body.get("stream"):
        return web.Response(body=PLAIN, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for f in FRAMES:
        await response.write(f)
    await response.write_eof()
    return response


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
