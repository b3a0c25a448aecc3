"""Wire protocols: one module each, and the one interface the pipeline drives them through.

A protocol knows its format and nothing else (the cut LiteLLM makes per provider): it parses
its request body into the neutral ``Request`` (or raises the error naming ``param``), renders
a concrete reply into its JSON body or its stream events, and shapes errors. It never touches
the journal, faults, rate limits, the memo or the clock: the pipeline does, once for all.
Each also reads an upstream's replies back into the neutral reply, for recording (``capture``
holds what those readers share).

May import: ``mockserver.core`` and ``mockserver.scenarios``; never the state, recording, the
inspector or the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from ..core.caching import Plan, automatic, conversation_blocks
from ..core.errors import APIError, openai_error_type
from ..core.request import Request, bearer_token
from ..scenarios.ratelimit import Ticket
from ..scenarios.render import Envelope, Rendered, Usage, digest
from ..scenarios.scenario import Reply
from .capture import Captured, Event

HEAVY = 10_000
"""Stream pieces (chunks of text) above which a reply is heavy: ~40 ms of JSON or more. A
heavy reply is made as it is written, in slices, so that other requests are served between
them, and is not kept whole anywhere (not in a cache, not as one body)."""

JSON = "application/json"
SSE = "text/event-stream"

dumps = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
"""``json.dumps(value, ensure_ascii=False)``, the same text, without the encoder that
``json.dumps`` builds on every call given any argument (4 µs, more than a short value costs),
and without the check for cycles, which parsed JSON and loaded scenarios cannot have (a sixth
of the time of a Responses body)."""

dumps_text: Callable[[str], str] = json.encoder.encode_basestring
"""``dumps`` of a string, without the call through the encoder (a stream encodes one a piece)."""


class Frame(NamedTuple):
    """One piece of a stream. ``paced`` frames carry output text and wait for the cadence
    (``delay`` when the scenario scripts this piece's own); the others go out at once."""

    data: bytes
    paced: bool = False
    delay: float | None = None


@dataclass(slots=True)
class Answer:
    """Everything a protocol needs to write one reply (one per request: not frozen, which
    would set each field through ``object.__setattr__``)."""

    request: Request
    rendered: Rendered
    usage: Usage
    env: Envelope
    reply: Reply | None = None
    """The scenario's reply, for protocols whose answer is not text (embeddings)."""
    seed: int = 0
    """The scenario's seed: what generated data (vectors) derive from, with the request."""
    request_id: str = ""
    """The request's own id, unique per request: what names what a reply creates (a task)."""
    now: float = 0.0
    """When the request came (the server's clock): when what it creates began."""
    wire: dict[str, Any] = field(default_factory=dict)
    """What the protocol built of this answer and needs again (a Responses body is also its
    stream's last event and its stored copy): built once per request, not once per use."""


Lookup = Callable[[str], "Sequence[dict[str, Any]] | None"]
"""The conversation a stored response ended with, by id (``previous_response_id``)."""


class Stored:
    """A reply the protocol wants kept: its id, the conversation it ends, and its body.

    A protocol may keep it compactly, as what makes the conversation and the body, each built
    when read (a subclass writes ``_converse`` and ``_write``): a load test stores
    every response and reads almost none, and each copy kept is memory that later requests
    find cold. Another process (``--workers``) is sent the plain form (``__reduce__``)."""

    __slots__ = ("_body", "_messages", "id", "size")
    _messages: tuple[dict[str, Any], ...] | None
    _body: bytes | None
    size: int
    """What the store counts against its bound in bytes: the body's length (a compact copy
    that writes its body when read: the length of what writes it)."""

    def __init__(self, id: str, messages: tuple[dict[str, Any], ...], body: bytes) -> None:
        self.id = id
        self._messages = messages
        self._body = body
        self.size = len(body)

    @property
    def messages(self) -> tuple[dict[str, Any], ...]:
        """The conversation the reply ends (what ``previous_response_id`` continues)."""
        if self._messages is None:
            self._messages = self._converse()
        return self._messages

    @property
    def body(self) -> bytes:
        """The reply's body (what ``GET`` returns); a compact copy writes it on every read."""
        return self._body if self._body is not None else self._write()

    def _converse(self) -> tuple[dict[str, Any], ...]:
        raise NotImplementedError

    def _write(self) -> bytes:
        raise NotImplementedError

    def __reduce__(self) -> tuple[type[Stored], tuple[str, tuple[dict[str, Any], ...], bytes]]:
        return (Stored, (self.id, self.messages, self.body))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stored):
            return NotImplemented
        return (self.id, self.messages, self.body) == (other.id, other.messages, other.body)

    __hash__ = None  # type: ignore[assignment]  # equal by value, and not immutable

    def __repr__(self) -> str:
        return f"Stored(id={self.id!r}, messages={self.messages!r}, body={self.body!r})"


