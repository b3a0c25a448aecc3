"""The Responses API: ``POST /v1/responses`` (and ``GET /v1/responses/{id}``).

Input items become the neutral conversation (``instructions`` the system text, function calls
the assistant's tool calls, their outputs tool results); a reply becomes output items (reasoning,
then a message or one function call per tool call) and, streamed, the event sequence a real
server sends, each event numbered from 0. Responses that are stored can be continued with
``previous_response_id``: the pipeline keeps what ``stored`` returns.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..core.errors import APIError, invalid_type, missing_param
from ..core.logprobs import MAX_TOP, by_piece, token_logprobs, without_bytes
from ..core.request import (
    Request,
    body_and_model,
    check_range,
    check_types,
    invalid_value,
    param_types,
)
from ..scenarios.render import Choice, Rendered, Usage, call_id, digest
from . import NOWHERE, Answer, Frame, Lookup, Protocol, Stored, Target, dumps, dumps_text
from .capture import (
    PIECE_ORDER,
    Captured,
    Event,
    Piece,
    dig,
    openai_usage,
    scenario_call,
    scenario_message,
    text_of,
)
from .chat import usage_object
from .compiled import SEED, Mold, Values, compiled_body, packed, unpacked

RESPONSE_FORMATS = ("text", "json_object", "json_schema")
MESSAGE_ROLES = ("user", "assistant", "system", "developer")
TOOL_CHOICES = ("none", "auto", "required")
# ``ResponseError.code`` values the openai SDK accepts in ``response.failed``.
FAILURE_CODES = frozenset(
    {"server_error", "rate_limit_exceeded", "invalid_prompt", "vector_store_timeout"}
)

_NUMBERS = ("temperature", "top_p")
_INTEGERS = ("max_output_tokens", "top_logprobs", "max_tool_calls")
_BOOLEANS = ("stream", "store", "parallel_tool_calls", "background")
_STRINGS = ("instructions", "previous_response_id", "user", "safety_identifier")
_OBJECTS = ("metadata", "reasoning", "text", "stream_options")
LOGPROBS = "message.output_text.logprobs"
_TYPES = param_types(_NUMBERS, _INTEGERS, _BOOLEANS, _STRINGS, _OBJECTS)
_PLAIN = frozenset({"model", "input", "stream"})
"""A body that sets only these has been checked once they are: the rest are defaults."""


def _text(content: Any, param: str) -> str | list[dict[str, Any]]:
    """A message's content as the neutral shape: the string, or its text parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid_type(param, "a string or an array", content)
    parts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict):
            raise invalid_type(f"{param}[{i}]", "an object", part)
        text = part.get("text", part.get("refusal"))
        if isinstance(text, str):
            parts.append({"type": "text", "text": text})
    return parts


