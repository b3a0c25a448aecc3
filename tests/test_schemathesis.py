"""schemathesis against the OpenAPI document the server publishes at /openapi.json.

Requests that fit the document must succeed; requests that break it must get a 4xx error
object; every reply must match the document. Positive and negative cases, on every operation.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    ignored_auth,
    missing_required_header,
)

from mockserver import MockServer, Options
from mockserver.inspector.openapi import DOCUMENT

AUTH = {"Authorization": "Bearer sk-test", "AIKey": "sk-test"}  # AIKey: the relay's task APIs

FORMS = "^/v1/audio/(transcriptions|translations)$"
# Image edits take image files: random bytes are not images, and are rightly a 400 (the SDK
# tests in test_images.py send real ones).
EDITS = "/v1/images/edits"
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path_regex=FORMS).exclude(path=EDITS)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
# A request over the body limit (--max-body, 8 MiB by default) is refused with 413, which the
# document lists for every operation: a negative case that breaks a maxItems by growing past
# that limit is refused for its size before its shape is read.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]
# A multipart form's fields are all text: a "negative" null or number arrives as the text
# "null" or "5", which a server cannot tell from a valid prompt. Forms get positive cases here;
# their refusals are tested in test_audio.py.
forms = schemathesis.openapi.from_dict(DOCUMENT).include(path_regex=FORMS)
forms.config.generation.update(modes=[GenerationMode.POSITIVE])


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    options = Options(api_keys=frozenset({"sk-test"}))
    with MockServer([{"name": "anything", "reply": {"content": "ok"}}], options=options) as server:
        yield server


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    """One HTTP session for every case, closed at the end: a session per case was left for
    the garbage collector, whose socket warnings then failed whatever test ran at the time."""
    with requests.Session() as session:
        yield session


def test_the_document_is_published(server: MockServer) -> None:
    assert httpx.get(f"{server.url}/openapi.json").json() == DOCUMENT


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # schemathesis' own sockets, see below
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_server_keeps_to_its_published_document(
    case: schemathesis.Case[Any], server: MockServer, session: requests.Session
) -> None:
    _check(case, server, session)


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@forms.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_server_accepts_the_forms_its_document_describes(
    case: schemathesis.Case[Any], server: MockServer, session: requests.Session
) -> None:
    _check(case, server, session)


def _check(case: schemathesis.Case[Any], server: MockServer, session: requests.Session) -> None:
    with warnings.catch_warnings():
        # schemathesis drops the connection of a streamed reply it has read without closing
        # it: finalize that here, quietly, rather than in whatever test the collector runs in.
        warnings.simplefilter("ignore", ResourceWarning)
        # Google answers no key with 403 PERMISSION_DENIED and a key it does not accept with
        # 400 INVALID_ARGUMENT (API_KEY_INVALID), as the mock does, where the checks expect
        # 401; and GET on a method's URL is the model route's (a 404 in Google's shape), so
        # OPTIONS allows it.
        google = case.path.startswith("/v1beta/")
        excluded = (
            [ignored_auth, missing_required_header, allow_header_conformance] if google else None
        )
        case.call_and_validate(
            base_url=server.url, headers=AUTH, session=session, excluded_checks=excluded
        )
        gc.collect(1)  # the young generations: what this case made
