"""The baseline: a bare aiohttp handler returning a fixed reply (streamed: one write per chunk).

It parses the JSON and checks the user message, as any server must, and sends prepared bytes."""

from __future__ import annotations

import json
import sys

from aiohttp import web

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import EMBEDDING, REPLY, USER

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
MESSAGE = {
    "id": "msg_bare",
    "type": "message",
    "status": "completed",
    "role": "assistant",
    "content": [TEXT],
}
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


MESSAGE_HEAD = {"id": "msg_bare", "type": "message", "role": "assistant", "model": "claude"}
MESSAGE_USAGE = {"input_tokens": 10, "output_tokens": 56}
MESSAGES_PLAIN = json.dumps(
    {
        **MESSAGE_HEAD,
        "content": [{"type": "text", "text": REPLY}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": MESSAGE_USAGE,
    }
).encode()


def _messages_events() -> list[bytes]:
    block = {"type": "content_block_delta", "index": 0}
    kinds: list[dict[str, object]] = [
        {
            "type": "message_start",
            "message": {
                **MESSAGE_HEAD,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {**MESSAGE_USAGE, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *({**block, "delta": {"type": "text_delta", "text": c}} for c in CHUNKS),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 56},
        },
        {"type": "message_stop"},
    ]
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in kinds]


MESSAGES_EVENTS = _messages_events()
EMBEDDINGS_PLAIN = json.dumps(
    {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": EMBEDDING}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
).encode()


GEMINI_TEXT = {"content": {"parts": [{"text": REPLY}], "role": "model"}, "index": 0}
GEMINI_USAGE = {"promptTokenCount": 10, "candidatesTokenCount": 56, "totalTokenCount": 66}
GEMINI_PLAIN = json.dumps(
    {"candidates": [{**GEMINI_TEXT, "finishReason": "STOP"}], "usageMetadata": GEMINI_USAGE,
     "modelVersion": "gemini-2.5-flash", "responseId": "bare"}
).encode()  # fmt: skip
GEMINI_EVENTS = [
    f"data: {json.dumps(e)}\r\n\r\n".encode()
    for e in [
        *({"candidates": [{"content": {"parts": [{"text": c}], "role": "model"}, "index": 0}],
           "modelVersion": "gemini-2.5-flash", "responseId": "bare"} for c in CHUNKS[:-1]),
        {"candidates": [{"content": {"parts": [{"text": CHUNKS[-1]}], "role": "model"},
                         "finishReason": "STOP", "index": 0}], "usageMetadata": GEMINI_USAGE,
         "modelVersion": "gemini-2.5-flash", "responseId": "bare"},
    ]
]  # fmt: skip


async def reply(request: web.Request, plain: bytes, frames: list[bytes]) -> web.StreamResponse:
    body = await request.json()
    if "contents" in body:  # Gemini: the path says whether it streams
        last = body["contents"][-1]["parts"][0]["text"]
        streamed = request.path.endswith(":streamGenerateContent")
    else:
        turns = body["input"] if request.path.endswith(("/responses", "/embeddings")) else (
            body["messages"])  # fmt: skip
        last = turns if isinstance(turns, str) else turns[-1]["content"]
        streamed = bool(body.get("stream"))
    assert last.startswith(USER)
    if not streamed:
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


async def messages(request: web.Request) -> web.StreamResponse:
    return await reply(request, MESSAGES_PLAIN, MESSAGES_EVENTS)


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await reply(request, EMBEDDINGS_PLAIN, [])


async def gemini(request: web.Request) -> web.StreamResponse:
    return await reply(request, GEMINI_PLAIN, GEMINI_EVENTS)


def app() -> web.Application:
    """The bare handler's routes, one per protocol the bench measures."""
    served = web.Application()
    served.router.add_post("/v1/chat/completions", chat)
    served.router.add_post("/v1/responses", responses)
    served.router.add_post("/v1/messages", messages)
    served.router.add_post("/v1/embeddings", embeddings)
    served.router.add_post("/v1beta/models/{call}", gemini)
    return served


if __name__ == "__main__":
    web.run_app(app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