def _conversation(items: Any) -> list[dict[str, Any]]:
    """``input`` as chat-shaped messages; reasoning and item references are skipped."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise invalid_type("input", "a string or an array", items)
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        # The commonest item, a message whose content is text (``{"role", "content"}``), is
        # what ``_item`` makes of it, without its reads for the other kinds.
        if (
            type(item) is dict
            and len(item) == 2
            and type(content := item.get("content")) is str
            and (role := item.get("role")) in MESSAGE_ROLES
        ):
            out.append({"role": role, "content": content})
        else:
            _item(item, i, out)
    return out


def _item(item: Any, i: int, out: list[dict[str, Any]]) -> None:
    """``input[i]`` added to the conversation ``out``, or the 400 naming what is wrong."""
    where = f"input[{i}]"
    if not isinstance(item, dict):
        raise invalid_type(where, "an object", item)
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        if role is None:
            raise missing_param(f"{where}.role")
        if role not in MESSAGE_ROLES:
            raise invalid_value(f"{where}.role", role, MESSAGE_ROLES)
        if "content" not in item:
            raise missing_param(f"{where}.content")
        out.append({"role": role, "content": _text(item["content"], f"{where}.content")})
    elif kind == "function_call":
        for key in ("call_id", "name", "arguments"):
            if not isinstance(item.get(key), str):
                raise missing_param(f"{where}.{key}")
        call = {"id": item["call_id"], "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]}}  # fmt: skip
        last = out[-1] if out else None
        if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
            last["tool_calls"].append(call)  # parallel calls: one assistant turn
        else:
            out.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise missing_param(f"{where}.call_id")
        if "output" not in item:
            raise missing_param(f"{where}.output")
        output = item["output"]
        content = output if isinstance(output, str) else _text(output, f"{where}.output")
        out.append({"role": "tool", "tool_call_id": item["call_id"], "content": content})
    elif kind == "reasoning":
        sealed_text = item.get("encrypted_content")
        if sealed_text is not None and not isinstance(sealed_text, str):
            raise invalid_type(f"{where}.encrypted_content", "a string", sealed_text)
    elif kind is None:
        raise missing_param(f"{where}.type")
    elif not isinstance(kind, str):
        raise invalid_type(f"{where}.type", "a string", kind)
    # reasoning, item_reference and other item types: kept in the journal, not matched on


def _tools(body: dict[str, Any]) -> list[Any]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid_type("tools", "an array", tools)
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise invalid_type(f"tools[{i}]", "an object", tool)
        if "type" not in tool:
            raise missing_param(f"tools[{i}].type")
        if not isinstance(tool["type"], str):
            raise invalid_type(f"tools[{i}].type", "a string", tool["type"])
        if tool["type"] == "function":
            if not isinstance(tool.get("name"), str):
                raise missing_param(f"tools[{i}].name")
            params = tool.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise invalid_type(f"tools[{i}].parameters", "an object", params)
    return tools


def _tool_choice(body: dict[str, Any]) -> str | None:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise invalid_value("tool_choice", choice, TOOL_CHOICES)
        return choice
    if not isinstance(choice, dict):
        raise invalid_type("tool_choice", "a string or an object", choice)
    if choice.get("type") == "function":
        if not isinstance(choice.get("name"), str):
            raise missing_param("tool_choice.name")
        return str(choice["name"])
    if choice.get("type") == "allowed_tools":
        return str(choice.get("mode", "auto"))
    return str(choice.get("type"))


def _format(body: dict[str, Any]) -> str | None:
    fmt = (body.get("text") or {}).get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise invalid_type("text.format", "an object", fmt)
    kind = fmt.get("type")
    if kind not in RESPONSE_FORMATS:
        raise invalid_value("text.format.type", kind, RESPONSE_FORMATS)
    if kind == "json_schema":
        if not isinstance(fmt.get("name"), str):
            raise missing_param("text.format.name")
        if not isinstance(fmt.get("schema"), dict):
            raise missing_param("text.format.schema")
    return str(kind)


def _params(body: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {
        k: body[k] for k in ("temperature", "top_p", "max_output_tokens") if k in body
    }
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        params["reasoning.effort"] = effort
    return {k: v for k, v in params.items() if v is not None}


def parse_responses(raw: bytes, headers: Mapping[str, str], lookup: Lookup) -> Request:
    body, model = body_and_model(raw)
    if body.keys() <= _PLAIN:  # the commonest request: only ``stream`` and ``input`` to check
        stream = body.get("stream")
        if stream is not None and type(stream) is not bool:
            raise invalid_type("stream", "a boolean", stream)
        items = body.get("input")
        if items is None:
            raise missing_param("input")
        # by position: a keyword call gathers a dict first (``Request`` says why)
        return Request("responses", body, model, _conversation(items), bool(stream), headers)
    check_types(body, _TYPES)
    if body.get("max_output_tokens") is not None and body["max_output_tokens"] < 0:
        raise APIError(
            400,
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 0, "
            f"but got {body['max_output_tokens']} instead.",
            param="max_output_tokens",
            code="integer_below_min_value",
        )
    check_range(body, "top_logprobs", 0, MAX_TOP)
    include = body.get("include")
    if include is not None and not (
        isinstance(include, list) and all(isinstance(i, str) for i in include)
    ):
        raise invalid_type("include", "an array of strings", include)
    if "input" not in body or body["input"] is None:
        raise missing_param("input")
    messages = _conversation(body["input"])
    context: tuple[dict[str, Any], ...] = ()
    previous = body.get("previous_response_id")
    if previous is not None:
        found = lookup(previous)
        if found is None:
            raise APIError(
                400,
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        context = tuple(found)
    instructions = body.get("instructions")
    system = [{"role": "system", "content": instructions}] if instructions else []
    return Request(
        api="responses",
        body=body,
        model=model,
        messages=[*system, *context, *messages],
        stream=bool(body.get("stream")),
        headers=headers,
        tools=_tools(body),
        tool_choice=_tool_choice(body),
        response_format=_format(body),
        params=_params(body),
        context=context,
    )


def usage_json(u: Usage, style: str = "responses") -> dict[str, Any]:
    if style == "chat":  # the relay's documented example body names them as chat does
        return usage_object(u)
    return {
        "input_tokens": u.prompt,
        "input_tokens_details": {"cached_tokens": u.cached, "cache_write_tokens": u.cache_write},
        "output_tokens": u.completion,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.total,
    }


class _Items:
    """The output items of one choice, with the ids they share between events."""

    def __init__(self, answer: Answer) -> None:
        env = answer.env
        self.choice: Choice = answer.rendered.choices[0]
        self.tag = env.call_id_seed
        c = self.choice
        self.status = "incomplete" if c.finish_reason == "length" else "completed"
        self.calls = [
            (env.call_id(scripted, 0, k), name, args)
            for k, (scripted, name, args) in enumerate(c.tool_calls)
        ]
        self.has_message = c.refusal is not None or bool(c.content) or not self.calls
        body = answer.request.body
        self.logprobs: list[dict[str, Any]] | None = None
        """The text's logprobs, when ``include`` asks for them; ``[]`` is what goes otherwise."""
        if LOGPROBS in (body.get("include") or ()) and c.refusal is None:
            top = int(body.get("top_logprobs") or 0)
            self.logprobs = token_logprobs(c.content or "", top, f"{answer.seed}:0")

    def reasoning(self, done: bool) -> dict[str, Any]:
        """The reasoning item; done, with its ``encrypted_content``. The openai SDK's types say
        the API now populates it by default (no longer only under ``include:
        ["reasoning.encrypted_content"]``), and stateless clients (``store: false``: the
        Vercel AI SDK, pydantic-ai) drop or refuse a reasoning item to resend without it. So
        it is always there; ``output_item.added`` leaves it out, as the SDK warns it may be
        incomplete there."""
        reasoning = self.choice.reasoning or ""
        if not done:
            return {"id": f"rs_{self.tag}", "type": "reasoning", "summary": []}
        summary = [{"type": "summary_text", "text": reasoning}]
        return {"id": f"rs_{self.tag}", "type": "reasoning", "summary": summary,
                "encrypted_content": sealed(self.tag, reasoning)}  # fmt: skip

    def part(self, done: bool) -> dict[str, Any]:
        c = self.choice
        if c.refusal is not None:
            return {"type": "refusal", "refusal": c.refusal if done else ""}
        text = (c.content or "") if done else ""
        logprobs = self.logprobs if done and self.logprobs is not None else []
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}

    def message(self, done: bool) -> dict[str, Any]:
        return {
            "id": f"msg_{self.tag}",
            "type": "message",
            "status": self.status if done else "in_progress",
            "role": "assistant",
            "content": [self.part(True)] if done else [],
        }

    def call(self, k: int, done: bool) -> dict[str, Any]:
        call_id, name, args = self.calls[k]
        return {
            "id": f"fc_{self.tag}{k}",
            "type": "function_call",
            "status": "completed" if done else "in_progress",
            "call_id": call_id,
            "name": name,
            "arguments": args if done else "",
        }

    def output(self) -> list[dict[str, Any]]:
        out = [self.reasoning(True)] if self.choice.reasoning is not None else []
        if self.has_message:
            out.append(self.message(True))
        out += [self.call(k, True) for k in range(len(self.calls))]
        return out


