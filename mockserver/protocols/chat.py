"""Chat Completions: ``POST /v1/chat/completions``.

Its messages are already the neutral conversation's shape, so parsing only validates. Replies
of template-free scenarios are compiled once (``compiled``): this writer makes their molds.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

from ..core.errors import APIError, invalid_type, missing_param
from ..core.logprobs import MAX_TOP, by_piece, token_logprobs
from ..core.request import (
    Request,
    body_and_model,
    check_range,
    check_types,
    invalid_value,
    param_types,
    present,
)
from ..scenarios.render import Choice, Envelope, Usage, paced
from . import HEAVY, NOWHERE, Answer, Frame, Lookup, Protocol, Target, dumps
from .capture import (
    Captured,
    Event,
    Piece,
    dig,
    openai_usage,
    scenario_call,
    scenario_message,
    text_of,
)

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
MAX_N = 128
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
PARAMS = ("temperature", "top_p", "stop", "max_tokens", "max_completion_tokens")
DONE = b"data: [DONE]\n\n"

_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_INTEGERS = ("max_tokens", "max_completion_tokens", "seed", "top_logprobs", "n")
_BOOLEANS = ("logprobs", "parallel_tool_calls", "store")
_TYPES = param_types(_NUMBERS, _INTEGERS, _BOOLEANS)
_CONTENT = (str, list)
"""A message's content types, as a tuple: ``str | list`` in the check is built anew on each call."""
_PLAIN = frozenset({"model", "messages", "stream"})
"""A body that sets only these has been checked once they are: the rest are defaults."""


def _check_stop(body: dict[str, Any]) -> None:
    stop = body.get("stop")
    strings = isinstance(stop, list) and all(isinstance(s, str) for s in stop)
    if stop is not None and not isinstance(stop, str) and not strings:
        raise invalid_type("stop", "a string or an array of strings", stop)


def _check_tools(body: dict[str, Any]) -> list[Any]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid_type("tools", "an array", tools)
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise invalid_type(f"tools[{i}]", "an object", tool)
        if tool.get("type", "function") == "function":
            fn = tool.get("function")
            if not isinstance(fn, dict):
                raise missing_param(f"tools[{i}].function")
            if not isinstance(fn.get("name"), str):
                raise missing_param(f"tools[{i}].function.name")
            params = fn.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise invalid_type(f"tools[{i}].function.parameters", "an object", params)
    return tools


def _tool_choice(body: dict[str, Any]) -> str | None:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if isinstance(choice, dict):
        fn = choice.get("function")
        return str(fn.get("name")) if isinstance(fn, dict) else None
    if isinstance(choice, str):
        return choice
    raise invalid_type("tool_choice", "a string or an object", choice)


def _response_format(body: dict[str, Any]) -> str | None:
    fmt = body.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise invalid_type("response_format", "an object", fmt)
    if fmt.get("type") not in RESPONSE_FORMATS:
        raise invalid_value("response_format.type", fmt.get("type"), RESPONSE_FORMATS)
    return str(fmt["type"])


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if messages is None:
        raise missing_param("messages")
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array", messages)
    if not messages:
        raise APIError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_type(f"messages[{i}]", "an object", message)
        role = message.get("role")
        if role is None:
            raise missing_param(f"messages[{i}].role")
        if role not in ROLES:
            raise invalid_value(f"messages[{i}].role", role, ROLES)
        content = message.get("content")
        if content is not None and not isinstance(content, _CONTENT):
            raise invalid_type(f"messages[{i}].content", "a string or an array", content)
    return messages


def parse_chat(raw: bytes, headers: Mapping[str, str] | None = None) -> Request:
    """A validated chat completions request, or the 400 OpenAI sends, naming the parameter."""
    body, model = body_and_model(raw)
    messages = _check_messages(body.get("messages"))
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid_type("stream", "a boolean", stream)
    if body.keys() <= _PLAIN:  # the commonest request: no other parameter to check or read
        return Request("chat", body, model, messages, bool(stream), headers or {})
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise invalid_type("stream_options", "an object", options)
    check_types(body, _TYPES)
    _check_stop(body)
    check_range(body, "n", 1, MAX_N)
    check_range(body, "max_tokens", 0, None)
    check_range(body, "max_completion_tokens", 0, None)
    check_range(body, "top_logprobs", 0, MAX_TOP)  # without ``logprobs: true``, unused
    return Request(
        api="chat",
        body=body,
        model=model,
        messages=messages,
        stream=bool(stream),
        include_usage=bool(options and options.get("include_usage") is True),
        n=body.get("n") or 1,
        headers=headers or {},
        tools=_check_tools(body),
        tool_choice=_tool_choice(body),
        response_format=_response_format(body),
        params=present(body, PARAMS),
    )


