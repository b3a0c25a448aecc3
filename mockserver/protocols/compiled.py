"""Compiled replies: a template-free reply's bytes made once, with holes for what each request
changes (its id and call ids, ``created``, the model, the prompt's count in usage, what the
protocol repeats of the request, signatures derived from the id).

A reply is compiled by the protocol's own writer, run on a probe: an answer whose per-request
values are markers that cannot occur in a reply. The bytes are cut at the markers into the
segments between them, so a request costs one ``join`` of the segments and its values (not
``%``, which copies a format string byte by byte: 5.6k instructions for a chat body, the
join 2k). The cut is checked once
against a second probe with other markers, whose bytes it must give exactly: a reply whose bytes
depend on a value in a way the holes do not capture (a marker-like text in the reply itself)
stays on the general path for good. Nothing here knows a wire format.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from ..scenarios.render import Envelope, Rendered, usage
from . import HEAVY, Answer, Frame, dumps_text

if TYPE_CHECKING:
    from ..core.request import Request
    from . import Protocol

Values = tuple[bytes, ...]
"""One request's fill, each value as written: id, call id seed, created, model (JSON), prompt,
total, then the protocol's derived and echoed texts (see ``values``)."""


def _mark(name: str) -> str:
    """A text no reply contains: private-use characters, which JSON writes unescaped."""
    return f"\ue000{name}\ue001"


SEED = 1
"""Where the call ids' seed stands among a compiled reply's values (``own_values``)."""


def own_values(id: str, seed: str, created: int, model: str, prompt: int, total: int) -> Values:
    """The values every compiled reply is filled with: the id, the call ids' seed, ``created``,
    the model, the prompt and total tokens."""
    return (id.encode(), seed.encode(), b"%d" % created, dumps_text(model).encode(),
            b"%d" % prompt, b"%d" % total)  # fmt: skip


_SEP = b"\0"


def packed(values: Values) -> bytes:
    """``values`` as one bytes object, for a copy kept long (a stored response): one object
    to allocate, keep and free cold, not one per value. No value contains a NUL byte: ids
    and numbers are ASCII, and JSON writes a NUL as ``\\u0000``."""
    return _SEP.join(values)


def unpacked(data: bytes) -> Values:
    """The values ``packed`` joined."""
    return tuple(data.split(_SEP))


def filling(protocol: Protocol, request: Request, rendered: Rendered, id: str, seed: str,
            created: int, model: str, prompt: int, total: int,
            echo: tuple[str, ...] | None = None) -> Values:  # fmt: skip
    """What a request fills the holes with, in their order: its own values, then the
    protocol's derived and echoed texts (``echo``: those, when made already). From scalars, so
    a kept compiled reply (``Pipeline._fill``) makes no ``Answer``."""
    own = own_values(id, seed, created, model, prompt, total)
    extra = protocol.derived(rendered, id, seed)
    extra += protocol.echoed(request) if echo is None else echo
    return own + tuple(map(str.encode, extra)) if extra else own


