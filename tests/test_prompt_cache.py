"""Prompt caching by each provider's rules, through the real SDKs (``serve --prompt-cache``).

The tests assert the rules (1,024 + k x 128, breakpoints, minimums, TTLs, conservation), not
the mock's tokenizer figures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from mockserver import MockServer, Options
from tests.conftest import Clock

SCENARIOS = [
    {"name": "answer", "reply": {"content": "Noted."}, "cadence": {"first_delay": 0.8,
                                                                   "cached_first_delay": 0.1}},
]  # fmt: skip
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


def text(tokens: int, salt: str = "") -> str:
    """About ``tokens`` tokens of prose (a word is one token here), different per ``salt``."""
    return salt + " ".join(WORDS[(i * 7 + len(salt)) % len(WORDS)] for i in range(tokens))


LONG_SYSTEM = text(1500)


def on_the_grid(cached: int) -> bool:
    """OpenAI's steps: 1,024 tokens, then 128 at a time."""
    return cached >= 1024 and (cached - 1024) % 128 == 0


@pytest.fixture
def server(clock: Clock) -> Iterator[MockServer]:
    with MockServer(SCENARIOS, options=Options(speed=0, prompt_cache=True, clock=clock)) as s:
        yield s


def chat(
    server: MockServer, system: str, user: str, key: str = "sk-a", model: str = "gpt-4o"
) -> Any:
    with openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0) as client:
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens_details is not None
    return reply.usage


def test_a_repeated_long_prompt_reads_its_prefix_in_steps_of_128(server: MockServer) -> None:
    first = chat(server, LONG_SYSTEM, "Summarize.")
    assert first.prompt_tokens_details.cached_tokens == 0
    again = chat(server, LONG_SYSTEM, "Summarize.")
    cached = again.prompt_tokens_details.cached_tokens
    assert on_the_grid(cached)
    assert again.prompt_tokens - 128 < cached <= again.prompt_tokens
    assert again.prompt_tokens == first.prompt_tokens  # cached tokens are part of the prompt
    entry = server.state.journal.entries[-1]
    assert entry.extra["prompt_cache"] == {"hit": True, "read": cached, "written": 0}


def test_a_changed_tail_still_reads_the_shared_prefix(server: MockServer) -> None:
    chat(server, LONG_SYSTEM, "First question about the text.")
    other = chat(server, LONG_SYSTEM, "A different question, asked later.")
    cached = other.prompt_tokens_details.cached_tokens
    assert on_the_grid(cached)
    system_only = chat(server, LONG_SYSTEM, "").prompt_tokens  # the prefix both share
    assert cached <= system_only


def test_short_prompts_never_cache(server: MockServer) -> None:
    for _ in range(2):
        usage = chat(server, text(900), "hi")
        assert usage.prompt_tokens < 1024
        assert usage.prompt_tokens_details.cached_tokens == 0


def test_another_key_or_model_does_not_read_the_cache(server: MockServer) -> None:
    chat(server, LONG_SYSTEM, "q")
    assert chat(server, LONG_SYSTEM, "q", key="sk-b").prompt_tokens_details.cached_tokens == 0
    assert chat(server, LONG_SYSTEM, "q", model="gpt-4.1").prompt_tokens_details.cached_tokens == 0
    assert chat(server, LONG_SYSTEM, "q").prompt_tokens_details.cached_tokens > 0


def test_an_idle_cache_expires_after_its_ttl(server: MockServer, clock: Clock) -> None:
    chat(server, LONG_SYSTEM, "q")
    clock.now += 250
    assert chat(server, LONG_SYSTEM, "q").prompt_tokens_details.cached_tokens > 0
    clock.now += 250  # 500 s after the first, 250 after the last use: still live
    assert chat(server, LONG_SYSTEM, "q").prompt_tokens_details.cached_tokens > 0
    clock.now += 301
    assert chat(server, LONG_SYSTEM, "q").prompt_tokens_details.cached_tokens == 0


def test_the_admin_reset_clears_the_cache(server: MockServer) -> None:
    chat(server, LONG_SYSTEM, "q")
    httpx.post(f"{server.url}/_mock/reset").raise_for_status()
    assert chat(server, LONG_SYSTEM, "q").prompt_tokens_details.cached_tokens == 0


