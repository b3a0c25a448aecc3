"""Google Gemini's native API: ``POST /v1beta/models/{model}:generateContent`` and its kin.

The URL names the model and the method (``:generateContent``, ``:streamGenerateContent``,
``:countTokens``, ``:embedContent``, ``:batchEmbedContents``), and the query the stream's
framing: ``?alt=sse`` gives SSE ``data:`` events, none gives one JSON array sent element by
element. ``contents`` become the neutral conversation (``model`` turns are the assistant's,
``functionCall`` parts its tool calls, ``functionResponse`` parts tool results), and a reply
becomes a candidate's parts: thoughts (``thought: true``, only when ``includeThoughts`` asks),
text, and ``functionCall`` parts with object ``args``. Field names are read in both spellings
(``generationConfig`` and ``generation_config``), as Google's JSON parser accepts them; errors
take Google's shape, ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar

from ..core.caching import Plan, automatic, conversation_blocks, gemini_minimum
from ..core.errors import APIError
from ..core.request import Request, parse_json_body
from ..core.vectors import native_dimensions
from ..scenarios.ratelimit import Ticket
from ..scenarios.render import Choice, Rendered, Usage, paced
from . import (
    JSON,
    NO_QUERY,
    NOWHERE,
    SSE,
    Answer,
    Frame,
    Lookup,
    Protocol,
    Target,
    arguments_object,
    dumps,
    signature,
)
from .capture import Captured, Event, Piece, scenario_call, scenario_message, text_of, usage_of
from .chat import MAX_N
from .embeddings import MAX_DIMENSIONS, embeddings_request, vectors

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""The canonical status name Google sends with each HTTP code."""
_GOOGLE_STATUSES = frozenset(STATUS_NAMES.values()) | {"FAILED_PRECONDITION", "OUT_OF_RANGE"}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY",
           "tool_calls": "STOP", "function_call": "STOP"}  # fmt: skip
CALLING_MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto",
          "MODE_UNSPECIFIED": None}  # fmt: skip
_PATH = re.compile(r"/(?:models|tunedModels)/([^/]+):(\w+)$")
_SERVICE = "generativelanguage.googleapis.com"
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


# --- reading a request -----------------------------------------------------------------------


_SNAKE: dict[str, str] = {}


def snake(name: str) -> str:
    """``generationConfig`` -> ``generation_config``: the proto name, which Google also
    accepts in JSON and uses in its error messages."""
    found = _SNAKE.get(name)
    if found is None:
        found = _SNAKE[name] = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return found


def get(obj: Mapping[str, Any], name: str) -> Any:
    """A field in either spelling (``name`` is the camelCase one)."""
    value = obj.get(name)
    return obj.get(snake(name)) if value is None else value


def _invalid(message: str, param: str | None = None) -> APIError:
    return APIError(400, message, param=param)


_TYPES = {"string": "TYPE_STRING", "number": "TYPE_FLOAT", "integer": "TYPE_INT32",
          "boolean": "TYPE_BOOL", "object": "TYPE_MESSAGE", "array": "TYPE_MESSAGE"}  # fmt: skip


def _wrong_type(path: str, kind: str, value: Any) -> APIError:
    """Google's words for a value of the wrong JSON type, naming the field."""
    return _invalid(f"Invalid value at '{path}' ({_TYPES[kind]}), {json.dumps(value)}", path)


def _is_integer(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer()
    )


_KINDS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": _is_integer,
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}
"""Each JSON type's check, run only for the kind asked (a request reads ~30 fields)."""


def _typed(obj: Mapping[str, Any], name: str, kind: str, where: str) -> Any:
    """``get(obj, name)``, or the 400 naming the field when it has the wrong JSON type."""
    if not obj:  # an absent config or part read field by field: nothing to look up
        return None
    value = get(obj, name)
    if value is None:
        return None
    if not _KINDS[kind](value):
        raise _wrong_type(f"{where}{snake(name)}", kind, value)
    return int(value) if kind == "integer" else value


