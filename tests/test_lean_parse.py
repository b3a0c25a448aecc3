"""The lean request path (parse, match, count) gives what the plain way of doing it gives.

Each shortcut is checked against the straightforward code it replaced, for many generated
requests: the JSON scanner against ``json.loads``, Gemini's field checks against the check of
every kind at once, the index's trimmed conditions against trying every scenario with all of
its conditions, the token count against the pieces it counts, and the 4xx of a malformed body
against the one the straightforward checks give.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver.core.errors import APIError
from mockserver.core.profiles import PROFILES, UNTOUCHED
from mockserver.core.request import Request, message_text, parse_json_body
from mockserver.core.tokens import count_prompt_tokens, count_tokens, split_tokens
from mockserver.protocols import NOWHERE, Target
from mockserver.protocols import gemini as gemini_module
from mockserver.protocols import responses as responses_module
from mockserver.protocols.chat import parse_chat
from mockserver.protocols.embeddings import parse_embeddings
from mockserver.protocols.gemini import parse_gemini
from mockserver.protocols.messages import parse_messages
from mockserver.protocols.responses import parse_responses
from mockserver.scenarios.loader import load_data
from mockserver.scenarios.matching import ScenarioSet, check_all
from mockserver.scenarios.render import Choice, Rendered, usage

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


def _refuse(name: str) -> None:
    raise ValueError(name)


def _plain_json(raw: bytes) -> Any:
    """The decoding the scanner replaced: ``JSONDecoder.decode``, NaN and Infinity refused."""
    try:
        return json.JSONDecoder(parse_constant=_refuse).decode(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return APIError


def _lean_json(raw: bytes) -> Any:
    try:
        return parse_json_body(raw)
    except APIError:
        return APIError


space = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\ufeff", max_size=3)


@settings(max_examples=300)
@given(space, json_values, space, st.sampled_from(["", "x", "}", "1", "NaN", ",", "\x00"]))
def test_the_scanner_reads_what_json_decoder_reads(
    before: str, value: Any, after: str, tail: str
) -> None:
    for text in (before + json.dumps(value) + after, json.dumps(value) + after + tail):
        raw = text.encode()
        assert _lean_json(raw) == _plain_json(raw)


@settings(max_examples=200)
@given(st.binary(max_size=40) | st.sampled_from([b"", b" ", b"NaN", b"[Infinity]", b"-Infinity"]))
def test_the_scanner_refuses_what_json_decoder_refuses(raw: bytes) -> None:
    assert _lean_json(raw) == _plain_json(raw)


def _typed_every_kind(obj: Any, name: str, kind: str, where: str) -> Any:
    """Gemini's field check as it was: every kind's check computed, the one asked kept."""
    value = gemini_module.get(obj, name)
    if value is None:
        return None
    ok = {
        "string": isinstance(value, str),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "integer": (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, float) and value.is_integer()),
        "boolean": isinstance(value, bool),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
    }[kind]
    if not ok:
        raise gemini_module._wrong_type(f"{where}{gemini_module.snake(name)}", kind, value)
    return int(value) if kind == "integer" else value


def _outcome(parse: Any, raw: bytes, *args: Any) -> Any:
    """What matching, usage and rendering read of a parsed request, or the 4xx's words."""
    try:
        request: Request = parse(raw, {}, *args)
    except APIError as err:
        return ("error", err.status, err.message, err.param, err.code)
    return (
        request.api,
        request.model,
        request.messages,
        request.stream,
        request.include_usage,
        request.n,
        request.tools,
        request.tool_choice,
        request.response_format,
        dict(request.params),
        dict(request.wire),
        request.last_user,
        request.system,
        request.prompt_tokens,
    )