def usage_json(u: Usage) -> str:
    """OpenAI's chat ``usage`` object, written out: it is on every reply's path."""
    text = max(0, u.completion - u.reasoning)
    return (
        f'{{"prompt_tokens": {u.prompt}, "completion_tokens": {u.completion}, '
        f'"total_tokens": {u.total}, "prompt_tokens_details": {{"cached_tokens": {u.cached}, '
        f'"text_tokens": {u.prompt}, "audio_tokens": 0, "image_tokens": 0}}, '
        f'"completion_tokens_details": {{"text_tokens": {text}, "audio_tokens": 0, '
        f'"reasoning_tokens": {u.reasoning}, "accepted_prediction_tokens": 0, '
        f'"rejected_prediction_tokens": 0}}}}'
    )


def usage_object(u: Usage) -> dict[str, Any]:
    """``usage_json`` as data (the Responses ``chat`` usage style reuses it)."""
    result: dict[str, Any] = json.loads(usage_json(u))
    return result


Logprobs = tuple[int, int] | None
"""What a request asked of logprobs: ``top_logprobs`` and the seed they derive from; None
when it did not ask (``logprobs`` absent or false)."""


def logprobs_asked(answer: Answer) -> Logprobs:
    body = answer.request.body
    if body.get("logprobs") is not True:
        return None
    return int(body.get("top_logprobs") or 0), answer.seed


def _logprobs(c: Choice, i: int, asked: tuple[int, int]) -> dict[str, Any]:
    """A choice's ``logprobs``: its content's tokens (or its refusal's), each with its own."""
    top, seed = asked
    salt = f"{seed}:{i}"
    if c.refusal is not None:
        return {"content": None, "refusal": token_logprobs(c.refusal, top, salt)}
    return {"content": token_logprobs(c.content or "", top, salt), "refusal": None}


def choices_json(env: Envelope, choices: tuple[Choice, ...], asked: Logprobs = None) -> str:
    """The ``choices`` array of a completion, as JSON text."""
    return "[" + ", ".join(choice_texts(env, choices, asked)) + "]"


def choice_texts(
    env: Envelope, choices: tuple[Choice, ...], asked: Logprobs = None
) -> Iterator[str]:
    """Each choice's JSON, one at a time: a reply of many long choices is written out as
    they are made (``Chat.pieces``), the loop free between them."""
    for i, c in enumerate(choices):
        message: dict[str, Any] = {"role": "assistant", "content": c.content, "refusal": c.refusal}
        if c.reasoning is not None:
            message["reasoning_content"] = c.reasoning
        if c.tool_calls:
            message["tool_calls"] = [
                {"id": env.call_id(call_id, i, k), "type": "function",
                 "function": {"name": name, "arguments": args}}
                for k, (call_id, name, args) in enumerate(c.tool_calls)
            ]  # fmt: skip
        logprobs = _logprobs(c, i, asked) if asked is not None else None
        yield dumps({"index": i, "message": message, "logprobs": logprobs,
                     "finish_reason": c.finish_reason})  # fmt: skip


def _delta(
    index: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None
) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}


def _opening(env: Envelope, i: int, c: Choice) -> dict[str, Any]:
    """A choice's first delta: the role, and for a reply that only calls tools, OpenAI's
    ``content: null`` with the first call's header in the same chunk."""
    texts = c.content_pieces or c.reasoning_pieces or c.refusal_pieces
    if c.tool_calls and not texts:
        call_id, name, _ = c.tool_calls[0]
        head = {"index": 0, "id": env.call_id(call_id, i, 0),
                "type": "function", "function": {"name": name, "arguments": ""}}  # fmt: skip
        return _delta(i, {"role": "assistant", "content": None, "tool_calls": [head]})
    return _delta(i, {"role": "assistant", "content": ""})


