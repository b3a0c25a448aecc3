"""Request and token budgets: OpenAI's 429, Retry-After, and x-ratelimit-* headers that count down."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from mockserver import MockServer, Options
from mockserver.core.errors import APIError, ScenarioError
from mockserver.scenarios.loader import load_text
from mockserver.scenarios.ratelimit import RateLimit, duration

from .conftest import Clock

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server(clock: Clock) -> Iterator[MockServer]:
    with MockServer(options=Options(clock=clock, rate_limit=RateLimit(requests=2))) as server:
        yield server


def _client(server: MockServer, key: str = "sk-a", retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=retries)


def test_the_sdk_retries_once_a_short_window_refills() -> None:
    scenario = {"rate_limit": {"requests": 1, "per": 0.05}, "reply": {"content": "ok"}}
    with MockServer([scenario]) as server:
        client = _client(server, retries=2)
        for _ in range(2):
            assert (
                client.chat.completions.create(model="gpt-4", messages=USER)
                .choices[0]
                .message.content
                == "ok"
            )
        assert [e.status for e in server.journal] == [200, 429, 200]
        assert server.journal[1].outcome == "rate_limited"


def test_server_budget_is_per_key_and_model(server: MockServer, clock: Clock) -> None:
    server.add({"reply": {"content": "ok"}})
    a, b = _client(server, "sk-a"), _client(server, "sk-b")
    for _ in range(2):
        a.chat.completions.create(model="gpt-4", messages=USER)
    with pytest.raises(openai.RateLimitError):
        a.chat.completions.create(model="gpt-4", messages=USER)
    b.chat.completions.create(model="gpt-4", messages=USER)
    a.chat.completions.create(model="gpt-4o", messages=USER)
    clock.now += 60
    a.chat.completions.create(model="gpt-4", messages=USER)
    assert [e.outcome for e in server.journal] == ["ok", "ok", "rate_limited", "ok", "ok", "ok"]


def test_streamed_replies_carry_the_headers(server: MockServer) -> None:
    server.add({"reply": {"content": "ok"}})
    with _client(server).chat.completions.with_streaming_response.create(
        model="gpt-4", messages=USER, stream=True
    ) as raw:
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == "1"
        assert raw.headers["x-ratelimit-reset-requests"] == "1m0s"
        assert "x-ratelimit-limit-tokens" not in raw.headers


def test_token_budget_counts_spent_usage(clock: Clock) -> None:
    scenario = {
        "rate_limit": {"tokens": 500},
        "reply": {"content": "ok", "usage": {"prompt_tokens": 100, "completion_tokens": 300}},
    }
    with MockServer([scenario], options=Options(clock=clock)) as server:
        client = _client(server)
        raw = client.chat.completions.with_raw_response.create(model="gpt-4", messages=USER)
        assert raw.headers["x-ratelimit-remaining-tokens"] == "100"
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4", messages=USER * 40)
    assert caught.value.type == "tokens"
    assert "on tokens per min (TPM): Limit 500, Used 400, Requested 203." in caught.value.message


def test_a_file_default_is_one_budget_a_scenario_limit_its_own(clock: Clock) -> None:
    text = """
defaults:
  rate_limit: {requests: 1}
scenarios:
  - {name: a, match: {last_user: a}, reply: {content: a}}
  - {name: b, match: {last_user: b}, reply: {content: b}}
  - {name: c, match: {last_user: c}, reply: {content: c}, rate_limit: {requests: 1}}
"""
    with MockServer(load_text(text), options=Options(clock=clock)) as server:
        client = _client(server)

        def ask(text: str) -> int:
            try:
                client.chat.completions.create(
                    model="gpt-4", messages=[{"role": "user", "content": text}]
                )
            except openai.RateLimitError:
                return 429
            return 200

        assert [ask(t) for t in "abcc"] == [200, 429, 200, 429]
        httpx.post(f"{server.url}/_mock/reset?what=limits").raise_for_status()
        assert [ask(t) for t in "ba"] == [200, 429]


def test_rate_limit_needs_a_budget() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_text("- reply: {content: x}\n  rate_limit: {per: 5}\n", "f.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "f.yaml:2: [0].rate_limit: a rate limit needs 'requests' or 'tokens' (or both)"
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0104, "11ms"), (8.64, "8.64s"), (59.9999, "60s"), (360, "6m0s"), (61.5, "1m1.5s")],
)
def test_reset_durations_are_written_like_openai(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_ended_windows_are_forgotten() -> None:
    from mockserver.scenarios.ratelimit import Budgets

    budgets = Budgets(prune_above=3)
    limit = RateLimit(requests=1, per=10)
    for i in range(3):
        budgets.admit(limit, f"key{i}", "m", 1, now=0.0)
    budgets.admit(limit, "late", "m", 1, now=20.0)  # the three others have ended
    assert len(budgets._windows) == 1
    with pytest.raises(APIError):
        budgets.admit(limit, "late", "m", 1, now=21.0)  # the live window is still counted