def _strings(obj: Mapping[str, Any], name: str, where: str) -> list[str] | None:
    """A repeated string field (``stopSequences``, ``responseModalities``...), each item
    checked: the 400 names the first that is not a string."""
    items: list[str] | None = _typed(obj, name, "array", where)
    for k, item in enumerate(items or ()):
        if not isinstance(item, str):
            raise _wrong_type(f"{where}{snake(name)}[{k}]", "string", item)
    return items


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(
            f"Invalid JSON payload received. Expected an object at '{path}', "
            f"got {json.dumps(value)}.",
            path,
        )
    return value


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = parse_json_body(raw)
    except APIError:
        raise _invalid("Invalid JSON payload received. Unexpected token.", "body") from None
    if not isinstance(body, dict):
        raise _invalid(
            f"Invalid JSON payload received. Expected an object, got {type(body).__name__}.",
            "body",
        )
    return body


def _result_text(response: Any) -> str:
    """A function's result as a tool result's text: a lone string value as it is (the usual
    ``{"result": "..."}``), anything else as JSON."""
    if isinstance(response, dict) and len(response) == 1:
        (value,) = response.values()
        if isinstance(value, str):
            return value
    return dumps(response)


def _parts(content: dict[str, Any], where: str) -> list[dict[str, Any]]:
    parts = _typed(content, "parts", "array", where)
    if parts is None:
        raise _invalid(f"* GenerateContentRequest.{where}parts: contents.parts must not be empty.",
                       f"{where}parts")  # fmt: skip
    return [_object(part, f"{where}parts[{k}]") for k, part in enumerate(parts)]


def _named(value: Any, at: str) -> None:
    """A ``functionCall`` or ``functionResponse`` names its function."""
    if not _typed(value, "name", "string", at):
        raise _invalid(f"* GenerateContentRequest.{at}name: Name cannot be empty.", f"{at}name")


def _part(part: dict[str, Any], at: str) -> tuple[str | None, Any, Any]:
    """A part's text, ``functionCall`` and ``functionResponse``, each field of its JSON type.
    Google takes one of them a part (``data`` is a oneof); the mock reads the first it finds,
    in that order, rather than refuse a part that sets two."""
    text = _typed(part, "text", "string", at)
    if len(part) == 1 and text is not None:  # the commonest part, its text alone: no other
        return text, None, None
    call = _typed(part, "functionCall", "object", at)
    if call is not None:
        _named(call, f"{at}function_call.")
        _typed(call, "args", "object", f"{at}function_call.")
        _typed(call, "id", "string", f"{at}function_call.")
    result = _typed(part, "functionResponse", "object", at)
    if result is not None:
        _named(result, f"{at}function_response.")
        _typed(result, "response", "object", f"{at}function_response.")
        _typed(result, "id", "string", f"{at}function_response.")
    for name in ("inlineData", "fileData"):
        _typed(part, name, "object", at)
    _typed(part, "thought", "boolean", at)
    return text, call, result


def _role(content: dict[str, Any], where: str) -> str:
    """A content's role: ``user`` (the default) or ``model``."""
    role = _typed(content, "role", "string", where) or "user"
    if role not in ("user", "model"):
        raise _invalid(f"* GenerateContentRequest.{where}role: Please use a valid role: "
                       "user, model.", f"{where}role")  # fmt: skip
    return str(role)


def _content(content: Any, where: str) -> list[dict[str, Any]]:
    """One ``Content`` as neutral messages: the turn itself, and a tool message per
    ``functionResponse`` part."""
    content = _object(content, where.rstrip("."))
    role = _role(content, where)
    parts = _parts(content, where)
    texts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for k, part in enumerate(parts):
        at = f"{where}parts[{k}]."
        text, call, result = _part(part, at)
        if text is not None:
            if not get(part, "thought"):  # thoughts sent back are the model's, not the turn's
                texts.append({"type": "text", "text": text})
        elif call is not None:
            name = get(call, "name")
            args = _typed(call, "args", "object", f"{at}function_call.") or {}
            call_id = _typed(call, "id", "string", f"{at}function_call.") or name
            function = {"name": name, "arguments": dumps(args)}
            calls.append({"id": call_id, "type": "function", "function": function})
        elif result is not None:
            name = get(result, "name")
            response = _typed(result, "response", "object", f"{at}function_response.") or {}
            call_id = _typed(result, "id", "string", f"{at}function_response.") or name
            out.append({"role": "tool", "tool_call_id": call_id, "name": name,
                        "content": _result_text(response)})  # fmt: skip
        elif get(part, "inlineData") is not None or get(part, "fileData") is not None:
            media = get(part, "inlineData")
            media = get(part, "fileData") if media is None else media
            kept = {"type": "file", "mime_type": get(media, "mimeType")}
            if get(media, "fileUri") is not None:
                kept["uri"] = get(media, "fileUri")
            texts.append(kept)  # journalled and counted by what it says, not by its bytes
    if role == "model":
        said: dict[str, Any] = {"role": "assistant", "content": texts or None}
        if calls:
            said["tool_calls"] = calls
        return [said, *out]
    if texts or not out:  # a turn of function responses only ends on those results
        out.insert(0, {"role": "user", "content": texts})
    return out