class Responses(Protocol):
    name = "responses"
    routes = ("/responses",)
    id_prefix = "resp_"
    keeps = True

    def __init__(self, usage_style: str = "responses") -> None:
        self.usage_style = usage_style

    def parse(
        self, raw: bytes, headers: Mapping[str, str], lookup: Lookup, target: Target = NOWHERE
    ) -> Request:
        return parse_responses(raw, headers, lookup)

    def response(
        self, answer: Answer, items: _Items | None, status: str | None = None
    ) -> dict[str, Any]:
        """The response object; ``items`` None for the snapshot a stream opens with."""
        body = answer.request.body
        env = answer.env
        done = items is not None
        if status is None:
            status = items.status if items is not None else "in_progress"
        text = body.get("text") or {}
        reasoning = body.get("reasoning") or {}
        return {
            "id": env.id,
            "object": "response",
            "created_at": env.created,
            "status": status,
            "background": bool(body.get("background")),
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"}
            if status == "incomplete"
            else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": env.model,
            "output": items.output() if items is not None else [],
            "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "service_tier": "default",
            "store": body.get("store", True) is not False,
            "temperature": _or(body.get("temperature"), 1.0),
            "text": {"format": text.get("format") or {"type": "text"}},
            "tool_choice": body.get("tool_choice") or "auto",
            "tools": body.get("tools") or [],
            "top_p": _or(body.get("top_p"), 1.0),
            "truncation": body.get("truncation") or "disabled",
            "usage": usage_json(answer.usage, self.usage_style) if done else None,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def encoded(self, answer: Answer, items: _Items | None) -> str:
        """``dumps(self.response(answer, items))``, written field by field: the standard
        encoder spent 13 µs on this object (0.4 µs a field), most of a Responses reply's work.
        A property test holds the two to the same text."""
        env = answer.env
        status = items.status if items is not None else "in_progress"
        cut = '{"reason": "max_output_tokens"}' if status == "incomplete" else "null"
        output = dumps(items.output()) if items is not None else "[]"
        used = "null"
        if items is not None:
            u = answer.usage
            used = (
                dumps(usage_object(u)) if self.usage_style == "chat" else
                f'{{"input_tokens": {u.prompt}, "input_tokens_details": {{"cached_tokens": '
                f'{u.cached}, "cache_write_tokens": {u.cache_write}}}, "output_tokens": '
                f'{u.completion}, "output_tokens_details": {{"reasoning_tokens": {u.reasoning}}}, '
                f'"total_tokens": {u.total}}}'
            )  # fmt: skip
        background, limits, settings, owner = self._echo(answer) or _PLAIN_ECHO
        return (
            f'{{"id": {_js(env.id)}, "object": "response", "created_at": {env.created}, '
            f'"status": "{status}", {background}, "error": null, "incomplete_details": {cut}, '
            f'{limits}, "model": {_js(env.model)}, "output": {output}, {settings}, '
            f'"usage": {used}, {owner}}}'
        )

    def echoed(self, request: Request) -> tuple[str, ...]:
        """The request's parameters as the response object repeats them: four runs of fields
        (the object's other fields come between them); none for a request that sets none of
        them (most do not), whose compiled reply has ``_PLAIN_ECHO`` written in (its shape
        says so)."""
        body = request.body
        return () if _ECHOED.isdisjoint(body) else _echo(body)

    def _echo(self, answer: Answer) -> tuple[str, ...]:
        """``echoed``, made once per answer (a compiling probe's are markers)."""
        echo: tuple[str, ...] | None = answer.wire.get("echo")
        if echo is None:
            echo = answer.wire["echo"] = self.echoed(answer.request)
        return echo

    def derived(self, rendered: Rendered, id: str, seed: str) -> tuple[str, ...]:
        c = rendered.choices[0]
        return (sealed(seed, c.reasoning),) if c.reasoning is not None else ()

    def shape(self, request: Request) -> Hashable:
        body = request.body
        if "include" in body and LOGPROBS in (body["include"] or ()):
            return None
        return _PLAIN_SHAPE if _ECHOED.isdisjoint(body) else ()

    def _final(self, answer: Answer) -> str:
        """The finished response as JSON: the plain body, the stream's last event and the
        stored copy are the same text, encoded once."""
        text: str | None = answer.wire.get(self.name)
        if text is None:
            text = answer.wire[self.name] = self.encoded(answer, _items(answer))
        return text

    def body(self, answer: Answer) -> bytes:
        return self._final(answer).encode()

    def frames(self, answer: Answer) -> Iterator[Frame]:
        items = _items(answer)
        c = items.choice
        sequence = 0  # each event's sequence_number

        def event(kind: str, paced: bool = False, delay: float | None = None, **data: Any) -> Frame:
            nonlocal sequence
            payload = {"type": kind, "sequence_number": sequence, **data}
            sequence += 1
            return Frame(f"event: {kind}\ndata: {dumps(payload)}\n\n".encode(), paced, delay)

        def deltas(
            kind: str,
            shared: dict[str, Any],
            pieces: Sequence[str],
            delays: Sequence[float | None] = (),
            after: str | Iterable[str] = "",
        ) -> Iterator[Frame]:
            """``event(kind, True, delay, **shared, delta=piece)`` per piece, then the fields in
            ``after`` (the same for every piece, or one each): the same bytes, but what all the
            deltas share is encoded once, not once a piece (encoding the whole event was most
            of the cost of a streamed reply)."""
            nonlocal sequence
            head = f'{{"type": "{kind}", "sequence_number": '
            middle = f', {dumps(shared)[1:-1]}, "delta": '
            afters = itertools.repeat(after) if isinstance(after, str) else after
            for piece, delay, tail in zip(
                pieces, delays or (None,) * len(pieces), afters, strict=False
            ):
                text = f"{head}{sequence}{middle}{dumps_text(piece)}{tail}}}"
                sequence += 1
                yield Frame(f"event: {kind}\ndata: {text}\n\n".encode(), True, delay)

        snapshot = self.encoded(answer, None)  # the same in both opening events
        for kind in ("response.created", "response.in_progress"):
            text = _spliced(kind, sequence, "response", snapshot)
            sequence += 1
            yield Frame(f"event: {kind}\ndata: {text}\n\n".encode())
        index = 0
        if c.reasoning is not None:
            item = items.reasoning(False)
            where = {"item_id": item["id"], "output_index": index}
            yield event("response.output_item.added", output_index=index, item=item)
            part = {"type": "summary_text", "text": ""}
            yield event("response.reasoning_summary_part.added", **where, summary_index=0,
                        part=part)  # fmt: skip
            yield from deltas("response.reasoning_summary_text.delta",
                              {**where, "summary_index": 0}, c.reasoning_pieces,
                              c.reasoning_delays)  # fmt: skip
            yield event("response.reasoning_summary_text.done", **where, summary_index=0,
                        text=c.reasoning)  # fmt: skip
            part = {"type": "summary_text", "text": c.reasoning}
            yield event("response.reasoning_summary_part.done", **where, summary_index=0,
                        part=part)  # fmt: skip
            yield event("response.output_item.done", output_index=index,
                        item=items.reasoning(True))  # fmt: skip
            index += 1
        if items.has_message:
            item = items.message(False)
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield event("response.output_item.added", output_index=index, item=item)
            yield event("response.content_part.added", **where, part=items.part(False))
            if c.refusal is not None:
                yield from deltas("response.refusal.delta", where, c.refusal_pieces,
                                  c.refusal_delays)  # fmt: skip
                yield event("response.refusal.done", **where, refusal=c.refusal)
            else:
                logprobs = items.logprobs
                after: str | Iterator[str] = ', "logprobs": []'
                if logprobs is not None:
                    after = (f', "logprobs": {dumps(without_bytes(x))}'
                             for x in by_piece(logprobs, c.content_pieces))  # fmt: skip
                yield from deltas("response.output_text.delta", where, c.content_pieces,
                                  c.piece_delays, after)  # fmt: skip
                done = without_bytes(logprobs) if logprobs is not None else []
                yield event("response.output_text.done", **where, text=c.content or "",
                            logprobs=done)  # fmt: skip
            yield event("response.content_part.done", **where, part=items.part(True))
            yield event("response.output_item.done", output_index=index,
                        item=items.message(True))  # fmt: skip
            index += 1
        for k, pieces in enumerate(c.argument_pieces):
            item = items.call(k, False)
            where = {"item_id": item["id"], "output_index": index}
            yield event("response.output_item.added", output_index=index, item=item)
            own = c.argument_delays[k] if c.argument_delays else ()
            yield from deltas("response.function_call_arguments.delta", where, pieces, own)
            yield event("response.function_call_arguments.done", **where,
                        arguments=items.calls[k][2])  # fmt: skip
            yield event("response.output_item.done", output_index=index, item=items.call(k, True))
            index += 1

    def end(self, answer: Answer, sent: int) -> bytes:
        cut = answer.rendered.choices[0].finish_reason == "length"
        kind = "response.incomplete" if cut else "response.completed"
        text = _spliced(kind, sent, "response", self._final(answer))
        return f"event: {kind}\ndata: {text}\n\n".encode()

    def stream_error(self, err: APIError, answer: Answer, sent: int) -> bytes:
        """The documented flat fields, and the nested ``error`` production sends (the SDK raises
        ``APIError`` on that one only)."""
        nested = {
            "type": self.error_type(err),
            "code": err.code,
            "message": err.message,
            "param": err.param,
        }
        return _event(
            "error", sent, code=err.code, message=err.message, param=err.param, error=nested
        )

    def failed(self, err: APIError, answer: Answer, sent: int) -> bytes:
        response = self.response(answer, None, status="failed")
        code = err.code if err.code in FAILURE_CODES else "server_error"
        response["error"] = {"code": code, "message": err.message}
        return _event("response.failed", sent, response=response)

    def malformed(self) -> bytes:
        return b'event: response.output_text.delta\ndata: {"type": "response.output_text.\n\n'

    def stored(
        self, answer: Answer, raw: bytes, body: bytes | None, filled: Values | None = None
    ) -> Stored | None:
        if answer.request.body.get("store") is False:
            return None
        mold = compiled_body(self, answer) if body is None and filled is not None else None
        if body is None and mold is None:
            body = self.body(answer)
        env = answer.env
        return self.kept(answer.request, raw, answer.rendered, env.id, env.call_id_seed, body,
                         mold, filled)  # fmt: skip

    def kept(
        self,
        request: Request,
        raw: bytes,
        rendered: Rendered,
        id: str,
        seed: str,
        body: bytes | None,
        plain: Mold | None,
        filled: Values | None,
    ) -> Stored | None:
        if request.body.get("store") is False:
            return None
        settled = not rendered.cached  # a choice of its own (a template's): the turn is less
        turns: Sequence[dict[str, Any]] | bytes = raw  # what makes them: its ``input``
        if settled or request.context or request.body.get("previous_response_id") is not None:
            # the conversation made now, or turns that other stored responses made, which may
            # be gone when this copy is read
            turns = request.messages[1:] if request.body.get("instructions") else request.messages
        kept = _Kept(id, turns, rendered.choices[0], seed, body, plain, filled)
        if settled:
            kept.settle()
        return kept

    def read_body(self, body: Any) -> Captured:
        return responses_body(body)

    def read_stream(self, events: list[Event]) -> Captured:
        return responses_stream(events)


def said(choice: Choice, seed: str) -> dict[str, Any]:
    """The reply as the conversation's last turn (chat-shaped); ``seed``: its call ids'."""
    turn: dict[str, Any] = {"role": "assistant", "content": choice.content}
    if choice.tool_calls:
        turn["tool_calls"] = [
            {"id": call_id(seed, scripted, 0, k), "type": "function",
             "function": {"name": name, "arguments": args}}
            for k, (scripted, name, args) in enumerate(choice.tool_calls)
        ]  # fmt: skip
    return turn


class _Kept(Stored):
    """A stored response kept as what makes it: the request's turns (the request's bytes,
    whose ``input`` makes them again, unless they continue another stored response), the reply
    (the choice every request a cached reply answers shares) and its call ids' seed,
    and the body as written, or the compiled body and the values that fill it (a compiled
    reply's copy, plain or streamed: its values packed in one bytes object, ~150 bytes where
    the body is ~1.5 KB). The store keeps 10,000, and every object kept is memory a later
    request allocates and frees cold: a copy is ~0.8 KB in five objects (the body and a
    tuple of values made it ~1.9 KB, or ~1.1 KB in eleven). The conversation is made when
    first read (or at once: ``settle``), the body on every read."""

    __slots__ = ("_choice", "_mold", "_seed", "_turns", "_values")
    _choice: Choice | None
    _seed: str | None
    _values: bytes | None

    def __init__(
        self,
        id: str,
        turns: Sequence[dict[str, Any]] | bytes,
        choice: Choice,
        seed: str,
        body: bytes | None,
        mold: Mold | None,
        values: Values | None,
    ) -> None:
        self.id = id
        self._messages = None
        self._body = body
        self._turns = turns
        self._choice = choice
        # a compiled copy: its values in one object; the seed is among them
        self._seed = seed if values is None else None
        self._mold = mold
        self._values = packed(values) if values is not None else None
        if body is None:  # a compiled body: the bytes it writes but the values (a few dozen)
            assert mold is not None
            body_size = mold.size
        else:
            body_size = len(body)
        self.size = body_size

    def _converse(self) -> tuple[dict[str, Any], ...]:
        assert self._choice is not None
        seed = self._seed
        if seed is None:
            assert self._values is not None
            seed = unpacked(self._values)[SEED].decode()
        turns = self._turns
        if type(turns) is bytes:  # the request as sent (shared with its journal entry)
            turns = _conversation(body_and_model(turns)[0]["input"])
        return (*turns, said(self._choice, seed))

    def settle(self) -> None:
        """Make the conversation now and let the choice go: for a reply rendered for this
        request alone (a template's), whose choice (its text cut into stream pieces) would
        outweigh the turn made of it."""
        self._messages = self._converse()
        self._choice = None
        self._turns = ()

    def _write(self) -> bytes:
        assert self._mold is not None
        assert self._values is not None
        return self._mold.fill(unpacked(self._values))


def sealed(tag: str, reasoning: str) -> str:
    """A reasoning item's ``encrypted_content``: deterministic (the same request and reply give
    the same text), opaque (the reasoning masked by a keystream), and shaped like the real one,
    a URL-safe base64 Fernet token (version byte 0x80, so it begins ``gAAAAA``)."""
    key = bytes.fromhex(digest(tag, reasoning))
    text = reasoning.encode()
    stream = hashlib.shake_256(key).digest(len(text))
    masked = bytes(a ^ b for a, b in zip(text, stream, strict=True))
    return base64.urlsafe_b64encode(b"\x80\0\0\0\0" + key + masked).decode()


def _items(answer: Answer) -> _Items:
    """The answer's output items, built once for its body, stream and stored copy."""
    items: _Items | None = answer.wire.get("items")
    if items is None:
        items = answer.wire["items"] = _Items(answer)
    return items


_TEXT = '{"type": "text"}'
_LITERALS: dict[Any, str] = {None: "null", True: "true", False: "false"}


def _js(value: Any) -> str:
    """``dumps(value)``, with the common scalars written without a call into the encoder."""
    if type(value) is str:
        return dumps_text(value)
    if value is None or type(value) is bool:
        return _LITERALS[value]
    if not value and type(value) in (list, dict):
        return "[]" if type(value) is list else "{}"
    return dumps(value)


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _echo(body: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """``Responses.echoed`` of a request body."""
    text = body.get("text") or {}
    reasoning = body.get("reasoning") or {}
    form = text.get("format")
    return (
        f'"background": {_js(bool(body.get("background")))}',
        f'"instructions": {_js(body.get("instructions"))}, '
        f'"max_output_tokens": {_js(body.get("max_output_tokens"))}, '
        f'"max_tool_calls": {_js(body.get("max_tool_calls"))}',
        f'"parallel_tool_calls": {_js(body.get("parallel_tool_calls") is not False)}, '
        f'"previous_response_id": {_js(body.get("previous_response_id"))}, '
        f'"reasoning": {{"effort": {_js(reasoning.get("effort"))}, '
        f'"summary": {_js(reasoning.get("summary"))}}}, "service_tier": "default", '
        f'"store": {_js(body.get("store", True) is not False)}, '
        f'"temperature": {_js(_or(body.get("temperature"), 1.0))}, '
        f'"text": {{"format": {dumps(form) if form else _TEXT}}}, '
        f'"tool_choice": {_js(body.get("tool_choice") or "auto")}, '
        f'"tools": {_js(body.get("tools") or [])}, '
        f'"top_p": {_js(_or(body.get("top_p"), 1.0))}, '
        f'"truncation": {_js(body.get("truncation") or "disabled")}',
        f'"user": {_js(body.get("user"))}, "metadata": {_js(body.get("metadata") or {})}',
    )  # fmt: skip


_ECHOED = frozenset({"background", "instructions", "max_output_tokens", "max_tool_calls",
                     "parallel_tool_calls", "previous_response_id", "reasoning", "store",
                     "temperature", "text", "tool_choice", "tools", "top_p", "truncation",
                     "user", "metadata"})  # fmt: skip
"""The body's keys ``_echo`` reads (``isdisjoint``: a fifth of the cost of ``keys() &``,
which builds a set, and it is asked twice a request)."""
_PLAIN_ECHO = _echo({})
"""The echo of a request that sets none of them (most do not)."""
_PLAIN_SHAPE = "plain"
"""The shape of a request that sets none of them: its echo is in its compiled reply."""


def _spliced(kind: str, sequence: int, name: str, encoded: str) -> str:
    """``dumps({"type": kind, "sequence_number": sequence, name: value})`` given ``value``
    already encoded: the same text."""
    return f'{{"type": "{kind}", "sequence_number": {sequence}, "{name}": {encoded}}}'


def _event(kind: str, sequence: int, **data: Any) -> bytes:
    payload = dumps({"type": kind, "sequence_number": sequence, **data})
    return f"event: {kind}\ndata: {payload}\n\n".encode()


# --- reading an upstream's reply back (recording) -------------------------------------------


def responses_body(body: Any) -> Captured:
    reasoning: list[str] = []
    content: list[str] = []
    refusal: list[str] = []
    calls = []
    for item in body.get("output") or []:
        kind = item.get("type")
        if kind == "reasoning":
            reasoning += [s.get("text", "") for s in item.get("summary") or []]
        elif kind == "message":
            for part in item.get("content") or []:
                if part.get("type") == "refusal":
                    refusal.append(part.get("refusal", ""))
                elif isinstance(part.get("text"), str):
                    content.append(part["text"])
        elif kind == "function_call":
            calls.append(
                scenario_call(item.get("call_id"), item.get("name"), item.get("arguments"))
            )
    finish = None
    if body.get("status") == "incomplete":
        reason = dig(body, "incomplete_details", "reason")
        finish = "content_filter" if reason == "content_filter" else "length"
    message = scenario_message(
        "".join(content) if content or not (calls or refusal) else None,
        "\n\n".join(reasoning) if reasoning else None,
        "".join(refusal) if refusal else None,
        calls,
        finish,
    )
    return Captured([message], openai_usage(body.get("usage")), text_of(body.get("model")))


_RESPONSES_DELTAS = {
    "response.output_text.delta": "text",
    "response.reasoning_summary_text.delta": "reasoning",
    "response.reasoning_text.delta": "reasoning",
    "response.refusal.delta": "refusal",
    "response.function_call_arguments.delta": "arguments",
}


def responses_stream(events: list[Event]) -> Captured:
    """Pieces from the delta events; the reply itself from the final response object."""
    pieces: list[Piece] = []
    calls: dict[str, int] = {}  # function call item id -> call number
    final: Any = None
    error: dict[str, Any] | None = None
    for event in events:
        data = json.loads(event.data)
        kind = data.get("type", event.name)
        if kind == "response.output_item.added" and dig(data, "item", "type") == "function_call":
            calls[data["item"].get("id", "")] = len(calls)
        piece = _RESPONSES_DELTAS.get(kind)
        if piece and data.get("delta"):
            call = calls.get(data.get("item_id", ""), 0)
            pieces.append(Piece(piece, data["delta"], event.at, call))
        elif kind in ("response.completed", "response.incomplete"):
            final = data.get("response")
        elif kind == "response.failed":
            failure = dig(data, "response", "error") or {}
            error = {"kind": "failed", **failure}
            final = data.get("response")
            break
        elif kind == "error":
            nested = data.get("error") if isinstance(data.get("error"), dict) else data
            error = {
                "kind": "stream_error",
                **{k: nested.get(k) for k in ("message", "type", "code")},
            }
            break
    if final is not None and error is None:
        out = responses_body(final)
        out.pieces = pieces
        return out
    # Cut short: what the deltas said.
    texts = {k: "".join(p.text for p in pieces if p.kind == k) for k in PIECE_ORDER}
    message = scenario_message(
        texts["text"] if texts["text"] or not texts["refusal"] else None,
        texts["reasoning"] or None,
        texts["refusal"] or None,
        [],
        None,
    )
    model = text_of(dig(final, "model")) if final is not None else None
    return Captured([message], None, model, pieces, complete=False, error=error)
