"""The baseline: a bare aiohttp handler returning a fixed reply (streamed: one write per chunk).

It parses the JSON and checks the user message, as any server must, and sends prepared bytes."""

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


RESPONSE = {"id": "resp_bare", "object": "response", "created_at": 0, "model": "gpt-4"}
TEXT = {"type": "output_text", "text": REPLY, "annotations": []}
MESSAGE = {"id": "msg_bare", "type": "message", "status": "completed", "role": "assistant",
           "content": [TEXT]}  # fmt: skip
USAGE = {"input_tokens": 10, "output_tokens": 56, "total_tokens": 66}
DONE = {**RESPONSE, "status": "completed", "output": [MESSAGE], "usage": USAGE}
RESPONSES_PLAIN = json.dumps(DONE).encode()


def event(kind: str, sequence: int, **data: object) -> bytes:
    payload = json.dumps({"type": kind, "sequence_number": sequence, **data})
    return f"event: {kind}\ndata: {payload}\n\n".encode()


def _responses_events() -> list[bytes]:
    opened = {**RESPONSE, "status": "in_progress", "output": []}
    where = {"item_id": "msg_bare", "output_index": 0, "content_index": 0}
    kinds: list[tuple[str, dict[str, object]]] = [
        ("response.created", {"response": opened}),
        ("response.in_progress", {"response": opened}),
        ("response.output_item.added", {"output_index": 0, "item": {**MESSAGE, "content": []}}),
        ("response.content_part.added", {**where, "part": {**TEXT, "text": ""}}),
        *(("response.output_text.delta", {**where, "delta": c}) for c in CHUNKS),
        ("response.output_text.done", {**where, "text": REPLY}),
        ("response.content_part.done", {**where, "part": TEXT}),
        ("response.output_item.done", {"output_index": 0, "item": MESSAGE}),
        ("response.completed", {"response": DONE}),
    ]
    return [event(kind, i, **data) for i, (kind, data) in enumerate(kinds)]


RESPONSES_EVENTS = _responses_events()


async def reply(request: web.Request, plain: bytes, frames: list[bytes]) -> web.StreamResponse:
    body = await request.json()
    turns = body["messages"] if request.path.endswith("/completions") else body["input"]
    assert turns[-1]["content"].startswith(USER)
    if not body.get("stream"):
        return web.Response(body=plain, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for f in frames:
        await response.write(f)
    await response.write_eof()
    return response


async def chat(request: web.Request) -> web.StreamResponse:
    return await reply(request, PLAIN, FRAMES)


async def responses(request: web.Request) -> web.StreamResponse:
    return await reply(request, RESPONSES_PLAIN, RESPONSES_EVENTS)


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/responses", responses)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