def _conversation(body: dict[str, Any]) -> list[dict[str, Any]]:
    contents = _typed(body, "contents", "array", "")
    if not contents:
        raise _invalid("* GenerateContentRequest.contents: contents is not specified\n",
                       "contents")  # fmt: skip
    out: list[dict[str, Any]] = []
    system = get(body, "systemInstruction")
    if system is not None:
        said = _content(system, "system_instruction.")
        out.append({"role": "system", "content": said[0]["content"] if said else []})
    for i, content in enumerate(contents):
        out += _content(content, f"contents[{i}].")
    return out


def _tools(body: dict[str, Any]) -> list[Any]:
    tools = _typed(body, "tools", "array", "")
    out: list[Any] = []
    for i, tool in enumerate(tools or ()):
        where = f"tools[{i}]."
        declared = _typed(_object(tool, where.rstrip(".")), "functionDeclarations", "array", where)
        for k, fn in enumerate(declared or ()):
            at = f"{where}function_declarations[{k}]."
            name = _typed(_object(fn, at.rstrip(".")), "name", "string", at)
            if not name:
                raise _invalid(f"* GenerateContentRequest.{at}name: Name cannot be empty.",
                               f"{at}name")  # fmt: skip
            schema = get(fn, "parametersJsonSchema") or get(fn, "parameters") or {}
            function = {"name": name, "description": get(fn, "description") or "",
                        "parameters": schema}  # fmt: skip
            out.append({"type": "function", "function": function})
    return out


def _tool_choice(body: dict[str, Any]) -> str | None:
    config = _typed(body, "toolConfig", "object", "")
    if config is None:
        return None
    calling = _typed(config, "functionCallingConfig", "object", "tool_config.")
    if calling is None:
        return None
    where = "tool_config.function_calling_config."
    mode = _typed(calling, "mode", "string", where)
    if mode is not None and mode not in CALLING_MODES:
        raise _invalid(f"Invalid value at '{where}mode' (type.googleapis.com/"
                       f"google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), "
                       f"{json.dumps(mode)}", f"{where}mode")  # fmt: skip
    allowed = _strings(calling, "allowedFunctionNames", where) or []
    choice = CALLING_MODES.get(mode or "AUTO")
    if choice == "required" and len(allowed) == 1:
        return allowed[0]
    return choice


_GENERATION = (
    ("temperature", "number", "temperature"),
    ("topP", "number", "top_p"),
    ("topK", "number", "top_k"),
    ("candidateCount", "integer", "candidate_count"),
    ("maxOutputTokens", "integer", "max_output_tokens"),
    ("presencePenalty", "number", "presence_penalty"),
    ("frequencyPenalty", "number", "frequency_penalty"),
    ("seed", "integer", "seed"),
)


