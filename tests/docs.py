"""The documentation's code blocks, for the tests that prove them.

Every page under ``docs/`` (and ``README.md``) is read; fenced blocks are kept by language.
Two conventions hold the docs to the code (``tests/test_docs.py`` enforces both):

- every ```yaml block is a scenario file: it loads, and each scenario in it is reached by a
  request (``yaml_blocks()`` lists them; ``REACHES`` in ``tests/test_docs.py`` holds the
  requests, except for scenarios matching only a plain last user message). YAML that is not a
  scenario file (a CI workflow, a compose file) goes in a ```yml block;
- every ```python block starts with ``# example: NAME`` (NAME unique across the docs), and some
  test runs it: ``example("NAME")`` returns its text.

Fences may be indented (inside a list item, an admonition or a content tab): the indentation of
the opening fence is taken off every line of the block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_TITLE = re.compile(r'title="(?P<title>[^"]*)"')
_EXAMPLE = re.compile(r"#\s*example:\s*(?P<name>\S+)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: ``page`` relative to the repository, ``index`` counted per page and
    language from 0, ``line`` of its opening fence (from 1), its text without the fences."""

    page: str
    index: int
    language: str
    line: int
    text: str
    title: str = ""
    """The fence's ``title="..."`` (a file's name, as in ```yaml title="scenarios/x.yaml")."""

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def name(self) -> str | None:
        """The NAME of a first line ``# example: NAME``, if the block has one."""
        first = self.text.split("\n", 1)[0]
        found = _EXAMPLE.fullmatch(first.strip())
        return found.group("name") if found else None


def pages() -> list[Path]:
    """README.md, then every Markdown page under docs/ in path order."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def parse(text: str, page: str) -> list[Block]:
    """The fenced blocks of one Markdown text, in order."""
    found: list[Block] = []
    counts: dict[str, int] = {}
    lines = text.split("\n")
    at = 0
    while at < len(lines):
        opening = _OPEN.match(lines[at])
        if opening is None:
            at += 1
            continue
        indent, fence = opening.group("indent"), opening.group("fence")
        info = opening.group("info").strip().lstrip("{").lstrip(".")
        language = re.split(r"[\s{}]", info, maxsplit=1)[0].lower() if info else ""
        body: list[str] = []
        end = at + 1
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        while end < len(lines) and not closing.match(lines[end]):
            line = lines[end]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            end += 1
        index = counts.get(language, 0)
        counts[language] = index + 1
        content = "\n".join(body) + "\n" if body else ""
        titled = _TITLE.search(info)
        title = titled.group("title") if titled else ""
        found.append(Block(page, index, language, at + 1, content, title))
        at = end + 1
    return found


@cache
def _all() -> tuple[Block, ...]:
    return tuple(block for path in pages() for block in parse(path.read_text(), _relative(path)))


def blocks(language: str) -> list[Block]:
    """Every block of ``language`` (``yaml``, ``python``, ``console``...) in every page."""
    return [block for block in _all() if block.language == language.lower()]


def yaml_blocks() -> list[tuple[str, int, str]]:
    """``(page, index, text)`` for every ```yaml block: each is a scenario file."""
    return [(block.page, block.index, block.text) for block in blocks("yaml")]


def python_blocks() -> list[Block]:
    """Every ```python block; each must start with ``# example: NAME``."""
    return blocks("python")


def titled(title: str) -> str:
    """The text of the one block whose fence says ``title="TITLE"`` (a file a page shows)."""
    found = [block for block in _all() if block.title == title]
    if len(found) != 1:
        where = ", ".join(block.where for block in found) or "no page"
        raise LookupError(f'{len(found)} blocks have title="{title}": {where}')
    return found[0].text


def example(name: str) -> str:
    """The text of the one ```python block whose first line is ``# example: NAME``."""
    found = [block for block in python_blocks() if block.name == name]
    if len(found) == 1:
        return found[0].text
    if not found:
        searched = ", ".join(_relative(path) for path in pages())
        raise LookupError(f"no ```python block starts with '# example: {name}' in {searched}")
    where = ", ".join(block.where for block in found)
    raise LookupError(f"{len(found)} ```python blocks start with '# example: {name}': {where}")
