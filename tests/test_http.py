"""Raw HTTP: SSE framing byte by byte, request validation, routing and auth errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mockserver import MockServer

AUTH = {"Authorization": "Bearer sk-test"}
BODY = {"model": "gpt-4", "messages": [{"role": "user", "content": "Say hello"}]}


@pytest.fixture
def http(mockserver: MockServer) -> Iterator[httpx.Client]:
    mockserver.add({"reply": {"content": "Hello there, friend."}})
    with httpx.Client(base_url=mockserver.url, headers=AUTH) as client:
        yield client


def events(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\n\n"), "every event is terminated by a blank line"
    return raw[:-2].split(b"\n\n")


def test_sse_framing(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={**BODY, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"].startswith("req_")
    frames = events(response.content)
    assert frames[-1] == b"data: [DONE]"
    assert all(f.startswith(b"data: ") and b"\n" not in f for f in frames)
    chunks = [json.loads(f[6:]) for f in frames[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all("usage" not in c for c in chunks)


def test_sse_even_when_client_accepts_json(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={**BODY, "stream": True},
        headers={"Accept": "application/json"},
    )
    assert response.content.endswith(b"data: [DONE]\n\n")


def test_unknown_fields_and_stainless_headers_are_accepted(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={**BODY, "some_vendor_option": {"x": 1}, "reasoning_effort": "low"},
        headers={"X-Stainless-Lang": "python", "x-stainless-retry-count": "0"},
    )
    assert response.status_code == 200


BAD_REQUESTS: list[tuple[Any, str | None, str | None]] = [
    (b"{not json", None, None),
    ([1, 2], "body", "invalid_type"),
    ({"messages": BODY["messages"]}, "model", "missing_required_parameter"),
    ({"model": 4, "messages": BODY["messages"]}, "model", "invalid_type"),
    ({"model": "gpt-4"}, "messages", "missing_required_parameter"),
    ({"model": "gpt-4", "messages": "hi"}, "messages", "invalid_type"),
    ({"model": "gpt-4", "messages": []}, "messages", "empty_array"),
    ({"model": "gpt-4", "messages": ["hi"]}, "messages[0]", "invalid_type"),
    ({"model": "gpt-4", "messages": [{"content": "x"}]}, "messages[0].role", None),
    ({"model": "gpt-4", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", None),
    ({"model": "gpt-4", "messages": [{"role": "user", "content": 5}]}, "messages[0].content", None),
    ({**BODY, "stream": "yes"}, "stream", "invalid_type"),
    ({**BODY, "temperature": "hot"}, "temperature", "invalid_type"),
    ({**BODY, "top_p": True}, "top_p", "invalid_type"),
    ({**BODY, "max_tokens": 1.5}, "max_tokens", "invalid_type"),
    ({**BODY, "max_completion_tokens": "10"}, "max_completion_tokens", "invalid_type"),
    ({**BODY, "n": 0}, "n", "integer_below_min_value"),
    ({**BODY, "stop": 3}, "stop", "invalid_type"),
    ({**BODY, "stream_options": "usage"}, "stream_options", "invalid_type"),
    ({**BODY, "tools": {}}, "tools", "invalid_type"),
    ({**BODY, "tools": [{"type": "function"}]}, "tools[0].function", None),
    ({**BODY, "response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
]


@pytest.mark.parametrize(("body", "param", "code"), BAD_REQUESTS)
def test_bad_request_is_400_naming_the_param(
    http: httpx.Client, body: Any, param: str | None, code: str | None
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = http.post("/v1/chat/completions", content=content)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if code:
        assert error["code"] == code
    assert error["message"]


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, None), ({"Authorization": "Bearer"}, "invalid_api_key"),
     ({"Authorization": "Basic abc"}, "invalid_api_key")],
)  # fmt: skip
def test_missing_or_malformed_auth_is_401(
    mockserver: MockServer, headers: dict[str, str], code: str | None
) -> None:
    response = httpx.post(f"{mockserver.url}/v1/chat/completions", json=BODY, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_api_key_restriction() -> None:
    from mockserver import Options

    with MockServer(
        [{"reply": {"content": "ok"}}], options=Options(api_keys=frozenset({"sk-a"}))
    ) as s:
        good = httpx.post(
            f"{s.base_url}/chat/completions", json=BODY, headers={"Authorization": "Bearer sk-a"}
        )
        bad = httpx.post(
            f"{s.base_url}/chat/completions", json=BODY, headers={"Authorization": "Bearer sk-b"}
        )
    assert good.status_code == 200
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_api_key"
    assert "sk-b" not in bad.json()["error"]["message"] or len("sk-b") <= 8


def test_unknown_path_wrong_method_oversized_body(http: httpx.Client) -> None:
    missing = http.get("/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_url"
    wrong = http.get("/v1/chat/completions")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["type"] == "invalid_request_error"


def test_body_over_limit_is_413() -> None:
    from mockserver import Options

    with MockServer([{"reply": {"content": "ok"}}], options=Options(max_body=1024)) as s:
        big = {**BODY, "messages": [{"role": "user", "content": "x" * 4096}]}
        response = httpx.post(f"{s.base_url}/chat/completions", json=big, headers=AUTH)
        assert (s.last.status, s.last.outcome) == (413, "error")  # journalled, like any error
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("content", "param", "code"),
    [
        (
            b'{"model": "gpt-4", "messages": [{"role": "user", "content": "x"}], "n": 1000000000}',
            "n",
            "integer_above_max_value",
        ),
        (
            b'{"model": "gpt-4", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
            None,
            None,
        ),
        (
            b'{"model": "gpt-4", "messages": [{"role": "user", "content": "x"}], "top_p": Infinity}',
            None,
            None,
        ),
        (
            b'{"model": "gpt-4", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -5}',
            "max_completion_tokens",
            "integer_below_min_value",
        ),
        (
            b'{"model": "gpt-4", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
            "max_tokens",
            "integer_below_min_value",
        ),
    ],
)
def test_out_of_bounds_values_are_400_not_a_hang(
    http: httpx.Client, content: bytes, param: str | None, code: str | None
) -> None:
    response = http.post("/v1/chat/completions", content=content)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("method", "path", "content", "status"),
    [
        ("PUT", "/_mock/scenarios", b"{not json", 400),
        ("PUT", "/_mock/scenarios", b"\xff\xfe not utf-8", 400),
        ("POST", "/_mock/reset?what=everything", b"", 400),
        ("DELETE", "/_mock/scenarios", b"", 405),
        ("PATCH", "/_mock/journal", b"", 405),
    ],
)
def test_admin_bad_input_is_a_clear_4xx(
    mockserver: MockServer, method: str, path: str, content: bytes, status: int
) -> None:
    headers = {"Content-Type": "application/json"} if content.startswith(b"{") else {}
    response = httpx.request(method, mockserver.url + path, content=content, headers=headers)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("path", "body", "shape"),
    [
        ("/v1/chat/completions", BODY, "openai"),
        ("/v1/messages", {"model": "claude", "max_tokens": 9, "messages": BODY["messages"]},
         "anthropic"),
    ],
)  # fmt: skip
def test_a_bug_in_the_mock_is_a_500_error_object_in_the_protocol_shape(
    http: httpx.Client,
    mockserver: MockServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: dict[str, Any],
    shape: str,
) -> None:
    """No traceback reaches the client, the journal keeps the request, the log the cause."""
    from mockserver.scenarios.render import Renderer

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Renderer, "render", broken)
    response = http.post(path, json=body, headers={"x-api-key": "k"})
    assert response.status_code == 500
    assert response.headers["x-request-id"].startswith("req_")
    error = response.json()["error"]
    assert error["type"] == ("api_error" if shape == "anthropic" else "server_error")
    assert error["message"] == "mockserver hit an unexpected error."
    if shape == "anthropic":
        assert response.json()["type"] == "error"
    assert mockserver.last.status == 500
    assert "a bug" in caplog.text