def values(protocol: Protocol, answer: Answer) -> Values:
    """``filling`` for an answer (the echoed texts its writer made, or a probe's markers)."""
    env, used = answer.env, answer.usage
    return filling(protocol, answer.request, answer.rendered, env.id, env.call_id_seed,
                   env.created, env.model, used.prompt, used.total,
                   answer.wire.get("echo"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Mold:
    """Bytes with holes: the segments between the holes, joined with the values."""

    text: bytes
    """The bytes, where there is no hole."""
    segments: tuple[bytes, ...]
    take: Any
    """Picks from ``segments + values`` the segments and values in the order they are written
    (None: no hole)."""
    size: int
    """The length of what it writes, its holes aside (what a stored copy that writes it when
    read counts against the store's bound)."""

    def fill(self, values: Values) -> bytes:
        take = self.take
        return self.text if take is None else b"".join(take(self.segments + values))

    @classmethod
    def cut(cls, data: bytes, markers: Sequence[bytes]) -> Mold:
        """``data`` with each occurrence of ``markers[i]`` made hole ``i``."""
        index = {m: i for i, m in enumerate(markers) if m}
        pattern = b"|".join(re.escape(m) for m in sorted(index, key=len, reverse=True))
        parts = re.split(b"(" + pattern + b")", data) if index else [data]
        if len(parts) == 1:
            return cls(data, (), None, len(data))
        segments = tuple(parts[::2])
        order = [k // 2 if k % 2 == 0 else len(segments) + index[part]
                 for k, part in enumerate(parts)]  # fmt: skip
        return cls(b"", segments, itemgetter(*order), sum(map(len, segments)))


@dataclass(frozen=True, slots=True)
class Stream:
    """A compiled stream: every frame but the end and their pacing, the end, and all of it
    joined (a stream sent without pauses goes out as one body)."""

    frames: tuple[Mold, ...]
    pacing: tuple[tuple[bool, float | None], ...]
    end: Mold
    whole: Mold

    def filled(self, values: Values) -> list[Frame]:
        """The frames, for a stream with pauses between them."""
        return [Frame(m.fill(values), paced, delay)
                for m, (paced, delay) in zip(self.frames, self.pacing, strict=True)]  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Probe:
    answer: Answer
    values: Values


def _probe(protocol: Protocol, answer: Answer, tag: str, n: int) -> _Probe:
    """``answer`` with a marker, or a number of ``n``'s, wherever a request puts its own."""
    env = answer.env
    probe_env = Envelope(id=_mark(f"id{tag}"), created=int(f"7{n}" * 9 + "1"),
                         model=_mark(f"model{tag}"), system_fingerprint=env.system_fingerprint,
                         call_id_seed=_mark(f"seed{tag}"))  # fmt: skip
    fixed = answer.reply.usage if answer.reply is not None else None
    prompt = int(f"8{n}" * 9 + "3")
    used = usage(answer.request, answer.rendered, fixed, prompt)
    echo = tuple(_mark(f"echo{i}{tag}") for i in range(len(protocol.echoed(answer.request))))
    probe = replace(answer, env=probe_env, usage=used, wire={"echo": echo})
    return _Probe(probe, values(protocol, probe))


def _markers(a: Values, b: Values) -> list[bytes]:
    """Each hole's marker in the first probe; none where both probes agree (a usage figure
    the scenario states is the same for every request: not a hole)."""
    return [b"" if x == y else x for x, y in zip(a, b, strict=True)]


def _compile_body(protocol: Protocol, answer: Answer) -> Mold | None:
    a, b = _probe(protocol, answer, "a", 1), _probe(protocol, answer, "b", 2)
    body = Mold.cut(protocol.body(a.answer), _markers(a.values, b.values))
    return body if body.fill(b.values) == protocol.body(b.answer) else None


def _compile_stream(protocol: Protocol, answer: Answer) -> Stream | None:
    a, b = _probe(protocol, answer, "a", 1), _probe(protocol, answer, "b", 2)
    marks = _markers(a.values, b.values)
    first, second = list(protocol.frames(a.answer)), list(protocol.frames(b.answer))
    if [f[1:] for f in first] != [f[1:] for f in second]:
        return None
    ending = protocol.end(a.answer, len(first))
    stream = Stream(
        frames=tuple(Mold.cut(f.data, marks) for f in first),
        pacing=tuple((f.paced, f.delay) for f in first),
        end=Mold.cut(ending, marks),
        whole=Mold.cut(b"".join(f.data for f in first) + ending, marks),
    )
    expected = [f.data for f in second] + [protocol.end(b.answer, len(second))]
    got = [m.fill(b.values) for m in (*stream.frames, stream.end)]
    return stream if got == expected and stream.whole.fill(b.values) == b"".join(expected) else None


def _compiled(protocol: Protocol, answer: Answer, stream: bool, now: bool = False) -> Any:
    rendered = answer.rendered
    if not rendered.cached or rendered.pieces > HEAVY:
        return None
    shape: Hashable = protocol.shape(answer.request)
    if shape is None:
        return None
    key = (protocol, stream, shape, answer.env.system_fingerprint)
    made = rendered.wire.get(key, _UNSEEN)
    if made is _UNSEEN and not now:  # the first time: most replies that come once never again
        rendered.wire[key] = _ONCE
        return None
    if made is _ONCE or made is _UNSEEN:
        made = _compile_stream(protocol, answer) if stream else _compile_body(protocol, answer)
        rendered.wire[key] = made
    return made


_UNSEEN, _ONCE = object(), object()
"""A reply is compiled the second time it is asked for in one shape: a rendered reply that
comes once (a ``max_tokens`` of its own) costs no compiling."""


def compiled_body(protocol: Protocol, answer: Answer, now: bool = False) -> Mold | None:
    """The answer's plain body compiled, made the second time it is needed (``now``: this
    time) and kept with the rendered reply; None where the general path writes it: a reply
    with a template, a heavy one, a request shape the protocol does not compile
    (``Protocol.shape``), a failed check."""
    made: Mold | None = _compiled(protocol, answer, False, now)
    return made


def compiled_stream(protocol: Protocol, answer: Answer) -> Stream | None:
    """The answer's stream compiled (its frames, pacing and end), likewise."""
    made: Stream | None = _compiled(protocol, answer, True)
    return made
