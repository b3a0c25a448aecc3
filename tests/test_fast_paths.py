"""Every cache and fast path on the request path gives the bytes the plain path gives."""

from __future__ import annotations

import ctypes
import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockserver import MockServer, Options
from mockserver.core.tokens import split_tokens
from mockserver.protocols import Stored, dumps, dumps_text
from mockserver.serving import steady_malloc
from mockserver.state.live import ResponseStore
from mockserver.state.memo import Memos

from .conftest import Clock

AUTH = {"Authorization": "Bearer k"}
SERVER_TESTS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_the_shared_encoder_writes_what_json_dumps_writes(value: Any) -> None:
    assert dumps(value) == json.dumps(value, ensure_ascii=False)


@given(st.text())
def test_the_string_encoder_writes_what_json_dumps_writes(text: str) -> None:
    assert dumps_text(text) == json.dumps(text, ensure_ascii=False)


@given(st.text())
def test_the_plain_text_shortcut_cuts_tokens_as_the_piece_by_piece_check(text: str) -> None:
    from mockserver.core.tokens import _PIECE, _split_piece

    assert split_tokens(text) == [p for piece in _PIECE.findall(text) for p in _split_piece(piece)]


ascii_texts = st.text(st.characters(max_codepoint=127)) | st.text(
    st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x1f'_-.,!?09aZsdlv")), max_size=40
)


@given(ascii_texts)
def test_ascii_text_is_cut_by_its_own_pattern_as_by_the_unicode_one(text: str) -> None:
    from mockserver.core.tokens import _ASCII_PIECE, _PIECE, _split_piece

    assert _ASCII_PIECE.findall(text) == _PIECE.findall(text)
    assert split_tokens(text) == [p for piece in _PIECE.findall(text) for p in _split_piece(piece)]


words = st.lists(
    st.sampled_from(["Hello", "world", "x" * 13, "y" * 30, "12345", "7", "a1", "?", "!!", "..",
                     "", "done.", "1,", "Why?!", "it's", "snake_case", "\n", "CAPS"]),
    max_size=8,
).map(" ".join)  # fmt: skip


@settings(max_examples=500)
@given(words | ascii_texts)
def test_words_are_counted_as_the_pattern_cuts_them(text: str) -> None:
    """A message of plain words is counted without the pattern: the same count."""
    from mockserver.core.tokens import _ASCII_PIECE, _piece_count, count_tokens

    assert count_tokens.__wrapped__(text) == sum(map(_piece_count, _ASCII_PIECE.findall(text)))
    assert count_tokens.__wrapped__(text) == len(split_tokens(text))


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockServer(options=Options(clock=Clock())) as server:
        yield server


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
chunks = st.sampled_from(["token", "word", "char", 1, 7, 20])


def _events(raw: str) -> list[tuple[str, str]]:
    blocks = raw.split("\n\n")
    assert blocks[-1] == ""
    out = []
    for block in blocks[:-1]:
        name, data = block.split("\n")
        out.append((name.removeprefix("event: "), data.removeprefix("data: ")))
    return out


# The order of the fields of each delta event, as ``event(kind, **where, delta=...)`` puts them.
DELTA_FIELDS = {
    "response.output_text.delta": ["item_id", "output_index", "content_index", "delta", "logprobs"],
    "response.refusal.delta": ["item_id", "output_index", "content_index", "delta"],
    "response.reasoning_summary_text.delta": ["item_id", "output_index", "summary_index", "delta"],
    "response.function_call_arguments.delta": ["item_id", "output_index", "delta"],
}


@SERVER_TESTS
@given(
    content=texts,
    reasoning=st.none() | texts.filter(bool),
    refusal=st.none() | texts.filter(bool),
    arguments=st.lists(texts, max_size=2),
    chunk=chunks,
)
def test_responses_stream_events_are_json_dumps_of_their_payloads(
    server: MockServer,
    content: str,
    reasoning: str | None,
    refusal: str | None,
    arguments: list[str],
    chunk: str | int,
) -> None:
    """Delta events are spliced from JSON encoded once per stream; each must still be exactly
    ``json.dumps`` of its payload, its fields in the order the generic event writer uses."""
    reply: dict[str, Any] = {"content": content}
    if reasoning is not None:
        reply["reasoning"] = reasoning
    if refusal is not None:
        reply["refusal"] = refusal
    if arguments:
        reply["tool_calls"] = [{"name": "f", "arguments": {"text": a}} for a in arguments]
    server.replace({"reply": reply, "cadence": {"chunk": chunk}})
    body = {"model": "m", "input": "hi", "stream": True, "store": False}
    r = httpx.post(f"{server.base_url}/responses", json=body, headers=AUTH)
    assert r.status_code == 200
    said: dict[str, str] = {}
    for i, (kind, data) in enumerate(_events(r.content.decode())):
        payload = json.loads(data)
        assert data == json.dumps(payload, ensure_ascii=False)
        assert (payload["type"], payload["sequence_number"]) == (kind, i)
        if kind in DELTA_FIELDS:
            assert list(payload)[2:] == DELTA_FIELDS[kind]
            said[kind] = said.get(kind, "") + payload["delta"]
    if refusal is not None:
        assert said.get("response.refusal.delta", "") == refusal
    elif content:
        assert said["response.output_text.delta"] == content