gemini_parts = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "text": st.text(max_size=12) | json_values,
            "thought": st.booleans() | json_values,
            "functionCall": st.fixed_dictionaries({"name": st.sampled_from(["f", ""])})
            | json_values,
            "function_response": st.fixed_dictionaries(
                {"name": st.just("f"), "response": st.just({"result": "r"})}
            )
            | json_values,
        },
    ),
    max_size=3,
)
gemini_config = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2) | json_values,
        "candidateCount": st.integers(-1, 3) | json_values,
        "max_output_tokens": st.integers(0, 9) | json_values,
        "stopSequences": st.lists(st.text(max_size=3), max_size=2) | json_values,
        "responseMimeType": st.sampled_from(["application/json", "text/plain"]) | json_values,
        "thinkingConfig": st.fixed_dictionaries(
            {}, optional={"includeThoughts": st.booleans(), "thinkingBudget": json_values}
        )
        | json_values,
    },
)
gemini_bodies = st.fixed_dictionaries(
    {},
    optional={
        "contents": st.lists(
            st.fixed_dictionaries(
                {"parts": gemini_parts | json_values},
                optional={"role": st.sampled_from(["user", "model", "x"])},
            ),
            max_size=3,
        )
        | json_values,
        "systemInstruction": st.fixed_dictionaries({"parts": gemini_parts}) | json_values,
        "generationConfig": gemini_config | st.just({}) | json_values,
        "generation_config": gemini_config,
        "toolConfig": json_values,
    },
)
GEMINI = Target("/v1beta/models/gemini-2.5-flash:generateContent")
valid_parts = st.lists(
    st.builds(lambda t: {"text": t}, st.text(max_size=8))
    | st.builds(lambda t, b: {"text": t, "thought": b}, st.text(max_size=8), st.booleans())
    | st.just({"functionCall": {"name": "f", "args": {"a": 1}}})
    | st.just({"functionResponse": {"name": "f", "response": {"result": "r"}}}),
    min_size=1,
    max_size=3,
)
valid_gemini_bodies = st.builds(
    lambda turns, config: {"contents": turns, **config},
    st.lists(
        st.fixed_dictionaries({"parts": valid_parts}, optional={"role": st.just("model")}),
        min_size=1,
        max_size=3,
    ),
    st.just({}) | st.builds(lambda c: {"generationConfig": c}, gemini_config),
)


@settings(max_examples=300, deadline=None)
@given(gemini_bodies | valid_gemini_bodies)
def test_gemini_reads_what_checking_every_kind_of_every_field_reads(body: Any) -> None:
    """The plain side checks every kind, and every field of the body and of each part: an
    unread key in each keeps it off the shortcuts for a plain body and a text-only part."""
    lean = _outcome(parse_gemini, json.dumps(body).encode(), GEMINI)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gemini_module, "_typed", _typed_every_kind)
        plain = _outcome(parse_gemini, json.dumps(_unread_in_parts(body)).encode(), GEMINI)
    assert lean == plain


def _unread_in_parts(body: Any) -> Any:
    contents = body.get("contents")
    if not isinstance(contents, list):
        return {**body, "unread": 1}
    padded = [
        {**c, "parts": [{**p, "unread": 1} if isinstance(p, dict) else p for p in c["parts"]]}
        if isinstance(c, dict) and isinstance(c.get("parts"), list)
        else c
        for c in contents
    ]
    return {**body, "contents": padded, "unread": 1}


@settings(max_examples=300, deadline=None)
@given(json_values | st.integers(), st.sampled_from(["string", "number", "integer", "boolean",
                                                     "object", "array"]))  # fmt: skip
def test_a_gemini_field_is_checked_as_every_kind_was(value: Any, kind: str) -> None:
    for obj in ({"topK": value}, {"top_k": value}, {}, {"other": 1}):
        try:
            lean: Any = gemini_module._typed(obj, "topK", kind, "generation_config.")
        except APIError as err:
            lean = err.message
        try:
            plain: Any = _typed_every_kind(obj, "topK", kind, "generation_config.")
        except APIError as err:
            plain = err.message
        assert lean == plain
        assert type(lean) is type(plain)


def _split_count(text: str) -> int:
    return len(split_tokens(text))


def _plain_prompt_tokens(messages: list[dict[str, Any]], tools_json: str | None) -> int:
    """``count_prompt_tokens`` with every text cut into its pieces and the pieces counted."""
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            if isinstance(value, str):
                total += _split_count(value) + (key == "name")
            elif isinstance(value, list):
                for part in value:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        total += _split_count(part["text"])
    return total + (_split_count(tools_json) if tools_json else 0)


words = st.lists(
    st.sampled_from([*"ab Z9_-'.\n\t你好ü", "abcdefghijklmnopq", "12345678", "!!!!!!!!!!!!!!"]),
    max_size=12,
).map("".join)
turns = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "tool"])},
        optional={
            "content": words | st.lists(st.fixed_dictionaries({"type": st.just("text"),
                                                               "text": words}), max_size=2),
            "name": words,
        },
    ),
    min_size=1,
    max_size=4,
)  # fmt: skip


