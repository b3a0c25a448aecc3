"""``serve --log-format text|json``: what a log line looks like."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from mockserver.logs import configure

MOCK = {
    "method": "POST",
    "path": "/v1/chat/completions",
    "status": 200,
    "api": "chat",
    "scenario": "greeting",
    "step": 0,
    "outcome": "ok",
    "stream": False,
    "reason": None,
    "nearest": ["a", "b"],
    "duration_ms": 1.25,
    "request_id": "req_1",
}


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """The ``mockserver`` logger, put back as it was (pytest's caplog relies on propagation)."""
    log = logging.getLogger("mockserver")
    saved = (list(log.handlers), log.level, log.propagate)
    yield log
    log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]


def test_json_lines_carry_every_mock_field(logger: logging.Logger) -> None:
    out = io.StringIO()
    configure("json", quiet=False, stream=out)
    logger.info("POST /v1/chat/completions %s", 200, extra={"mock": MOCK})
    logger.warning("plain", extra={"mock": {"message": "not mine", "time": 0, "extra": {1}}})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed")
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first.pop("time"))
    assert first == {"level": "info", "message": "POST /v1/chat/completions 200", **MOCK}
    assert (second["message"], second["level"], second["extra"]) == ("plain", "warning", "{1}")
    assert isinstance(second["time"], str)
    assert third["message"] == "failed"
    assert "RuntimeError: boom" in third["exception"]


def test_text_lines_start_with_a_timestamp(logger: logging.Logger) -> None:
    out = io.StringIO()
    configure("text", quiet=False, stream=out)
    configure("text", quiet=False, stream=out)  # twice: still one line per record
    logger.info("POST /v1/chat/completions 200 scenario=greeting", extra={"mock": MOCK})
    (line,) = out.getvalue().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO POST /v1/chat/completions 200 scenario=greeting",
        line,
    )


def test_quiet_keeps_warnings_only(logger: logging.Logger) -> None:
    out = io.StringIO()
    configure("text", quiet=True, stream=out)
    logger.info("per request")
    logger.warning("something to know")
    assert [line.split(" ", 1)[1] for line in out.getvalue().splitlines()] == [
        "WARNING something to know"
    ]


def test_an_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError, match="log format 'yaml' is not one of: text, json"):
        configure("yaml", quiet=False)
