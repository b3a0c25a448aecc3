"""Credentials a request carries: the one list of where they travel, and how they are hidden.

The journal, the inspector and the recorder all read it, so a header added here (a provider's
new key header) is redacted everywhere at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, quote

CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",  # OpenAI, and Bearer auth everywhere
        "proxy-authorization",
        "x-api-key",  # Anthropic
        "api-key",  # Azure OpenAI
        "x-goog-api-key",  # Google Gemini
        "aikey",  # the relay's task APIs
        "cookie",
        "set-cookie",
        "openai-organization",  # not a secret, but it names the account
    }
)
"""Headers (lower case) whose values the mock never shows or writes down."""

CREDENTIAL_PARAMS = frozenset({"key", "api-key", "api_key"})
"""Query parameters that carry a key (Gemini's ``?key=``)."""

HIDDEN = "***"


def redact_header(name: str, value: str) -> str:
    """``value`` with its secret hidden: ``Bearer ***``, cookie names kept (``a=***; b=***``)."""
    lower = name.lower()
    if lower not in CREDENTIAL_HEADERS:
        return value
    if lower == "cookie":
        pairs = (p.strip().partition("=") for p in value.split(";") if p.strip())
        return "; ".join(f"{k}={HIDDEN}" if eq else HIDDEN for k, eq, _ in pairs)
    scheme, _, token = value.strip().partition(" ")
    return f"{scheme} {HIDDEN}" if token and lower.endswith("authorization") else HIDDEN


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: redact_header(name, value) for name, value in headers.items()}


def redact_target(target: str) -> str:
    """A path with its query string, credential parameters hidden (``?key=***&alt=sse``)."""
    path, mark, query = target.partition("?")
    if not mark:
        return target
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(k.lower() in CREDENTIAL_PARAMS for k, _ in pairs):
        return target
    shown = (
        f"{quote(k, safe='')}={HIDDEN if k.lower() in CREDENTIAL_PARAMS else quote(v, safe='')}"
        for k, v in pairs
    )
    return f"{path}?{'&'.join(shown)}"


def credentials(headers: Mapping[str, str]) -> list[str]:
    """The secrets themselves, long enough not to be ordinary words (8 characters or more),
    for redacting them wherever an upstream echoes them (recordings)."""
    out = []
    for name, value in headers.items():
        lower = name.lower()
        if lower not in CREDENTIAL_HEADERS:
            continue
        if lower == "cookie":
            secrets = [p.partition("=")[2].strip() for p in value.split(";")]
        elif lower == "set-cookie":  # its first pair; the rest are attributes (Path, Expires)
            secrets = [value.partition(";")[0].partition("=")[2].strip()]
        else:
            scheme, _, token = value.strip().partition(" ")
            secrets = [token.strip() if token else scheme]
        out += [s for s in secrets if len(s) >= 8]
    return out