@settings(max_examples=300)
@given(turns, st.none() | words)
def test_prompt_tokens_are_the_pieces_counted(messages: list[dict[str, Any]], tools: str) -> None:
    count_tokens.cache_clear()  # counted now, not remembered from an earlier example
    assert count_prompt_tokens(messages, tools) == _plain_prompt_tokens(messages, tools)


def _chat_body(text: str, model: str, stream: bool, turns_before: int) -> dict[str, Any]:
    history = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "a"}]
    last = {"role": "user", "content": text}
    return {"model": model, "messages": [*history[: turns_before * 2], last], "stream": stream}


def _requests(text: str, model: str, stream: bool, turns_before: int) -> list[Request]:
    """The same question in each protocol's shape."""
    chat = _chat_body(text, model, stream, turns_before)
    messages = {**chat, "max_tokens": 16}
    responses = {"model": model, "input": chat["messages"], "stream": stream}
    gemini = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    return [
        parse_chat(json.dumps(chat).encode(), {}),
        parse_messages(json.dumps(messages).encode(), {}, lambda _: None),
        parse_responses(json.dumps(responses).encode(), {}, lambda _: None),
        parse_gemini(json.dumps(gemini).encode(), {}, GEMINI),
        parse_embeddings(json.dumps({"model": model, "input": text}).encode(), {}, lambda _: None),
    ]


small_text = st.lists(st.sampled_from(["a", "b", "c", " ", "abc", "a b", "ab c"]), max_size=5).map(
    "".join
)  # the fragments the conditions below look for, often enough to meet them
conditions = st.fixed_dictionaries(
    {},
    optional={
        "last_user": small_text.filter(bool)
        | st.builds(lambda v: {"contains": v}, small_text)
        | st.builds(
            lambda v: {"regex": v},
            st.sampled_from(["a(?P<x>b+)c", "abc", "^a", "(bc)$", "abc$", "^ab c", "a b(?P<y>c+)"]),
        ),
        "model": st.sampled_from(["gpt-4", "gpt-*", "o1"]),
        "stream": st.booleans(),
        "api": st.sampled_from(["chat", "messages", "responses", "gemini", "embeddings"]),
        "any_message": st.builds(lambda v: {"contains": v}, small_text),
    },
)
scenario_specs = st.lists(
    st.tuples(conditions, st.integers(-1, 1), st.integers(1, 3),
              st.sampled_from(["repeat", "stop", "cycle"]), st.booleans()),
    min_size=1,
    max_size=8,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    scenario_specs,
    small_text,
    st.sampled_from(["gpt-4", "o1"]),
    st.booleans(),
    st.integers(0, 1),
    st.integers(1, 4),
)
def test_the_index_picks_the_step_trying_every_condition_of_every_scenario_picks(
    specs: list[tuple[dict[str, Any], int, int, str, bool]],
    text: str,
    model: str,
    stream: bool,
    turns_before: int,
    repeats: int,
) -> None:
    """``resolve`` (index, trimmed conditions, stateless known at load) against ``explain``
    (every scenario, every condition, the sequence peeked), request after request."""
    data = [
        {
            "name": str(i),
            "match": match,
            "priority": priority,
            "after_last": after_last,
            "steps": [
                {"reply": {"embedding": [0.5, 0.5]} if vectors else {"content": f"{i}.{k}"}}
                for k in range(steps)
            ],
        }
        for i, (match, priority, steps, after_last, vectors) in enumerate(specs)
    ]
    scenarios = ScenarioSet(load_data(data))
    for request in _requests(text.strip() or "q", model, stream, turns_before) * repeats:
        answering = [v for v in scenarios.explain(request) if v.answers]
        expected = (answering[0].scenario.name, answering[0].step) if answering else None
        try:
            found = scenarios.resolve(request)
            got: Any = (found.scenario.name, found.step_index)
            assert found.captures == check_all(found.scenario.conditions, request)
        except APIError:
            got = None
        assert got == expected


@settings(max_examples=100, deadline=None)
@given(small_text, st.integers(0, 1), st.none() | st.integers(0, 50))
def test_usage_counts_what_the_pieces_count(text: str, turns_before: int, fixed: Any) -> None:
    choice = Choice("an answer", None, None, (), "stop", 5, 0, (), (), (), ())
    for request in _requests(text.strip() or "q", "gpt-4", False, turns_before)[:4]:
        used = usage(
            request, Rendered((choice,)), {"prompt_tokens": fixed} if fixed is not None else None
        )
        count_tokens.cache_clear()
        tools = json.dumps(request.tools) if request.tools else None
        assert used.prompt == (fixed if fixed is not None else
                               _plain_prompt_tokens(request.messages, tools))  # fmt: skip
        assert (used.completion, used.total) == (5, used.prompt + 5)