def test_responses_report_cached_input_tokens(server: MockServer) -> None:
    with openai.OpenAI(base_url=server.base_url, api_key="sk-a", max_retries=0) as client:
        for expected_hit in (False, True):
            reply = client.responses.create(
                model="gpt-4o", instructions=LONG_SYSTEM, input="Summarize.", store=False
            )
            assert reply.usage is not None
            cached = reply.usage.input_tokens_details.cached_tokens
            assert (cached > 0) is expected_hit
    assert on_the_grid(cached)


def test_stated_cache_figures_win(clock: Clock) -> None:
    stated = [{"name": "s", "reply": {"content": "x", "usage": {"cached_tokens": 7}}}]
    with MockServer(stated, options=Options(speed=0, prompt_cache=True, clock=clock)) as server:
        for _ in range(2):
            assert chat(server, LONG_SYSTEM, "q").prompt_tokens_details.cached_tokens == 7


def test_off_by_default(clock: Clock) -> None:
    with MockServer(SCENARIOS, options=Options(speed=0, clock=clock)) as server:
        for _ in range(2):
            assert chat(server, LONG_SYSTEM, "q").prompt_tokens_details.cached_tokens == 0


def test_a_hit_answers_after_the_cached_first_delay(clock: Clock) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    options = Options(speed=1, prompt_cache=True, clock=clock, sleep=sleep)
    with MockServer(SCENARIOS, options=options) as server:
        chat(server, LONG_SYSTEM, "q")
        assert sum(waits) == pytest.approx(0.8)
        waits.clear()
        chat(server, LONG_SYSTEM, "q")
        assert sum(waits) == pytest.approx(0.1)


# --- Anthropic: explicit breakpoints -----------------------------------------------------------


def message(
    server: MockServer,
    system: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    model: str = "claude-sonnet-4-5",
    tools: list[dict[str, Any]] | None = None,
) -> Any:
    with anthropic.Anthropic(
        base_url=server.url, api_key="sk-ant", max_retries=0, _strict_response_validation=True
    ) as client:
        reply = client.messages.create(
            model=model, max_tokens=64, system=system, messages=messages,
            **({"tools": tools} if tools else {}),
        )  # fmt: skip
    return reply.usage


def cached(text: str, ttl: str | None = None) -> dict[str, Any]:
    control: dict[str, Any] = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return {"type": "text", "text": text, "cache_control": control}


def total(u: Any) -> int:
    return int(u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens)


USER = [{"role": "user", "content": "What is the theme?"}]


def test_a_breakpoint_writes_its_prefix_then_reads_it(server: MockServer) -> None:
    first = message(server, [cached(LONG_SYSTEM)], USER)
    assert first.cache_read_input_tokens == 0
    assert first.cache_creation_input_tokens >= 1500  # the system prompt, up to the breakpoint
    assert 0 < first.input_tokens < 20  # the question after it
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    assert first.cache_creation.ephemeral_1h_input_tokens == 0
    again = message(server, [cached(LONG_SYSTEM)], USER)
    assert again.cache_read_input_tokens == first.cache_creation_input_tokens
    assert again.cache_creation_input_tokens == 0
    assert again.input_tokens == first.input_tokens
    assert total(again) == total(first)  # conserved
    entry = server.state.journal.entries[-1]
    assert entry.extra["prompt_cache"]["breakpoint"] == 1


def test_a_longer_conversation_reads_the_old_prefix_and_writes_the_new_part(
    server: MockServer,
) -> None:
    turn = [{"role": "user", "content": [cached(text(1200, "doc"))]}]
    first = message(server, [{"type": "text", "text": "You are terse."}], turn)
    longer = [
        {"role": "user", "content": [{"type": "text", "text": text(1200, "doc")}]},
        {"role": "assistant", "content": "Read it."},
        {"role": "user", "content": [cached("Now the second part: " + text(300, "more"))]},
    ]
    second = message(server, [{"type": "text", "text": "You are terse."}], longer)
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens >= 300  # the new turns, up to the new breakpoint
    assert (
        total(second)
        == second.cache_read_input_tokens + second.cache_creation_input_tokens + second.input_tokens
    )


def test_a_fifth_breakpoint_is_refused(server: MockServer) -> None:
    system = [cached(f"part {i}") for i in range(5)]
    with pytest.raises(anthropic.BadRequestError) as caught:
        message(server, system, USER)
    assert "A maximum of 4 blocks with cache_control may be provided. Found 5." in str(caught.value)