NO_QUERY: Mapping[str, str] = MappingProxyType({})


class Target(NamedTuple):
    """Where a request went: its path and query, for protocols whose URL carries part of the
    request (Gemini names the model and the method in the path, the stream's framing in the
    query); the others read only the body."""

    path: str = ""
    query: Mapping[str, str] = NO_QUERY


NOWHERE = Target()


class Protocol:
    """The interface; the defaults are OpenAI's (Bearer auth, ``{"error": {...}}`` bodies).

    The hooks, in the order a request meets them:

    - routing: ``routes``, ``prefixes``, ``for_route``, ``claims``;
    - auth: ``api_key``, ``key_headers``, ``auth_error``;
    - parsing: ``parse``, ``immediate`` (an answer made from the request alone),
      ``cache_plan`` (prompt caching), ``model_list`` / ``model`` / ``unknown_model``;
    - writing a reply: ``body``, ``content_type``, ``pieces`` (a large body in slices),
      ``frames`` / ``end`` / ``stream_content_type`` (a stream), ``reply_summary`` (the
      journal's view), ``stored`` (what ``keeps`` keeps);
    - compiling a reply (``compiled.py``): ``shape`` (None: never compiled), ``derived``,
      ``echoed``;
    - errors and faults: ``error_type``, ``error_body``, ``stream_error``, ``failed``,
      ``malformed``;
    - headers: ``headers`` (``request_id_headers``), ``rate_limit_headers``;
    - recording: ``read_body``, ``read_stream``, ``versioned_base``.
    """

    name: ClassVar[str]
    routes: ClassVar[tuple[str, ...]]
    """Paths (aiohttp patterns), each served under every one of ``prefixes``."""
    versioned_base: ClassVar[bool] = True
    """Whether a client's base URL ends with the API version (OpenAI's ``.../v1``), so the
    recorder drops the local prefix before the upstream's base; False where the client adds
    the version to a bare host (Google's)."""
    id_prefix: ClassVar[str]
    stream_type: ClassVar[str] = SSE
    answers_unmatched: ClassVar[bool] = False
    """True where a request no scenario matches still gets an answer (embeddings)."""
    cache_apart: ClassVar[bool] = False
    """True where usage counts cached prompt tokens apart from ``input_tokens`` (Anthropic);
    elsewhere they are part of the prompt's count (OpenAI, Gemini)."""
    prefixes: ClassVar[tuple[str, ...]] = ("/v1", "")
    """What the routes are served under: OpenAI's with and without ``/v1`` (SDKs given a
    base URL without it call the bare path); a relay's own APIs under their path alone."""
    creates: ClassVar[bool] = False
    """True where every request creates something (a task): never answered from the memo."""
    keeps: ClassVar[bool] = False
    """True where a reply is kept for later requests to refer to (``stored``)."""

    def for_route(self, route: str) -> Protocol:
        """The protocol that serves ``route``: itself, or a sibling configured for it where
        one protocol has several operations (image generations and edits, a relay's two
        task services), so ``parse`` knows which it is reading."""
        return self

    key_variable: ClassVar[str] = "OPENAI_API_KEY"
    """The environment variable a real client of this protocol takes its key from: where
    ``mockserver drift`` looks for the upstream's key unless told (``--api-key-env``)."""

    def api_key(
        self, headers: Mapping[str, str], query: Mapping[str, str] = NO_QUERY
    ) -> str | None:
        return bearer_token(headers)

    def key_headers(self, key: str) -> dict[str, str]:
        """The headers that carry ``key`` to a real upstream, as this protocol's SDK sends it."""
        return {"Authorization": f"Bearer {key}"}

    def auth_error(self, headers: Mapping[str, str], key: str | None) -> APIError:
        """The 401 for a request with no usable key (``key`` None) or a key not accepted."""
        if key is None:
            return APIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="invalid_api_key" if headers.get("Authorization") else None,
            )
        shown = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "***"
        return APIError(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")

    def parse(
        self, raw: bytes, headers: Mapping[str, str], lookup: Lookup, target: Target = NOWHERE
    ) -> Request:
        raise NotImplementedError

    def cache_plan(self, req: Request, scope: str, ttl: float) -> Plan | None:
        """What prompt caching (``serve --prompt-cache``) asks of the state for this request:
        OpenAI's automatic prefix caching, unless the protocol has rules of its own; None
        where nothing is cached."""
        return automatic(conversation_blocks(req), scope, ttl)

    def immediate(self, request: Request) -> bytes | None:
        """A JSON reply computed from the request alone, with no scenario (Gemini's
        ``countTokens``): nothing is matched, so no step advances; None for the others."""
        return None

    def stream_content_type(self, request: Request) -> str:
        """The stream's ``Content-Type`` (Gemini's depends on the query)."""
        return self.stream_type

    def claims(self, path: str, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        """Whether a request to a route several protocols share (``GET /v1/models``) comes from
        this protocol's clients; the first protocol that claims it answers in its shape."""
        return False

    def model_list(self, names: Sequence[str]) -> dict[str, Any]:
        """The body of ``GET /models``."""
        return {"object": "list", "data": [self.model(m) for m in names]}

    def model(self, name: str) -> dict[str, Any]:
        """One model, as ``GET /models/{model}`` and the list show it."""
        return {"id": name, "object": "model", "created": 0, "owned_by": "mockserver"}

    def unknown_model(self, name: str) -> APIError:
        return APIError(
            404,
            f"The model '{name}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )

    def read_body(self, body: Any) -> Captured | None:
        """An upstream's JSON reply read back as the neutral reply (recording); None where
        this protocol's replies are forwarded but not recorded."""
        return None

    def read_stream(self, events: list[Event]) -> Captured | None:
        """An upstream's stream read back, with every piece of text and when it came; None
        where this protocol's streams are forwarded but not recorded."""
        return None

    def error_type(self, err: APIError) -> str:
        """The ``type`` this protocol sends for ``err``: the one stated, or its own for the
        status (a scenario's ``error:`` without ``type`` states none)."""
        return err.type or openai_error_type(err.status)

    def error_body(self, err: APIError, request_id: str) -> bytes:
        return err.body_bytes()

    def body(self, answer: Answer) -> bytes:
        raise NotImplementedError

    def content_type(self, answer: Answer) -> str:
        """The ``Content-Type`` of ``body``: JSON, or a file's type (audio) or plain text."""
        return JSON

    def reply_summary(self, answer: Answer) -> dict[str, Any]:
        """What the journal adds to its summary of a reply that is not only text (a file's
        format and length; a transcript generated with the body). Called after ``body`` or
        ``frames``, so it can read what they kept in ``answer.wire``."""
        return {}

    def pieces(self, answer: Answer) -> Iterator[bytes] | None:
        """The body in pieces, when building it whole would hold the event loop (a batch of
        thousands of vectors): the pipeline writes them out one by one and serves other
        requests in between. None where ``body`` is cheap enough."""
        return None

    def frames(self, answer: Answer) -> Iterable[Frame]:
        """Every frame of a stream but the last (``end``), made as they are taken (a heavy
        reply is written out as it is made); protocols that never stream (embeddings) never
        get here, since their requests have ``stream`` false."""
        raise NotImplementedError

    def end(self, answer: Answer, sent: int) -> bytes:
        """What closes a stream that went well; ``no_done`` leaves it out."""
        return b""

    def stream_error(self, err: APIError, answer: Answer, sent: int) -> bytes:
        """An error in the middle of a stream, after ``sent`` frames."""
        return b"data: " + err.body_bytes() + b"\n\n"

    def failed(self, err: APIError, answer: Answer, sent: int) -> bytes:
        """How a stream reports that the model failed (the ``failed`` fault)."""
        return self.stream_error(err, answer, sent)

    def malformed(self) -> bytes:
        return b'data: {"id": "broken", "choices": [\n\n'

    def stored(
        self, answer: Answer, raw: bytes, body: bytes | None, filled: tuple[Any, ...] | None = None
    ) -> Stored | None:
        """What to keep of this reply for later requests to refer to; asked only of protocols
        that ``keeps`` (most keep nothing). ``raw``: the request as sent, which a copy may keep
        instead of what was parsed from it; ``body``: the plain body, when the reply was one;
        ``filled``: a compiled stream's values (``compiled.values``), which fill the compiled
        plain body too."""
        return None

    def kept(
        self,
        request: Request,
        raw: bytes,
        rendered: Rendered,
        id: str,
        seed: str,
        body: bytes | None,
        plain: Any,
        filled: tuple[bytes, ...] | None,
    ) -> Stored | None:
        """``stored`` for a compiled reply, from the request, the rendered reply, its id and
        call ids' seed and its values, no ``Answer``: what a kept compiled reply
        (``Pipeline._fill``) stores. ``body``: the plain body, or None where ``plain``, the
        compiled plain body (a ``compiled.Mold``), and ``filled`` write it. A protocol that
        ``keeps`` and compiles its replies (``shape``) must write it (and ``stored`` with it):
        returning None here would drop every stored copy the fast path makes, silently."""
        raise NotImplementedError(f"{type(self).__name__} keeps replies but has no kept()")

    def shape(self, request: Request) -> Hashable:
        """What of the request, besides the reply, decides the bytes of its answer and its
        content type (whether a stream ends with usage; Gemini's framing): a reply is compiled
        once per shape (``compiled``), and the pipeline keeps it per step and shape. None
        where the general path writes every answer: this protocol's, or this request's (one
        asking for logprobs)."""
        return None

    def derived(self, rendered: Rendered, id: str, seed: str) -> tuple[str, ...]:
        """Texts of a reply computed from its id or call ids' seed, as written (signatures): a
        compiled reply has a hole for each."""
        return ()

    def echoed(self, request: Request) -> tuple[str, ...]:
        """The request's parameters a reply repeats, each as written (the Responses object):
        a compiled reply has a hole for each. A writer keeps them in ``answer.wire["echo"]``
        (where a compiling probe puts its markers)."""
        return ()

    request_id_headers: ClassVar[tuple[str, ...]] = ("x-request-id",)
    """The headers that carry a reply's request id."""

    def headers(self, request_id: str) -> dict[str, str]:
        """Headers every reply of this protocol carries."""
        return dict.fromkeys(self.request_id_headers, request_id)

    def rate_limit_headers(self, ticket: Ticket) -> dict[str, str]:
        """Where a request stands in its rate-limit window."""
        return ticket.headers()


def sse_event(name: str, data: Mapping[str, Any]) -> bytes:
    """An SSE event with an ``event:`` line, as the Responses and Messages streams send."""
    return f"event: {name}\ndata: {dumps(data)}\n\n".encode()


def arguments_object(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's ``input`` and Google's ``args`` must be."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}


def signature(id: str, thinking: str) -> bytes:
    """A thinking signature of the reply ``id``: deterministic, and shaped like a real one
    (opaque bytes, which the protocol encodes in base64)."""
    return bytes.fromhex(digest(id, thinking) + digest(thinking, id))