# The field each Messages delta carries its piece in.
MESSAGES_DELTAS = {"text_delta": "text", "thinking_delta": "thinking",
                   "input_json_delta": "partial_json", "signature_delta": "signature"}  # fmt: skip


@settings(SERVER_TESTS, max_examples=25)
@given(
    content=texts,
    reasoning=st.none() | texts.filter(bool),
    arguments=st.lists(texts, max_size=2),
    chunk=chunks,
)
def test_messages_stream_events_are_json_dumps_of_their_payloads(
    server: MockServer, content: str, reasoning: str | None, arguments: list[str], chunk: str | int
) -> None:
    """Messages deltas are spliced around the piece's encoded text; each event must still be
    exactly ``json.dumps`` of its payload (type, index, delta), and the pieces add up."""
    reply: dict[str, Any] = {"content": content}
    if reasoning is not None:
        reply["reasoning"] = reasoning
    if arguments:
        reply["tool_calls"] = [{"name": "f", "arguments": {"text": a}} for a in arguments]
    server.replace({"reply": reply, "cadence": {"chunk": chunk}})
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    r = httpx.post(f"{server.base_url}/messages", json=body, headers=AUTH)
    assert r.status_code == 200
    said: dict[int, str] = {}
    kinds: dict[int, str] = {}
    for kind, data in _events(r.content.decode()):
        payload = json.loads(data)
        assert data == json.dumps(payload, ensure_ascii=False)
        assert payload["type"] == kind
        if kind == "content_block_start":
            kinds[payload["index"]] = payload["content_block"]["type"]
        if kind == "content_block_delta":
            assert list(payload) == ["type", "index", "delta"]
            field = MESSAGES_DELTAS[payload["delta"]["type"]]
            assert list(payload["delta"]) == ["type", field]
            said[payload["index"]] = said.get(payload["index"], "") + payload["delta"][field]
    by_kind = {kinds[i]: said.get(i, "") for i in kinds}
    if reasoning is not None:
        assert by_kind["thinking"].startswith(reasoning)  # then its signature
    if content:
        assert by_kind["text"] == content


@settings(SERVER_TESTS, max_examples=30)
@given(
    vectors=st.lists(
        st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-9, 9),
                 min_size=1, max_size=6),
        min_size=1, max_size=3,
    ),
    inputs=st.integers(1, 4),
    model=texts.filter(bool),
)  # fmt: skip
def test_pinned_embeddings_are_the_encoded_body(
    server: MockServer, vectors: list[list[float]], inputs: int, model: str
) -> None:
    """Pinned vectors are encoded once per scenario and spliced into each body: the bytes must
    be ``json.dumps`` (UTF-8, as every protocol writes) of the body the generic path builds (one vector per input, in turn)."""
    server.replace({"match": {"api": "embeddings"}, "reply": {"embeddings": vectors}})
    texts_in = [f"text {i}" for i in range(inputs)]
    r = httpx.post(f"{server.base_url}/embeddings", json={"model": model, "input": texts_in},
                   headers=AUTH)  # fmt: skip
    assert r.status_code == 200, r.text
    pinned = [[float(x) for x in v] for v in vectors]  # the loader keeps numbers as floats
    data = [{"object": "embedding", "index": i, "embedding": pinned[i % len(pinned)]}
            for i in range(inputs)]  # fmt: skip
    usage = r.json()["usage"]
    expected = {"object": "list", "data": data, "model": r.json()["model"], "usage": usage}
    assert r.content == json.dumps(expected, ensure_ascii=False).encode()  # as every body


