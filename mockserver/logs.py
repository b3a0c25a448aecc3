"""Log output of ``serve``: human text lines or one JSON object per line.

The request path logs ``log.info(text, extra={"mock": {...}})``; the JSON format spreads the
``mock`` mapping into the object, so log shippers get fields instead of parsing text.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("text", "json")
_CORE = ("time", "level", "message")


def _timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 in UTC with milliseconds: sortable, and the same on every machine."""
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``2026-11-28T00:13:32.123Z INFO message``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JSONFormatter(logging.Formatter):
    """One object per line: ``time``, ``level``, ``message``, then every key of ``record.mock``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        mock = getattr(record, "mock", None)
        if isinstance(mock, dict):
            out.update((str(k), v) for k, v in mock.items() if k not in _CORE)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class _Handler(logging.StreamHandler[TextIO]):
    """Ours, so ``configure`` can replace it when called again."""


def configure(fmt: str, quiet: bool, stream: TextIO | None = None) -> logging.Logger:
    """Send the ``mockserver`` logger's records to ``stream`` (stderr) in ``fmt``.

    ``quiet`` keeps warnings and errors only (no line per request)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of: {', '.join(FORMATS)}")
    log = logging.getLogger("mockserver")
    for handler in [h for h in log.handlers if isinstance(h, _Handler)]:
        log.removeHandler(handler)
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False  # a root handler (basicConfig elsewhere) would print each line twice
    return log
