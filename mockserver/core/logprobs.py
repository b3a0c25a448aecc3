"""Log probabilities for a reply's tokens: plausible, and the same for the same reply every time.

A client that asks for logprobs (chat ``logprobs: true``, Responses ``include:
["message.output_text.logprobs"]``) gets one entry per token of the text, tokens as the mock's
tokenizer splits them, so their concatenation is the text. Each token's logprob is drawn from
its position and text (a hash, no randomness): mostly near 0, now and then a few nats below, as
a model's confident replies look. ``top_logprobs`` lists the token itself first, then
alternatives from a small vocabulary, sharing the probability left, so the list never sums past 1.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

from .tokens import split_tokens

MAX_TOP = 20
"""The most ``top_logprobs`` OpenAI gives per position."""

_ALTERNATIVES = (
    " the", ",", ".", " a", " and", " to", " of", " is", " in", " it", " that", " I", " you",
    " for", " on", " with", " this", " be", " not", " are", "\n", " as", " can", " or", " at",
)  # fmt: skip


def _draw(salt: str, position: int, token: str) -> tuple[float, int]:
    """A number in [0, 1) and a second draw, both fixed by the token and its place."""
    raw = hashlib.blake2b(f"{salt}\0{position}\0{token}".encode(), digest_size=12).digest()
    return int.from_bytes(raw[:8], "little") / 2.0**64, int.from_bytes(raw[8:], "little")


def token_logprobs(text: str, top: int, salt: str) -> list[dict[str, Any]]:
    """``[{"token", "bytes", "logprob", "top_logprobs": [{"token", "bytes", "logprob"}]}]``
    for each token of ``text``; ``top`` entries in each ``top_logprobs`` (0 to 20)."""
    out = []
    for position, token in enumerate(split_tokens(text)):
        u, pick = _draw(salt, position, token)
        logprob = -round(1e-6 + 4.0 * u**4, 6)
        item: dict[str, Any] = {
            "token": token,
            "bytes": list(token.encode()),
            "logprob": logprob,
            "top_logprobs": [],
        }
        if top:
            item["top_logprobs"].append(
                {"token": token, "bytes": item["bytes"], "logprob": logprob}
            )
            left = -math.expm1(logprob)  # 1 - p, without losing it when p is near 1
            share = 0.5
            start = pick % len(_ALTERNATIVES)
            others = [a for a in _ALTERNATIVES[start:] + _ALTERNATIVES[:start] if a != token]
            for other in others[: top - 1]:
                item["top_logprobs"].append(
                    {"token": other, "bytes": list(other.encode()),
                     "logprob": round(math.log(left * share), 6)}
                )  # fmt: skip
                share /= 2
        out.append(item)
    return out


def by_piece(items: list[dict[str, Any]], pieces: Sequence[str]) -> list[list[dict[str, Any]]]:
    """The entries a stream sends with each piece: those of the tokens that end in it (a piece
    cut by word or character holds several tokens, or none)."""
    out: list[list[dict[str, Any]]] = []
    ends = []
    total = 0
    for item in items:
        total += len(item["token"])
        ends.append(total)
    k = 0
    seen = 0
    for piece in pieces:
        seen += len(piece)
        mine = []
        while k < len(items) and ends[k] <= seen:
            mine.append(items[k])
            k += 1
        out.append(mine)
    if out and k < len(items):
        out[-1].extend(items[k:])
    return out


def without_bytes(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shape of Responses' text events, whose entries carry no ``bytes``."""
    return [
        {"token": i["token"], "logprob": i["logprob"],
         "top_logprobs": [{"token": t["token"], "logprob": t["logprob"]}
                          for t in i["top_logprobs"]]}
        for i in items
    ]  # fmt: skip
