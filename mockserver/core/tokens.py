"""A local, deterministic tokenizer.

It never loads a vocabulary: it splits text with the pre-tokenizer pattern of OpenAI's
cl100k/o200k encodings (words with their leading space, 1-3 digit groups, punctuation runs,
whitespace) and then cuts long pieces and CJK text the way BPE usually does. On English prose
the counts land within a few percent of tiktoken's; they are exact only in being repeatable.
"""

from __future__ import annotations

import re
from functools import lru_cache

_PIECE = re.compile(
    r"'(?:[sdmt]|ll|ve|re)"
    r"|[^\r\n\w]?[^\W\d_]+"
    r"|\d{1,3}"
    r"| ?(?:[^\s\w]|_)+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+"
)
# The same pattern for ASCII text only, where it costs less (on a short English text: 15.4k
# instructions for the Unicode one, 12.9k with ASCII categories, 11.2k as here): every class
# spelled out as ranges (a category test per character costs more than a range), and the runs
# that cannot give anything back made possessive (each alternative's classes are disjoint
# from what may follow them, so backtracking into them never finds a match; it only costs
# time). ``\s`` is spelled out too: Unicode's also holds the separators \x1c-\x1f, ASCII's
# does not.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f "
_ASCII_PIECE = re.compile(
    r"'(?:[sdmt]|ll|ve|re)"
    r"|[^\r\n0-9A-Za-z_]?+[A-Za-z]++"
    r"|[0-9]{1,3}+"
    rf"| ?+[^{_SPACE}0-9A-Za-z]++[\r\n]*+"
    rf"|[{_SPACE}]*[\r\n]+"
    rf"|[{_SPACE}]+(?![^{_SPACE}])"
    rf"|[{_SPACE}]+",
)
_LONG = 12
_CUT = 8


def _is_wide(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uf900" <= ch <= "\ufaff"


def _split_piece(piece: str) -> list[str]:
    if any(_is_wide(ch) for ch in piece):
        return list(piece)
    if len(piece) > _LONG:
        return [piece[i : i + _CUT] for i in range(0, len(piece), _CUT)]
    return [piece]


def split_tokens(text: str) -> list[str]:
    """Split ``text`` into tokens whose concatenation is ``text``."""
    if text.isascii():  # the common case: no CJK, and most often no long pieces
        pieces: list[str] = _ASCII_PIECE.findall(text)
        if max(map(len, pieces), default=0) <= _LONG:
            return pieces
    else:
        pieces = _PIECE.findall(text)
    out: list[str] = []
    for piece in pieces:
        out.extend(_split_piece(piece))
    return out


def _piece_count(piece: str) -> int:
    """How many tokens ``_split_piece`` cuts a piece into, without cutting it."""
    if any(_is_wide(ch) for ch in piece):
        return len(piece)
    if len(piece) > _LONG:
        return -(-len(piece) // _CUT)
    return 1


_STOPS = ".,!?;:"


def _count_words(text: str) -> int | None:
    """The pattern's count for ASCII words between single spaces, each letters or digits with
    punctuation after them (a chat message's usual text), found by splitting, not by the
    pattern (a fifth of its work); None for any other text. The pieces, as the pattern cuts
    them: a word's letters with the space before them, or the space alone before digits, then
    digit groups of 3, then the punctuation run (with the space, when the word is only that)."""
    total = 0
    space = 0  # the first word has no space before it
    for word in text.split(" "):
        core = word.rstrip(_STOPS)
        if core.isalpha():
            size = len(core) + space  # a piece's tokens as ``_piece_count`` has them
            total += 1 if size <= _LONG else -(-size // _CUT)
        elif core.isdigit():
            total += space + -(-len(core) // 3)
        elif core or not word:  # a word of other characters, or two spaces running
            return None
        if core != word:
            size = len(word) - len(core) + (0 if core else space)
            total += 1 if size <= _LONG else -(-size // _CUT)
        space = 1
    return total


@lru_cache(maxsize=4096)
def count_tokens(text: str) -> int:
    """``len(split_tokens(text))``, counted without building the cut pieces."""
    if not text:
        return 0
    if text.isascii():
        words = _count_words(text)
        if words is not None:
            return words
        pieces: list[str] = _ASCII_PIECE.findall(text)
        if len(text) <= _LONG or max(map(len, pieces)) <= _LONG:
            return len(pieces)
    else:
        pieces = _PIECE.findall(text)
    return sum(map(_piece_count, pieces))


def count_prompt_tokens(messages: list[dict[str, object]], tools_json: str | None) -> int:
    """Prompt tokens the way OpenAI's cookbook counts them: 3 per message, 3 to prime the reply."""
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            if isinstance(value, str):
                total += count_tokens(value)
                if key == "name":
                    total += 1
            elif isinstance(value, list):
                for part in value:
                    if isinstance(part, dict):
                        text = part.get("text")
                        if isinstance(text, str):
                            total += count_tokens(text)
    if tools_json:
        total += count_tokens(tools_json)
    return total