def _generation(body: dict[str, Any]) -> tuple[dict[str, Any], str | None, bool]:
    """The sampling and length parameters (for the profile), the response format, and
    whether thoughts are asked for."""
    config = _typed(body, "generationConfig", "object", "")
    if not config:  # most requests set none: nothing below to read
        return {}, None, False
    where = "generation_config."
    params: dict[str, Any] = {}
    for name, kind, key in _GENERATION:
        value = _typed(config, name, kind, where)
        if value is not None:
            params[key] = value
    stops = _strings(config, "stopSequences", where)
    if stops:
        params["stop"] = stops
    mime = _typed(config, "responseMimeType", "string", where)
    schema = _typed(config, "responseSchema", "object", where)
    json_schema = get(config, "responseJsonSchema")
    fmt = None
    if mime == "application/json" or mime == "text/x.enum":
        fmt = "json_schema" if schema is not None or json_schema is not None else "json_object"
    elif mime is not None:
        fmt = "text"
    thinking = _typed(config, "thinkingConfig", "object", where) or {}
    at = f"{where}thinking_config."
    thoughts = bool(_typed(thinking, "includeThoughts", "boolean", at))
    budget = _typed(thinking, "thinkingBudget", "integer", at)
    if budget is not None:
        params["thinking_budget"] = budget
    _typed(thinking, "thinkingLevel", "string", at)
    _strings(config, "responseModalities", where)
    return params, fmt, thoughts


def model_not_found(name: str) -> APIError:
    return APIError(
        404,
        f"models/{name.removeprefix('models/')} is not found for API version v1beta, or is not "
        "supported for generateContent. Call ListModels to see the list of available models "
        "and their supported methods.",
    )


def locate(target: Target, body: Mapping[str, Any]) -> tuple[str, str]:
    """The model and the method a request names: in its path, or (a body given without one,
    to explain) in its ``model``."""
    found = _PATH.search(target.path)
    if found is not None:
        model, method = found.groups()
        if not _MODEL_NAME.fullmatch(model):
            raise model_not_found(model)
        return model, method
    model = body.get("model")
    if isinstance(model, str) and model:
        return model.removeprefix("models/"), "generateContent"
    raise _invalid("The model is missing: Gemini names it in the path, "
                   "/v1beta/models/{model}:generateContent.", "model")  # fmt: skip


_PLAIN = frozenset({"contents", "systemInstruction"})
"""A body that sets only these has been checked once they are: the rest are defaults."""


def parse_gemini(raw: bytes, headers: Mapping[str, str], target: Target) -> Request:
    body = _body(raw)
    model, method = locate(target, body)
    if method == "countTokens" and get(body, "generateContentRequest") is not None:
        inner = _object(get(body, "generateContentRequest"), "generate_content_request")
        request = parse_gemini(dumps(inner).encode(), headers, target)
        request.body = body
        return request
    messages = _conversation(body)
    stream = method == "streamGenerateContent"
    sse = target.query.get("alt") == "sse"
    if body.keys() <= _PLAIN:  # the commonest request: no other field to check or read
        request = Request("gemini", body, model, messages, stream, headers)
        request.wire = {"method": method, "sse": sse, "thoughts": False}  # by position: ``Request``
        return request
    params, fmt, thoughts = _generation(body)
    tools = _tools(body)
    wire = {"method": method, "sse": sse, "thoughts": thoughts}
    n = params.get("candidate_count", 1)
    if not 1 <= n <= MAX_N:
        raise _invalid(
            "* GenerateContentRequest.generation_config.candidate_count: candidate_count must "
            f"be in the range [1, {MAX_N}], got {n}.\n",
            "generation_config.candidate_count",
        )
    return Request(
        api="gemini",
        body=body,
        model=model,
        messages=messages,
        stream=stream,
        n=n,
        headers=headers,
        tools=tools,
        tool_choice=_tool_choice(body),
        response_format=fmt,
        params=params,
        wire=wire,
    )