request_params = st.fixed_dictionaries(
    {},
    optional={
        "instructions": texts,
        "temperature": st.floats(0, 2),
        "max_output_tokens": st.integers(16, 4096),
        "metadata": st.dictionaries(texts.filter(bool), texts, max_size=2),
        "parallel_tool_calls": st.booleans(),
        "text": st.just({"format": {"type": "json_object"}}),
    },
)


@SERVER_TESTS
@given(
    content=texts,
    reasoning=st.none() | texts.filter(bool),
    arguments=st.lists(texts, max_size=2),
    cut=st.booleans(),
    params=request_params,
)
def test_a_streamed_response_ends_with_the_response_it_stores(
    server: MockServer,
    content: str,
    reasoning: str | None,
    arguments: list[str],
    cut: bool,
    params: dict[str, Any],
) -> None:
    """The finished response is encoded once and spliced into the last event, the stored copy
    and the plain body; the opening snapshot once, into both opening events. Each must be the
    text the response object encodes to."""
    reply: dict[str, Any] = {"content": content}
    if reasoning is not None:
        reply["reasoning"] = reasoning
    if arguments:
        reply["tool_calls"] = [{"name": "f", "arguments": {"text": a}} for a in arguments]
    if cut:
        reply["finish_reason"] = "length"
    server.replace({"reply": reply})
    body = {"model": "m", "input": "hi", "stream": True, **params}
    r = httpx.post(f"{server.base_url}/responses", json=body, headers=AUTH)
    assert r.status_code == 200
    events = [json.loads(data) for _, data in _events(r.content.decode())]
    last = events[-1]
    assert last["type"] in ("response.completed", "response.incomplete")
    final = last["response"]
    stored = httpx.get(f"{server.base_url}/responses/{final['id']}", headers=AUTH)
    assert stored.content.decode() == json.dumps(final, ensure_ascii=False)
    opening = [e["response"] for e in events[:2]]
    assert opening[0] == opening[1]
    snapshot = {**final, "status": "in_progress", "incomplete_details": None, "output": [],
                "usage": None}  # fmt: skip
    assert json.dumps(opening[0]) == json.dumps(snapshot)  # the same fields, in the same order


@SERVER_TESTS
@given(
    content=texts, chunk=chunks, stream=st.booleans(), api=st.sampled_from(["chat", "responses"])
)
def test_a_memoized_reply_is_the_rendered_reply(
    server: MockServer, content: str, chunk: str | int, stream: bool, api: str
) -> None:
    """A body is rendered the first and second time, replayed from the memo after that: all
    alike, and alike on a server that never saw it."""
    scenario = {"reply": {"content": content}, "cadence": {"chunk": chunk}}
    server.replace(scenario)
    turn = [{"role": "user", "content": content or "x"}]
    if api == "chat":
        body: dict[str, Any] = {"model": "m", "messages": turn, "stream": stream}
    else:
        body = {"model": "m", "input": turn, "stream": stream, "store": False}
    path = "/chat/completions" if api == "chat" else "/responses"

    def post(to: MockServer) -> bytes:
        r = httpx.post(f"{to.base_url}{path}", json=body, headers=AUTH)
        assert r.status_code == 200
        return r.content

    state = server.state
    first, second = post(server), post(server)
    assert len(state.memos) == 1
    third = post(server)
    assert first == second == third
    with MockServer([scenario], options=Options(clock=Clock())) as fresh:
        assert post(fresh) == first


def test_a_body_is_memoized_the_second_time_it_comes(clock: Clock) -> None:
    with MockServer([{"reply": {"content": "hi"}}], options=Options(clock=clock)) as server:
        for i in range(5):
            body = {"model": "m", "messages": [{"role": "user", "content": f"new {i}"}]}
            httpx.post(f"{server.base_url}/chat/completions", json=body, headers=AUTH)
        assert len(server.state.memos) == 0  # every body new: nothing remembered
        httpx.post(f"{server.base_url}/chat/completions", json=body, headers=AUTH)
        assert len(server.state.memos) == 1
        assert [e.status for e in server.journal] == [200] * 6


def test_the_seen_set_is_bounded() -> None:
    memos = Memos(seen=3)
    assert [memos.again(("chat", b"%d" % i)) for i in range(3)] == [False] * 3
    assert memos.again(("chat", b"0"))
    assert not memos.again(("chat", b"3"))  # full: forgotten at once, then this one kept
    assert not memos.again(("chat", b"0"))
    memos.clear()
    assert not memos.again(("chat", b"3"))


