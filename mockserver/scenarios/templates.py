"""Reply text templates: ``{{ name }}`` placeholders filled from the request and seeded fake data.

Templates are data, never code: a placeholder is a dotted name from a fixed vocabulary, checked
when the file is loaded. Nothing a file says can reach Python objects, files or the network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.request import Request, field_at

if TYPE_CHECKING:
    from faker import Faker

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")

FAKE_PROVIDERS = frozenset(
    {
        "name", "first_name", "last_name", "email", "user_name", "phone_number", "company",
        "job", "city", "country", "address", "street_address", "postcode", "url", "domain_name",
        "word", "sentence", "paragraph", "text", "uuid4", "date", "time", "iso8601",
        "color_name", "currency_code", "language_name", "catch_phrase", "bs", "pyint",
        "pybool", "pyfloat",
    }
)  # fmt: skip

_REQUEST_NAMES = ("model", "last_user", "system", "tool_name", "tool_result")


@dataclass(frozen=True)
class Context:
    """What a template may read: the request, the regex captures of the match, a seeded Faker."""

    request: Request
    captures: Mapping[str, str]
    faker: Callable[[], Faker]


def _resolve(name: str, ctx: Context) -> str:
    root, _, rest = name.partition(".")
    request = ctx.request
    if root == "model":
        return request.model
    if root == "last_user":
        return request.last_user
    if root == "system":
        return request.system
    if root == "tool_name":
        names = request.tool_names
        return names[0] if names else ""
    if root == "tool_result":
        return request.tool_result
    if root == "match":
        return ctx.captures.get(rest, "")
    if root == "request":
        value = field_at(request.body, rest)
        return "" if value is None or isinstance(value, dict | list) else str(value)
    return str(getattr(ctx.faker(), rest)())


def check_name(name: str) -> str | None:
    """Why ``name`` cannot be a placeholder, or None when it can."""
    root, _, rest = name.partition(".")
    if root in _REQUEST_NAMES and not rest:
        return None
    if root in ("match", "request") and rest:
        return None
    if root == "fake" and rest in FAKE_PROVIDERS:
        return None
    if root == "fake":
        return f"unknown fake data '{rest}'; expected one of: {', '.join(sorted(FAKE_PROVIDERS))}"
    return (
        f"unknown placeholder '{{{{ {name} }}}}'; expected one of: "
        + ", ".join(_REQUEST_NAMES)
        + ", match.<group>, request.<field>, fake.<kind>"
    )


@dataclass(frozen=True)
class Template:
    """Literal text and placeholders, alternating: ``parts[0]`` literal, ``parts[1]`` a name..."""

    parts: tuple[str, ...]
    in_json: bool = False  # placeholders sit inside JSON strings: escape what they insert

    def render(self, ctx: Context) -> str:
        parts = self.parts
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            value = _resolve(parts[i], ctx)
            out.append(json.dumps(value)[1:-1] if self.in_json else value)
            out.append(parts[i + 1])
        return "".join(out)


def compile_template(text: str, in_json: bool = False) -> tuple[str | Template, list[str]]:
    """A plain string when ``text`` has no placeholder (so it can be pre-rendered), and what is
    wrong with each of its placeholders: all of them, so one run reports every problem."""
    parts = _PLACEHOLDER.split(text)
    if len(parts) == 1:
        return text, []
    problems = [p for p in map(check_name, parts[1::2]) if p]
    return Template(tuple(parts), in_json), problems


def blank_placeholders(text: str) -> str:
    """``text`` with every placeholder emptied, to check the JSON around them at load."""
    return _PLACEHOLDER.sub("", text)