def test_the_one_hour_bucket_outlives_five_minutes(server: MockServer, clock: Clock) -> None:
    first = message(server, [cached(LONG_SYSTEM, "1h")], USER)
    assert first.cache_creation.ephemeral_1h_input_tokens == first.cache_creation_input_tokens > 0
    assert first.cache_creation.ephemeral_5m_input_tokens == 0
    clock.now += 30 * 60
    assert message(server, [cached(LONG_SYSTEM, "1h")], USER).cache_read_input_tokens > 0
    other = text(1500, "five")
    message(server, [cached(other)], USER)
    clock.now += 6 * 60
    assert message(server, [cached(other)], USER).cache_read_input_tokens == 0


@pytest.mark.parametrize(
    ("model", "prefix", "writes"),
    [
        ("claude-sonnet-4-5", 1100, True),
        ("claude-3-5-haiku-latest", 1100, False),  # 2,048 for Haiku 3.5
        ("claude-3-5-haiku-latest", 2100, True),
        ("claude-haiku-4-5", 2100, False),  # 4,096 for Haiku 4.5
    ],
)
def test_the_minimum_is_the_models(
    server: MockServer, model: str, prefix: int, writes: bool
) -> None:
    usage = message(server, [cached(text(prefix))], USER, model=model)
    assert (usage.cache_creation_input_tokens > 0) is writes
    if not writes:
        assert usage.input_tokens == total(usage)


def test_a_breakpoint_on_a_tool_caches_the_tools(server: MockServer) -> None:
    tools = [{"name": f"tool_{i}", "description": text(150, f"t{i}"),
              "input_schema": {"type": "object"}} for i in range(8)]  # fmt: skip
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    first = message(server, [{"type": "text", "text": "Be brief."}], USER, tools=tools)
    assert first.cache_creation_input_tokens >= 1024
    again = message(server, [{"type": "text", "text": "Another system prompt."}], USER, tools=tools)
    assert again.cache_read_input_tokens == first.cache_creation_input_tokens  # tools come first


def test_the_docs_cost_recipe_runs() -> None:
    from tests.docs import example

    exec(compile(example("prompt-cache-cost"), "docs/prompt-caching.md", "exec"), {})


def test_the_pytest_ini_turns_it_on(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmockserver_prompt_cache = true\n")
    pytester.makepyfile(
        """
        import openai

        def test_hit(mockserver, openai_client):
            mockserver.add({"name": "a", "reply": {"content": "ok"}})
            messages = [{"role": "system", "content": " alpha" * 1500},
                        {"role": "user", "content": "q"}]
            for expected in (False, True):
                usage = openai_client.chat.completions.create(
                    model="gpt-4o", messages=messages).usage
                assert (usage.prompt_tokens_details.cached_tokens > 0) is expected
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.parametrize(("model", "minimum"), [("gemini-2.5-flash", 2048), ("gemini-3-pro", 4096)])
def test_gemini_reports_implicit_caching_above_the_models_minimum(
    server: MockServer, model: str, minimum: int
) -> None:
    def ask(system: str) -> dict[str, Any]:
        body = {"systemInstruction": {"parts": [{"text": system}]},
                "contents": [{"role": "user", "parts": [{"text": "Summarize."}]}]}  # fmt: skip
        r = httpx.post(f"{server.url}/v1beta/models/{model}:generateContent", json=body,
                       headers={"x-goog-api-key": "g-key"})  # fmt: skip
        r.raise_for_status()
        usage: dict[str, Any] = r.json()["usageMetadata"]
        return usage

    for tokens, hits in ((minimum - 300, False), (minimum + 300, True)):
        system = text(tokens, f"g{tokens}")
        assert "cachedContentTokenCount" not in ask(system)
        again = ask(system)
        assert ("cachedContentTokenCount" in again) is hits
        if hits:
            assert minimum <= again["cachedContentTokenCount"] <= again["promptTokenCount"]


def test_a_breakpoint_written_with_an_escaped_key_is_counted(server: MockServer) -> None:
    """JSON may escape any character of a key; ``cache\\u005fcontrol`` is ``cache_control``."""
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
              for i in range(5)]  # fmt: skip
    body = {"model": "m", "max_tokens": 8, "system": blocks, "messages": USER}
    raw = json.dumps(body).replace('"cache_control"', '"cache\\u005fcontrol"')
    assert raw.count("cache\\u005fcontrol") == 5
    headers = {"x-api-key": "sk-ant", "content-type": "application/json"}
    answer = httpx.post(f"{server.url}/v1/messages", content=raw, headers=headers)
    assert answer.status_code == 400
    assert "A maximum of 4 blocks with cache_control may be provided. Found 5." in answer.text