def test_stored_responses_drop_the_oldest_first() -> None:
    store = ResponseStore(count=3, size=1_000)
    for i in range(5):
        store.put(Stored(f"resp_{i}", (), b"x" * 10))
    assert [store.get(f"resp_{i}") is not None for i in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    store.put(Stored("resp_2", (), b"y" * 10))  # put again: now the newest
    store.put(Stored("resp_5", (), b"x" * 10))
    assert store.get("resp_3") is None
    assert store.get("resp_2") is not None
    by_bytes = ResponseStore(count=100, size=25)
    for i in range(4):
        by_bytes.put(Stored(f"r{i}", (), b"x" * 10))
    assert len(by_bytes) == 3


scalars = st.none() | st.booleans() | st.integers(-5, 5000) | st.floats(0, 2) | texts
response_bodies = st.fixed_dictionaries(
    {"model": texts.filter(bool), "input": texts.filter(bool)},
    optional={
        "instructions": texts,
        "temperature": st.floats(0, 2) | st.integers(0, 2),
        "top_p": st.floats(0, 1),
        "max_output_tokens": st.integers(0, 4096),
        "max_tool_calls": st.integers(0, 9),
        "metadata": st.dictionaries(texts, texts, max_size=2),
        "parallel_tool_calls": st.booleans(),
        "store": st.booleans(),
        "background": st.booleans(),
        "user": texts,
        "truncation": st.sampled_from(["auto", "disabled"]),
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "reasoning": st.fixed_dictionaries({}, optional={"effort": scalars, "summary": scalars}),
        "text": st.fixed_dictionaries(
            {}, optional={"format": st.sampled_from([{"type": "text"}, {"type": "json_object"}])}
        ),
        "tools": st.lists(
            st.builds(
                lambda n: {"type": "function", "name": n, "parameters": {}},
                st.from_regex(r"[a-z]{1,8}", fullmatch=True),
            ),
            max_size=2,
        ),
    },
)


@settings(max_examples=200, deadline=None)
@given(
    body=response_bodies,
    content=st.none() | texts,
    reasoning=st.none() | texts,
    calls=st.lists(texts, max_size=2),
    finish=st.sampled_from([None, "length"]),
    usage_style=st.sampled_from(["responses", "chat"]),
    done=st.booleans(),
)
def test_the_written_out_response_is_the_encoded_response_object(
    body: dict[str, Any],
    content: str | None,
    reasoning: str | None,
    calls: list[str],
    finish: str | None,
    usage_style: str,
    done: bool,
) -> None:
    """``Responses.encoded`` writes the response object field by field; it must be exactly
    what encoding ``Responses.response`` gives, for any request and reply."""
    from mockserver.core.profiles import Settings
    from mockserver.protocols import Answer
    from mockserver.protocols.responses import Responses, _Items, parse_responses
    from mockserver.scenarios.render import Envelope, Rendered, build_choice, usage
    from mockserver.scenarios.scenario import Cadence, Message, ToolCall

    request = parse_responses(json.dumps(body).encode(), {}, lambda _: None)
    message = Message(content=content, reasoning=reasoning, finish_reason=finish,
                      tool_calls=tuple(ToolCall("f", a) for a in calls))  # fmt: skip
    choices = (build_choice(message, Settings(), Cadence(), None),)
    env = Envelope(id="resp_1", created=7, model=request.model, system_fingerprint="fp",
                   call_id_seed="abc")  # fmt: skip
    rendered = Rendered(choices)
    answer = Answer(request, rendered, usage(request, rendered, None), env)
    protocol = Responses(usage_style)
    items = _Items(answer) if done else None
    assert protocol.encoded(answer, items) == dumps(protocol.response(answer, items))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]  # fmt: skip


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator: Linux only")
def test_serve_keeps_socket_sized_reads_on_the_heap() -> None:
    """After ``steady_malloc`` (``serve`` calls it), a buffer of asyncio's read size (256 KiB)
    is neither mapped (mmap, mremap, munmap a read) nor does freeing it give the heap's top
    back (brk twice a read): it comes from and returns to the heap, whatever happened before."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    assert steady_malloc()
    before = libc.mallinfo2()
    buffers = [bytearray(256 * 1024 + 1) for _ in range(4)]
    during = libc.mallinfo2()
    assert during.hblks == before.hblks  # no mapped block for any of them
    del buffers
    after = libc.mallinfo2()
    assert after.arena == during.arena  # the heap kept its top (no trim)