def google_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key, where Google's clients carry it: ``x-goog-api-key``, ``?key=``, or (as relays
    accept) ``Authorization: Bearer``."""
    key = headers.get("x-goog-api-key", "").strip() or query.get("key", "").strip()
    if key:
        return key
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


# --- writing a reply ---------------------------------------------------------------------------


def _status_name(err: APIError) -> str:
    """Google's status for the code, unless the error names one of Google's own (a scenario's
    ``type: RESOURCE_EXHAUSTED``)."""
    if err.type in _GOOGLE_STATUSES:
        return err.type
    fallback = "INTERNAL" if err.status >= 500 else "FAILED_PRECONDITION"
    return STATUS_NAMES.get(err.status, fallback)


def error_object(err: APIError) -> dict[str, Any]:
    error: dict[str, Any] = {"code": err.status, "message": err.message,
                             "status": _status_name(err)}  # fmt: skip
    details: list[dict[str, Any]] = []
    if err.code is not None and err.code.isupper():  # a reason of Google's (API_KEY_INVALID)
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": err.code,
                        "domain": "googleapis.com", "metadata": {"service": _SERVICE}})  # fmt: skip
    retry = next((v for k, v in err.headers.items() if k.lower() == "retry-after"), None)
    if retry is not None and retry.isdigit():
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{retry}s"})  # fmt: skip
    if details:
        error["details"] = details
    return {"error": error}


def _usage(u: Usage, done: bool = True) -> dict[str, Any]:
    if not done:
        return {"promptTokenCount": u.prompt, "totalTokenCount": u.prompt,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u.prompt}]}  # fmt: skip
    out: dict[str, Any] = {
        "promptTokenCount": u.prompt,
        "candidatesTokenCount": max(u.completion - u.reasoning, 0),
        "totalTokenCount": u.total,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u.prompt}],
    }
    if u.cached:
        out["cachedContentTokenCount"] = u.cached
    if u.reasoning:
        out["thoughtsTokenCount"] = u.reasoning
    return out


def _signature(id: str, c: Choice) -> str:
    """A ``thoughtSignature``: base64 (URL-safe, which the SDK's bytes field decodes)."""
    return base64.urlsafe_b64encode(signature(id, c.reasoning or "")).decode()


def _calls(answer: Answer, c: Choice) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for scripted, name, arguments in c.tool_calls:
        call: dict[str, Any] = {"name": name, "args": arguments_object(arguments)}
        if scripted:
            call["id"] = scripted
        parts.append({"functionCall": call})
    if parts and c.reasoning is not None:
        parts[0]["thoughtSignature"] = _signature(answer.env.id, c)
    return parts


def _text(c: Choice) -> str | None:
    text = c.refusal if c.refusal is not None else c.content
    return text if text is not None and (text or not c.tool_calls) else None


class Gemini(Protocol):
    name = "gemini"
    routes: ClassVar[tuple[str, ...]] = (
        "/models/{model}:generateContent",
        "/models/{model}:streamGenerateContent",
        "/models/{model}:countTokens",
    )
    prefixes = ("/v1beta", "/v1")
    versioned_base = False
    id_prefix = ""
    key_variable = "GEMINI_API_KEY"  # google-genai's (GOOGLE_API_KEY is its other)

    def cache_plan(self, req: Request, scope: str, ttl: float) -> Plan | None:
        """Implicit caching: a repeated prefix of at least the model's minimum is reported
        (``cachedContentTokenCount``), in steps of 128 (Google documents none: the mock's)."""
        return automatic(conversation_blocks(req), scope, ttl, gemini_minimum(req.model))

    def api_key(
        self, headers: Mapping[str, str], query: Mapping[str, str] = NO_QUERY
    ) -> str | None:
        return google_key(headers, query)

    def key_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}

    def auth_error(self, headers: Mapping[str, str], key: str | None) -> APIError:
        if key is None:
            return APIError(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        return APIError(400, "API key not valid. Please pass a valid API key.",
                        code="API_KEY_INVALID")  # fmt: skip

    def claims(self, path: str, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        return (
            path.startswith("/v1beta/")
            or "x-goog-api-key" in headers
            or "x-goog-api-client" in headers
            or "key" in query
        )

    def model_list(self, names: Sequence[str]) -> dict[str, Any]:
        return {"models": [self.model(m) for m in names]}

    def model(self, name: str) -> dict[str, Any]:
        name = name.removeprefix("models/")
        embeds = "embedding" in name
        methods = ["embedContent", "batchEmbedContents"] if embeds else [
            "generateContent", "streamGenerateContent", "countTokens"]  # fmt: skip
        out: dict[str, Any] = {
            "name": f"models/{name}",
            "version": "001",
            "displayName": name,
            "description": f"{name}, served by mockserver.",
            "inputTokenLimit": 2048 if embeds else 1048576,
            "outputTokenLimit": 1 if embeds else 65536,
            "supportedGenerationMethods": methods,
        }
        if not embeds:
            out.update(temperature=1, topP=0.95, topK=64, maxTemperature=2, thinking=True)
        return out

    def unknown_model(self, name: str) -> APIError:
        return model_not_found(name)

    def parse(
        self, raw: bytes, headers: Mapping[str, str], lookup: Lookup, target: Target = NOWHERE
    ) -> Request:
        return parse_gemini(raw, headers, target)

    def immediate(self, request: Request) -> bytes | None:
        if request.wire.get("method") != "countTokens":
            return None
        tokens = request.prompt_tokens
        details = [{"modality": "TEXT", "tokenCount": tokens}]
        return dumps({"totalTokens": tokens, "promptTokensDetails": details}).encode()

    def stream_content_type(self, request: Request) -> str:
        return SSE if request.wire.get("sse") else JSON

    def error_body(self, err: APIError, request_id: str) -> bytes:
        return dumps(error_object(err)).encode()

    def rate_limit_headers(self, ticket: Ticket) -> dict[str, str]:
        return {}  # Google sends none: a 429 says RESOURCE_EXHAUSTED, and when to retry

    def shape(self, request: Request) -> Hashable:
        """The stream's framing (SSE or a JSON array) and whether thoughts are included."""
        return bool(request.wire.get("sse")), bool(request.wire.get("thoughts"))

    def derived(self, rendered: Rendered, id: str, seed: str) -> tuple[str, ...]:
        """The thought signatures that go with function calls."""
        return tuple(dict.fromkeys(
            _signature(id, c) for c in rendered.choices
            if c.reasoning is not None and c.tool_calls
        ))  # fmt: skip

    def _envelope(self, answer: Answer, candidates: list[dict[str, Any]],
                  usage: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        return {"candidates": candidates, "usageMetadata": usage,
                "modelVersion": answer.env.model, "responseId": answer.env.id}  # fmt: skip

    def _candidate(self, answer: Answer, i: int, c: Choice) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if c.reasoning is not None and answer.request.wire.get("thoughts"):
            parts.append({"text": c.reasoning, "thought": True})
        text = _text(c)
        if text is not None:
            parts.append({"text": text})
        parts += _calls(answer, c)
        return {"content": {"parts": parts, "role": "model"},
                "finishReason": _FINISH.get(c.finish_reason, "STOP"), "index": i}  # fmt: skip

    def body(self, answer: Answer) -> bytes:
        candidates = [self._candidate(answer, i, c) for i, c in enumerate(answer.rendered.choices)]
        return dumps(self._envelope(answer, candidates, _usage(answer.usage))).encode()

    def _frame(self, answer: Answer, data: Mapping[str, Any], index: int) -> bytes:
        """One element of the stream: an SSE event, or an element of the JSON array."""
        text = dumps(data)
        if answer.request.wire.get("sse"):
            return f"data: {text}\r\n\r\n".encode()
        return ("[" if index == 0 else "\n,\r\n").encode() + text.encode()

    def frames(self, answer: Answer) -> list[Frame]:
        out: list[Frame] = []
        thoughts = answer.request.wire.get("thoughts")
        usage = _usage(answer.usage, done=False)

        def chunk(i: int, part: dict[str, Any], delay: float | None = None) -> None:
            candidate = {"content": {"parts": [part], "role": "model"}, "index": i}
            data = self._envelope(answer, [candidate], usage)
            out.append(Frame(self._frame(answer, data, len(out)), True, delay))

        for i, c in enumerate(answer.rendered.choices):
            if c.reasoning is not None and thoughts:
                for piece, delay in paced(c.reasoning_pieces, c.reasoning_delays):
                    chunk(i, {"text": piece, "thought": True}, delay)
            if _text(c) is not None:
                if c.refusal is not None:
                    pieces = paced(c.refusal_pieces, c.refusal_delays)
                else:
                    pieces = paced(c.content_pieces, c.piece_delays)
                for piece, delay in pieces:
                    if piece:
                        chunk(i, {"text": piece}, delay)
            calls = _calls(answer, c)
            if calls:
                candidate = {"content": {"parts": calls, "role": "model"}, "index": i}
                data = self._envelope(answer, [candidate], usage)
                out.append(Frame(self._frame(answer, data, len(out)), True))
        return out

    def end(self, answer: Answer, sent: int) -> bytes:
        """The last element: every candidate's finish reason, and the whole usage."""
        candidates = []
        for i, c in enumerate(answer.rendered.choices):
            candidates.append({"content": {"parts": [{"text": ""}], "role": "model"},
                               "finishReason": _FINISH.get(c.finish_reason, "STOP"),
                               "index": i})  # fmt: skip
        data = self._envelope(answer, candidates, _usage(answer.usage))
        closing = b"" if answer.request.wire.get("sse") else b"\n]"
        return self._frame(answer, data, sent) + closing

    def stream_error(self, err: APIError, answer: Answer, sent: int) -> bytes:
        """Google ends a broken stream with an error object as its last element."""
        closing = b"" if answer.request.wire.get("sse") else b"\n]"
        return self._frame(answer, error_object(err), sent) + closing

    def malformed(self) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"text": "\r\n\r\n'

    def read_body(self, body: Any) -> Captured:
        if isinstance(body, list):  # the JSON-array stream, read whole
            return gemini_stream([Event(0.0, None, json.dumps(item)) for item in body])
        return gemini_body(body)

    def read_stream(self, events: list[Event]) -> Captured | None:
        return gemini_stream(events)


# --- embeddings --------------------------------------------------------------------------------


def _embed_request(item: Any, where: str) -> tuple[str, int | None]:
    """One ``EmbedContentRequest``: its text and ``outputDimensionality``."""
    item = _object(item, where.rstrip(".") or "body")
    content = get(item, "content")
    if content is None:
        raise _invalid(f"* EmbedContentRequest.{where}content: content is not specified\n",
                       f"{where}content")  # fmt: skip
    content = _object(content, f"{where}content")
    _role(content, f"{where}content.")
    parts = _parts(content, f"{where}content.")
    texts = []
    for k, part in enumerate(parts):
        text, _, _ = _part(part, f"{where}content.parts[{k}].")
        if text is not None:
            texts.append(text)
    dims = _typed(item, "outputDimensionality", "integer", where)
    if dims is not None and not 1 <= dims <= MAX_DIMENSIONS:
        raise _invalid(
            f"* EmbedContentRequest.{where}output_dimensionality: Output dimensionality must "
            f"be between 1 and {MAX_DIMENSIONS}, got {dims}.\n",
            f"{where}output_dimensionality",
        )
    for name in ("taskType", "title"):
        _typed(item, name, "string", where)
    return "".join(texts), dims


def parse_gemini_embeddings(raw: bytes, headers: Mapping[str, str], target: Target) -> Request:
    body = _body(raw)
    model, method = locate(target, body)
    if method == "batchEmbedContents":
        requests = _typed(body, "requests", "array", "")
        if not requests:
            raise _invalid("* BatchEmbedContentsRequest.requests: requests is not specified\n",
                           "requests")  # fmt: skip
        read = [_embed_request(item, f"requests[{i}].") for i, item in enumerate(requests)]
    else:
        read = [_embed_request(body, "")]
    texts = tuple(text for text, _ in read)
    dims = [size or native_dimensions(model) for _, size in read]
    wire = {"method": method, "dims": dims}
    return embeddings_request("gemini_embeddings", body, model, texts, headers, wire)


class GeminiEmbeddings(Gemini):
    """``:embedContent`` and ``:batchEmbedContents``: the generated vectors ``/v1/embeddings``
    gives, at Google's native sizes or ``outputDimensionality``."""

    name = "gemini_embeddings"
    routes = (
        "/models/{model}:embedContent",
        "/models/{model}:batchEmbedContents",
    )
    answers_unmatched = True

    def cache_plan(self, req: Request, scope: str, ttl: float) -> Plan | None:
        return None  # texts to embed are not a conversation: nothing is cached

    def shape(self, request: Request) -> Hashable:
        return None  # vectors: not a text reply

    def parse(
        self, raw: bytes, headers: Mapping[str, str], lookup: Lookup, target: Target = NOWHERE
    ) -> Request:
        return parse_gemini_embeddings(raw, headers, target)

    def immediate(self, request: Request) -> bytes | None:
        return None

    def body(self, answer: Answer) -> bytes:
        found = vectors(answer, answer.request.wire["dims"])
        if answer.request.wire["method"] == "batchEmbedContents":
            return dumps({"embeddings": [{"values": v} for v in found]}).encode()
        return dumps({"embedding": {"values": found[0]}}).encode()

    def read_body(self, body: Any) -> Captured:
        return gemini_embeddings_body(body)

    def read_stream(self, events: list[Event]) -> Captured | None:
        return None


# --- reading an upstream's reply back (recording) -------------------------------------------

_FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
                   "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
                   "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
                   "IMAGE_SAFETY": "content_filter"}  # fmt: skip


def google_usage(usage: Any) -> dict[str, int] | None:
    """``usageMetadata`` as scenario usage (completion counts the thoughts, as OpenAI's does)."""
    if not isinstance(usage, Mapping):
        return None
    thoughts = usage.get("thoughtsTokenCount")
    candidates = usage.get("candidatesTokenCount")
    completion = None
    if isinstance(candidates, int) or isinstance(thoughts, int):
        completion = (candidates or 0) + (thoughts or 0)
    return usage_of(
        [
            ("prompt_tokens", usage.get("promptTokenCount")),
            ("completion_tokens", completion),
            ("reasoning_tokens", thoughts),
            ("cached_tokens", usage.get("cachedContentTokenCount")),
        ]
    )


def _read_parts(parts: Any) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    text: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts or ():
        call = get(part, "functionCall")
        if isinstance(call, dict):
            calls.append(scenario_call(call.get("id"), call.get("name"), call.get("args") or {}))
        elif isinstance(part.get("text"), str):
            (thinking if part.get("thought") else text).append(part["text"])
    return text, thinking, calls


def gemini_body(body: Any) -> Captured:
    choices = []
    for candidate in body.get("candidates") or [{}]:
        text, thinking, calls = _read_parts((candidate.get("content") or {}).get("parts"))
        finish = _FINISH_REASONS.get(candidate.get("finishReason") or "")
        if calls and finish == "stop":
            finish = "tool_calls"
        choices.append(
            scenario_message(
                "".join(text) if text or not calls else None,
                "".join(thinking) if thinking else None,
                None,
                calls,
                finish,
            )
        )
    return Captured(
        choices, google_usage(body.get("usageMetadata")), text_of(body.get("modelVersion"))
    )


def gemini_stream(events: list[Event]) -> Captured:
    """Each event a partial response: text and thought parts are the pieces, function calls
    come whole, the finish reason marks the end, the last ``usageMetadata`` is the whole."""
    out = Captured(complete=False)
    parts: dict[int, list[dict[str, Any]]] = {}
    finish: dict[int, Any] = {}
    usage = None
    for event in events:
        data = json.loads(event.data)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            error = data["error"]
            out.error = {"kind": "stream_error", "message": error.get("message"),
                         "type": error.get("status")}  # fmt: skip
            break
        usage = data.get("usageMetadata") or usage
        out.model = text_of(data.get("modelVersion")) or out.model
        for candidate in data.get("candidates") or ():
            index = candidate.get("index", 0)
            calls = sum(1 for p in parts.get(index, ()) if get(p, "functionCall"))
            for part in (candidate.get("content") or {}).get("parts") or ():
                parts.setdefault(index, []).append(part)
                text = part.get("text")
                call = get(part, "functionCall")
                if isinstance(text, str) and text and index == 0:
                    kind = "reasoning" if part.get("thought") else "text"
                    out.pieces.append(Piece(kind, text, event.at))
                elif isinstance(call, dict) and index == 0:
                    arguments = json.dumps(call.get("args") or {})
                    out.pieces.append(Piece("arguments", arguments, event.at, calls))
                    calls += 1
            if candidate.get("finishReason"):
                finish[index] = candidate["finishReason"]
                out.complete = True
    whole = {"candidates": [{"content": {"parts": parts[i]}, "finishReason": finish.get(i)}
                            for i in sorted(parts)],
             "usageMetadata": usage}  # fmt: skip
    done = gemini_body(whole)
    out.choices, out.usage = done.choices, done.usage
    return out


def gemini_embeddings_body(body: Any) -> Captured:
    """``reply.embeddings``: one vector per request, in order."""
    if isinstance(body.get("embedding"), dict):
        found = [body["embedding"].get("values")]
    else:
        found = [e.get("values") for e in body.get("embeddings") or ()]
    return Captured([], None, None, extra={"embeddings": found})