malformed_chat = st.fixed_dictionaries(
    {},
    optional={
        "model": json_values | st.just("gpt-4"),
        "messages": json_values | st.just([{"role": "user", "content": "hi"}]),
        "stream": json_values,
        "n": st.integers(-2, 200) | json_values,
        "max_tokens": json_values,
        "stop": json_values,
        "tools": json_values,
        "tool_choice": json_values,
        "response_format": json_values,
        "stream_options": json_values,
        "temperature": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(malformed_chat, space)
def test_a_malformed_body_gets_the_same_4xx_through_the_scanner(body: Any, pad: str) -> None:
    """The scanner changes how bytes become a body, never which 4xx a body gets."""
    raw = (pad + json.dumps(body) + pad).encode()
    plain = _plain_json(raw)
    for parse, args in ((parse_chat, ()), (parse_messages, (lambda _: None,)),
                        (parse_responses, (lambda _: None,)), (parse_gemini, (NOWHERE,))):  # fmt: skip
        lean = _outcome(parse, raw, *args)
        if plain is APIError:
            assert lean[:2] == ("error", 400)
        else:
            assert lean == _outcome(parse, json.dumps(plain).encode(), *args)


chat_turns = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "tool", "x"]) | json_values},
        optional={
            "content": small_text
            | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": small_text}))
            | json_values,
            "name": small_text,
        },
    ),
    max_size=3,
)
PLAIN_BODIES = {
    "chat": (parse_chat, (), {"model": "gpt-4"}, "messages", "user"),
    "messages": (parse_messages, (lambda _: None,), {"model": "c", "max_tokens": 9},
                 "messages", "metadata"),
    "responses": (parse_responses, (lambda _: None,), {"model": "gpt-4"}, "input", "user"),
}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(PLAIN_BODIES)), chat_turns | json_values, st.none() | json_values)
def test_a_plain_body_parses_as_the_full_checks_parse_it(api: str, turns: Any, stream: Any) -> None:
    """A body of only the commonest parameters skips the checks of the others: it parses as
    the same body with one more parameter (one nobody reads) does through every check."""
    parse, args, base, key, unread = PLAIN_BODIES[api]
    body = {**base, key: turns} if stream is None else {**base, key: turns, "stream": stream}
    unread_value = {} if unread == "metadata" else "someone"
    plain = _outcome(parse, json.dumps(body).encode(), *args)
    full = _outcome(parse, json.dumps({**body, unread: unread_value}).encode(), *args)
    assert plain == full


response_items = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "role": st.sampled_from(["user", "assistant", "system", "developer", "x"])
            | json_values,
            "content": small_text
            | st.lists(st.fixed_dictionaries({"type": st.just("input_text"), "text": small_text}))
            | json_values,
            "type": st.sampled_from(["message", "function_call", "reasoning"]) | json_values,
            "call_id": small_text,
            "name": small_text,
            "arguments": small_text,
        },
    )
    | json_values,
    max_size=4,
)


def _item_by_item(items: list[Any]) -> list[dict[str, Any]]:
    """``input`` through the general item code alone, one item after another."""
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        responses_module._item(item, i, out)
    return out


@settings(max_examples=500, deadline=None)
@given(response_items)
def test_a_text_message_item_reads_as_the_general_item_code_reads_it(items: list[Any]) -> None:
    """The commonest input item (``{"role", "content"}`` with text) skips the general item
    code: the same conversation, or the same 400, for every list of items."""
    flipped = [dict(reversed(i.items())) if isinstance(i, dict) else i for i in items]
    for given_items in (items, flipped):  # keys in either order
        fast = _read_or_refused(responses_module._conversation, given_items)
        general = _read_or_refused(_item_by_item, given_items)
        assert fast == general
        assert json.dumps(fast) == json.dumps(general)  # key order too


def _read_or_refused(read: Any, items: Any) -> Any:
    try:
        return read(items)
    except APIError as err:
        return ("error", err.status, err.message, err.param, err.code)


