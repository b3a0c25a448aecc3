"""Prompt caching by each provider's rules: which prefixes a prompt may read, which it writes.

Pure arithmetic over a prompt cut into ``Block``s in cache order (tools, then system or
instructions, then the messages). Two rules:

- ``automatic`` (OpenAI chat and Responses, Gemini's implicit caching): a prompt of at least
  ``minimum`` tokens reads the longest prefix seen before, counted at ``minimum`` and then in
  steps of ``step`` tokens (OpenAI: 1,024 and 128), and writes every such prefix it has.
- ``explicit`` (Anthropic Messages): ``cache_control`` breakpoints; a breakpoint's prefix is
  written when it holds at least the model's minimum; a request reads the latest prefix, at a
  breakpoint or up to 20 blocks before one, that an earlier request wrote.

A prefix is known by a digest of everything up to it, so a changed early block changes every
later digest. The store (in ``mockserver.state``) only answers "which of these digests are
live" and keeps the ones written; this module decides which digests to ask for and what the
answer costs. Sources: OpenAI's "Prompt caching" guide; Anthropic's "Prompt caching" page
(breakpoints, minimums per model, the 20-block lookback, 5m/1h TTLs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .request import Request, message_text
from .tokens import count_prompt_tokens, split_tokens

LOOKBACK = 20
"""Anthropic checks for a written prefix at a breakpoint and up to 20 blocks before it."""
MAX_BREAKPOINTS = 4
TTLS = {"5m": 300.0, "1h": 3600.0}


@dataclass(frozen=True, slots=True)
class Block:
    """A run of the prompt: its text (what the digest reads), the tokens usage counts for it
    (the text's, plus ``framing`` tokens a message costs around its text), and the TTL of a
    ``cache_control`` breakpoint that ends at it."""

    text: str
    framing: int = 0
    ttl: str | None = None

    @property
    def tokens(self) -> int:
        return self.framing + len(split_tokens(self.text))


@dataclass(slots=True)
class Outcome:
    """What caching did for one request: usage figures and what the journal shows."""

    read: int = 0
    """Prompt tokens read from the cache (``cached_tokens``, ``cache_read_input_tokens``)."""
    written_5m: int = 0
    written_1h: int = 0
    breakpoint: int | None = None
    """Which breakpoint's prefix (0-based, in request order) was read (explicit rule)."""
    eligible: bool = False
    """The prompt was long enough to cache at all."""

    @property
    def written(self) -> int:
        return self.written_5m + self.written_1h

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {"hit": self.read > 0, "read": self.read, "written": self.written}
        if self.written_1h:
            out["written_1h"] = self.written_1h
        if self.breakpoint is not None:
            out["breakpoint"] = self.breakpoint + 1  # people count from 1
        return out


@dataclass(slots=True)
class Plan:
    """The digests one request asks about and writes, and how to read the store's answer."""

    ask: list[str] = field(default_factory=list)
    write: list[tuple[str, float]] = field(default_factory=list)
    """(digest, seconds to live) written once the store has answered."""
    settle: Callable[[Sequence[bool]], Outcome] = lambda live: Outcome()


class _Prefixes:
    """Digests of a prompt's prefixes, by token position, computed once in one pass."""

    def __init__(self, blocks: Sequence[Block]) -> None:
        self.blocks = blocks
        self.ends: list[int] = []  # token position after each block
        position = 0
        for block in blocks:
            position += block.tokens
            self.ends.append(position)
        self.total = position

    def at(self, positions: Iterable[int]) -> dict[int, str]:
        """The digest of the prefix of each position (ascending), cut inside a block by
        tokens; framing tokens count as the block's start (a role marker)."""
        wanted = sorted(set(positions))
        out: dict[int, str] = {}
        h = hashlib.blake2b(digest_size=16)
        position = 0
        k = 0
        for block, end in zip(self.blocks, self.ends, strict=True):
            if k == len(wanted):
                break
            h.update(b"\x00%d\x00" % block.framing)
            if wanted[k] > end:  # no cut inside: take the block whole
                h.update(block.text.encode())
                position = end
                continue
            position += block.framing
            pieces = split_tokens(block.text)
            i = 0
            while k < len(wanted) and wanted[k] <= end:
                cut = max(0, wanted[k] - position)
                if cut > i:
                    h.update("".join(pieces[i:cut]).encode())
                    i = cut
                out[wanted[k]] = h.copy().hexdigest()
                k += 1
            if i < len(pieces):
                h.update("".join(pieces[i:]).encode())
            position = end
        return out


def automatic(
    blocks: Sequence[Block], scope: str, ttl: float, minimum: int = 1024, step: int = 128
) -> Plan:
    """OpenAI's rule: the longest prefix seen before, from ``minimum`` in steps of ``step``."""
    prefixes = _Prefixes(blocks)
    if prefixes.total < minimum:
        return Plan()
    cuts = list(range(minimum, prefixes.total + 1, step))
    digests = prefixes.at(cuts)
    keys = [scope + digests[c] for c in cuts]

    def settle(live: Sequence[bool]) -> Outcome:
        read = max((c for c, hit in zip(cuts, live, strict=True) if hit), default=0)
        return Outcome(read=read, eligible=True)

    return Plan(ask=keys, write=[(k, ttl) for k in keys], settle=settle)


def explicit(blocks: Sequence[Block], scope: str, minimum: int) -> Plan:
    """Anthropic's rule: breakpoints write their prefixes (at least ``minimum`` tokens); the
    latest written prefix at a breakpoint, or up to ``LOOKBACK`` blocks before one, is read;
    what lies between it and the last breakpoint is written, billed by the TTL of the
    breakpoint that closes each stretch."""
    prefixes = _Prefixes(blocks)
    points = [i for i, b in enumerate(blocks) if b.ttl is not None]
    ends = prefixes.ends
    # Boundaries worth asking about: each breakpoint's, and those in its lookback window.
    looked: list[int] = sorted(
        {j for i in points for j in range(max(0, i - LOOKBACK + 1), i + 1) if ends[j] >= minimum}
    )
    if not looked:
        return Plan(settle=lambda live: Outcome())
    digests = prefixes.at(ends[j] for j in looked)
    keys = {j: scope + digests[ends[j]] for j in looked}
    eligible = [i for i in points if ends[i] >= minimum]

    def settle(live: Sequence[bool]) -> Outcome:
        found = {j for j, hit in zip(looked, live, strict=True) if hit}
        read_at, breakpoint = -1, None
        for n in range(len(points) - 1, -1, -1):  # the latest breakpoint first
            i = points[n]
            hit = next((j for j in range(i, max(-1, i - LOOKBACK), -1) if j in found), None)
            if hit is not None:
                read_at, breakpoint = hit, n
                break
        read = ends[read_at] if read_at >= 0 else 0
        out = Outcome(read=read, breakpoint=breakpoint, eligible=bool(eligible))
        start = read
        for i in eligible:
            if ends[i] <= start:
                continue
            stretch = ends[i] - start
            if blocks[i].ttl == "1h":
                out.written_1h += stretch
            else:
                out.written_5m += stretch
            start = ends[i]
        return out

    write = [(keys[i], TTLS.get(blocks[i].ttl or "5m", 300.0)) for i in eligible]
    return Plan(ask=[keys[j] for j in looked], write=write, settle=settle)


ANTHROPIC_MINIMUMS: tuple[tuple[str, int], ...] = (
    # (model name prefix, minimum cacheable tokens), most specific first. Anthropic's table.
    ("claude-opus-4-6", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-sonnet-4-6", 2048),
    ("claude-3-5-haiku", 2048),
    ("claude-3-haiku", 2048),
    ("claude-haiku-3", 2048),
)
ANTHROPIC_DEFAULT_MINIMUM = 1024
"""Sonnet 4.5, Sonnet 4, Opus 4.1, Opus 4, Sonnet 3.7 and any model the table does not name."""


def anthropic_minimum(model: str) -> int:
    found = (n for prefix, n in ANTHROPIC_MINIMUMS if model.startswith(prefix))
    return next(found, ANTHROPIC_DEFAULT_MINIMUM)


GEMINI_MINIMUMS: tuple[tuple[str, int], ...] = (
    # (model name prefix, minimum tokens for implicit caching). Google's table (2026-10).
    ("gemini-2.5-", 2048),
)
GEMINI_DEFAULT_MINIMUM = 4096
"""Gemini 3 and newer, and models the table does not name."""


def gemini_minimum(model: str) -> int:
    found = (n for prefix, n in GEMINI_MINIMUMS if model.startswith(prefix))
    return next(found, GEMINI_DEFAULT_MINIMUM)


def message_block(message: Mapping[str, Any], ttl: str | None = None) -> Block:
    """A message as one block: its text, and what usage counts around it (role, names...)."""
    text = message_text(message)
    if message.get("tool_calls"):
        text += json.dumps(message["tool_calls"], separators=(",", ":"))
    framing = count_prompt_tokens([dict(message)], None) - 3 - len(split_tokens(text))
    return Block(text, max(0, framing), ttl)


def conversation_blocks(request: Request) -> list[Block]:
    """The neutral request in cache order: the tools, then every message (system first, as
    the protocols place it), summing to the prompt's tokens but the 3 that prime the reply."""
    blocks = [Block(json.dumps(request.tools))] if request.tools else []
    blocks.extend(message_block(m) for m in request.messages)
    return blocks
