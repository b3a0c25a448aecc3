"""The reply every server under test sends, so the figures compare like with like."""

import math

USER = "benchmark question"
REPLY = (
    "Benchmarks compare like with like: the same reply text, the same request, the same "
    "machine and the same load generator. This paragraph is that reply, long enough to be "
    "cut into fourteen chunks of twenty characters, which is what a short streamed answer "
    "looks like on the wire."
)
# The vector every server sends for an embeddings request: text-embedding-3-small's 1,536
# dimensions, written with 8 decimals as the real API's are.
EMBEDDING = [round(math.sin(i + 1) / 40, 8) for i in range(1536)]


def post(path: str, body: bytes) -> bytes:
    """An HTTP/1.1 request as wrk sends it (the bench's headers), for the raw-socket clients."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