def deltas_json(
    env: Envelope, choices: tuple[Choice, ...], asked: Logprobs = None
) -> Iterator[tuple[str, bool, float | None]]:
    """Every chunk's ``choices`` JSON, as it is made (a long stream is written as it goes)."""
    opening = [_opening(env, i, c) for i, c in enumerate(choices)]
    yield dumps(opening), False, None

    def add(
        delta: dict[str, Any], paced: bool = True, delay: float | None = None
    ) -> tuple[str, bool, float | None]:
        return dumps([delta]), paced, delay

    for i, c in enumerate(choices):
        for p, d in paced(c.reasoning_pieces, c.reasoning_delays):
            yield add(_delta(i, {"reasoning_content": p}), delay=d)
        content: list[Any] = [None] * len(c.content_pieces)
        refusal: list[Any] = [None] * len(c.refusal_pieces)
        if asked is not None:
            whole = _logprobs(c, i, asked)
            if c.refusal is not None:
                refusal = [{"content": None, "refusal": x}
                           for x in by_piece(whole["refusal"], c.refusal_pieces)]  # fmt: skip
            else:
                content = [{"content": x, "refusal": None}
                           for x in by_piece(whole["content"], c.content_pieces)]  # fmt: skip
        for (p, d), lp in zip(paced(c.content_pieces, c.piece_delays), content, strict=True):
            yield add(_delta(i, {"content": p}, logprobs=lp), delay=d)
        for (p, d), lp in zip(paced(c.refusal_pieces, c.refusal_delays), refusal, strict=True):
            yield add(_delta(i, {"refusal": p}, logprobs=lp), delay=d)
        headed = "tool_calls" in opening[i]["delta"]
        for k, ((call_id, name, _), pieces) in enumerate(
            zip(c.tool_calls, c.argument_pieces, strict=True)
        ):
            if k or not headed:
                head = {"index": k, "id": env.call_id(call_id, i, k),
                        "type": "function",
                        "function": {"name": name, "arguments": ""}}  # fmt: skip
                yield add(_delta(i, {"tool_calls": [head]}), paced=False)
            own = c.argument_delays[k] if c.argument_delays else ()
            for p, d in paced(pieces, own):
                yield add(
                    _delta(i, {"tool_calls": [{"index": k, "function": {"arguments": p}}]}), delay=d
                )
    for i, c in enumerate(choices):
        yield add(_delta(i, {}, c.finish_reason), paced=False)


class Chat(Protocol):
    name = "chat"
    routes = ("/chat/completions",)
    id_prefix = "chatcmpl-"

    def parse(
        self, raw: bytes, headers: Mapping[str, str], lookup: Lookup, target: Target = NOWHERE
    ) -> Request:
        return parse_chat(raw, headers)

    def shape(self, request: Request) -> Hashable:
        """A stream's last chunk depends on ``include_usage``; logprobs are written per request."""
        return None if request.body.get("logprobs") is True else request.include_usage

    def _around(self, answer: Answer) -> tuple[str, str]:
        """A completion's JSON before its choices and after them."""
        env = answer.env
        return (
            f'{{"id": "{env.id}", "object": "chat.completion", "created": {env.created}, '
            f'"model": {dumps(env.model)}, "choices": ',
            f', "usage": {usage_json(answer.usage)}, '
            f'"system_fingerprint": {dumps(env.system_fingerprint)}}}',
        )

    def body(self, answer: Answer) -> bytes:
        choices = choices_json(answer.env, answer.rendered.choices, logprobs_asked(answer))
        head, tail = self._around(answer)
        return f"{head}{choices}{tail}".encode()

    def pieces(self, answer: Answer) -> Iterator[bytes] | None:
        """Many long choices (``n: 128`` of a long text): written a choice at a time."""
        if answer.rendered.pieces <= HEAVY:
            return None
        return self._pieces(answer)

    def _pieces(self, answer: Answer) -> Iterator[bytes]:
        head, tail = self._around(answer)
        yield f"{head}[".encode()
        texts = choice_texts(answer.env, answer.rendered.choices, logprobs_asked(answer))
        for i, text in enumerate(texts):
            yield (f", {text}" if i else text).encode()
        yield f"]{tail}".encode()

    def frames(self, answer: Answer) -> Iterator[Frame]:
        env = answer.env
        deltas = deltas_json(env, answer.rendered.choices, logprobs_asked(answer))
        head = dumps(
            {"id": env.id, "object": "chat.completion.chunk", "created": env.created,
             "model": env.model, "system_fingerprint": env.system_fingerprint}
        )[:-1]  # fmt: skip
        with_usage = answer.request.include_usage
        tail = ',"usage":null}\n\n' if with_usage else "}\n\n"
        for chunk, output, delay in deltas:
            yield Frame(f'data: {head},"choices":{chunk}{tail}'.encode(), output, delay)
        if with_usage:
            usage = usage_json(answer.usage)
            yield Frame(f'data: {head},"choices":[],"usage":{usage}}}\n\n'.encode())

    def end(self, answer: Answer, sent: int) -> bytes:
        return DONE

    def read_body(self, body: Any) -> Captured:
        return chat_body(body)

    def read_stream(self, events: list[Event]) -> Captured:
        return chat_stream(events)