plain_turns = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": small_text}),
    min_size=1,
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(plain_turns, st.sampled_from([None, False, True]), st.sampled_from(["", "?alt=sse"]))
def test_a_plain_request_built_by_position_is_the_one_keywords_build(
    turns: list[dict[str, Any]], stream: bool | None, query: str
) -> None:
    """A body of only the common fields builds its ``Request`` by position (no keyword dict):
    every field equals the request the keywords build, defaults included."""
    headers = {"x-h": "1"}
    streams = {} if stream is None else {"stream": stream}
    chat = {"model": "gpt-4", "messages": turns, **streams}
    assert parse_chat(json.dumps(chat).encode(), headers) == Request(
        api="chat", body=chat, model="gpt-4", messages=turns, stream=bool(stream), headers=headers
    )
    responses = {"model": "gpt-4", "input": turns, **streams}
    assert parse_responses(json.dumps(responses).encode(), headers, lambda _: None) == Request(
        api="responses", body=responses, model="gpt-4", messages=turns, stream=bool(stream),
        headers=headers,
    )  # fmt: skip
    messages = {"model": "c", "max_tokens": 9, "messages": turns, **streams}
    assert parse_messages(json.dumps(messages).encode(), headers, lambda _: None) == Request(
        api="messages", body=messages, model="c", messages=turns, stream=bool(stream),
        headers=headers, params={"max_tokens": 9},
    )  # fmt: skip
    gemini = {"contents": [{"role": "user", "parts": [{"text": t["content"]}]} for t in turns]}
    method = "streamGenerateContent" if stream else "generateContent"
    target = Target(f"/v1beta/models/gemini-2.5-flash:{method}", {"alt": "sse"} if query else {})
    parsed = parse_gemini(json.dumps(gemini).encode(), headers, target)
    assert parsed == Request(
        api="gemini", body=gemini, model="gemini-2.5-flash", messages=parsed.messages,
        stream=bool(stream), headers=headers,
        wire={"method": method, "sse": bool(query), "thoughts": False},
    )  # fmt: skip


profiled = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(-1, 3),
        "top_p": st.floats(-1, 2),
        "max_tokens": st.integers(0, 3),
        "stop": st.just("x"),
    },
)


@settings(max_examples=200, deadline=None)
@given(profiled, small_text, st.sampled_from(["gpt-4", "o1"]))
def test_the_profile_is_skipped_only_where_it_changes_nothing(
    params: dict[str, Any], text: str, model: str
) -> None:
    """The pipeline asks the profile only about a request that sets a parameter it reads: for
    the others, every profile answers the untouched settings anyway."""
    body = {**_chat_body(text.strip() or "q", model, False, 0), **params}
    request = parse_chat(json.dumps(body).encode(), {})
    for profile in PROFILES.values():
        try:
            full: Any = profile.apply(request)
        except APIError as err:
            full = err.message
        if not request.params:
            assert full == UNTOUCHED


_ECHO_KEYS = sorted(responses_module._ECHOED)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*_ECHO_KEYS, "model", "input", "stream", "include"]),
        json_values | st.just([responses_module.LOGPROBS]),
        max_size=4,
    )
)
def test_a_responses_shape_and_echo_read_as_every_key_checked(body: dict[str, Any]) -> None:
    """The Responses shape and echo ask whether a body sets an echoed parameter without
    building the set of its keys, and read ``include`` only where a body has it: the same
    answers (or the same error, for a body parse would have refused) as the set of every key
    and ``body.get`` give."""
    protocol = responses_module.Responses()
    request = Request("responses", body, "m", [])

    def every_key() -> tuple[Any, Any]:
        sets = bool(body.keys() & set(_ECHO_KEYS))
        echo = responses_module._echo(body) if sets else ()
        if responses_module.LOGPROBS in (body.get("include") or ()):
            return echo, None
        return echo, () if sets else responses_module._PLAIN_SHAPE

    assert _answer(lambda: (protocol.echoed(request), protocol.shape(request))) == _answer(
        every_key
    )


def _answer(read: Any) -> Any:
    try:
        return read()
    except Exception as err:  # the same kind of error either way
        return type(err)


@settings(max_examples=300, deadline=None)
@given(chat_turns)
def test_last_user_reads_what_message_text_reads(turns: Any) -> None:
    """``last_user`` reads a text content without calling ``message_text``: the same text as
    the call gives, for every kind of content."""
    request = Request("chat", {}, "m", turns)
    general = next((message_text(m) for m in reversed(turns) if m["role"] == "user"), "")
    assert request.last_user == general