# --- reading an upstream's reply back (recording) -------------------------------------------


def chat_body(body: Any) -> Captured:
    choices = []
    for choice in body.get("choices") or []:
        m = choice.get("message") or {}
        calls = [
            scenario_call(c.get("id"), dig(c, "function", "name"), dig(c, "function", "arguments"))
            for c in m.get("tool_calls") or []
        ]
        reasoning = text_of(m.get("reasoning_content")) or text_of(m.get("reasoning"))
        choices.append(
            scenario_message(
                text_of(m.get("content")),
                reasoning,
                text_of(m.get("refusal")),
                calls,
                choice.get("finish_reason"),
            )
        )
    return Captured(choices, openai_usage(body.get("usage")), text_of(body.get("model")))


class _Choice:
    """One choice of a stream being put together."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: Any = None
        self.spoke = False  # content was sent (even "") rather than null

    def message(self) -> dict[str, Any]:
        calls = [
            scenario_call(c["id"], c["name"], "".join(c["arguments"]))
            for _, c in sorted(self.calls.items())
        ]
        content = "".join(self.content) if self.content or not calls else None
        return scenario_message(
            content,
            "".join(self.reasoning) if self.reasoning else None,
            "".join(self.refusal) if self.refusal else None,
            calls,
            self.finish,
        )


def chat_stream(events: list[Event]) -> Captured:
    out = Captured(complete=False)
    choices: dict[int, _Choice] = {}
    calls_seen: dict[tuple[int, int], int] = {}  # (choice, index) -> call number
    for event in events:
        if event.data.strip() == "[DONE]":
            out.complete = True
            break
        data = json.loads(event.data)
        if "error" in data and not data.get("choices"):
            error = data["error"] if isinstance(data["error"], dict) else {"message": data["error"]}
            out.error = {"kind": "stream_error", **error}
            break
        out.model = out.model or text_of(data.get("model"))
        if data.get("usage"):
            out.usage = openai_usage(data["usage"])
        for choice in data.get("choices") or []:
            i = choice.get("index", 0)
            c = choices.setdefault(i, _Choice())
            delta = choice.get("delta") or {}
            if choice.get("finish_reason"):
                c.finish = choice["finish_reason"]
            reasoning = text_of(delta.get("reasoning_content")) or text_of(delta.get("reasoning"))
            for kind, text, into in (
                ("reasoning", reasoning, c.reasoning),
                ("text", text_of(delta.get("content")), c.content),
                ("refusal", text_of(delta.get("refusal")), c.refusal),
            ):
                if text:
                    into.append(text)
                    if i == 0:
                        out.pieces.append(Piece(kind, text, event.at))
            for call in delta.get("tool_calls") or []:
                index = call.get("index", 0)
                k = calls_seen.setdefault((i, index), len([1 for x in calls_seen if x[0] == i]))
                slot = c.calls.setdefault(k, {"id": None, "name": None, "arguments": []})
                slot["id"] = slot["id"] or call.get("id")
                fn = call.get("function") or {}
                slot["name"] = slot["name"] or fn.get("name")
                if fn.get("arguments"):
                    slot["arguments"].append(fn["arguments"])
                    if i == 0:
                        out.pieces.append(Piece("arguments", fn["arguments"], event.at, k))
    out.choices = [c.message() for _, c in sorted(choices.items())]
    if len(out.choices) > 1:
        out.pieces = []  # one cadence serves every choice: keep the rhythm of single replies only
    return out
