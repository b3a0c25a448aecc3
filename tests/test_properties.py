"""Property-based checks: the tokenizer loses nothing, and no request body can make a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockserver import MockServer
from mockserver.core.errors import APIError, ScenarioError
from mockserver.core.tokens import count_tokens, split_tokens
from mockserver.protocols.chat import parse_chat, usage_json
from mockserver.scenarios.loader import load_data, load_text
from mockserver.scenarios.matching import ScenarioSet, Substrings, required_literal
from mockserver.scenarios.render import Rendered, usage


@settings(max_examples=60)
@given(st.text())
def test_tokens_join_back_to_the_text(text: str) -> None:
    pieces = split_tokens(text)
    assert "".join(pieces) == text
    assert all(pieces)
    assert count_tokens(text) == len(pieces)


def test_pieces_follow_the_cl100k_pre_tokenizer() -> None:
    assert split_tokens("Hello world, it's 2024!") == [
        "Hello", " world", ",", " it", "'s", " ", "202", "4", "!"
    ]  # fmt: skip
    assert split_tokens("你好") == ["你", "好"]


small_text = st.text(alphabet="abc ", max_size=12)


@settings(max_examples=150)
@given(st.lists(small_text.filter(bool), max_size=12), small_text)
def test_substrings_finds_exactly_the_patterns_in_the_text(patterns: list[str], text: str) -> None:
    expected = {p for p in patterns if p in text}
    automaton = Substrings(patterns)
    automaton._FEW = 0  # the automaton even for a few patterns, not the plain ``in`` loop
    assert automaton.search(text) == expected
    assert Substrings(patterns).search(text) == expected


conditions = st.one_of(
    st.builds(lambda v: {"last_user": v}, small_text),
    st.builds(lambda v: {"last_user": {"contains": v}}, small_text),
    st.builds(
        lambda v: {"last_user": {"regex": v}},
        st.sampled_from(
            ["^a", "b$", "c+", "abc", "ab c+", "(ab|ca)bc", "a.bca", "(?i)ABC", "x?abc"]
        ),
    ),
    st.builds(lambda v: {"model": v}, st.sampled_from(["gpt-4", "gpt-*", "o1"])),
)


@settings(max_examples=150, deadline=None)  # a loaded machine can stall a case
@given(
    st.lists(st.tuples(conditions, st.integers(-1, 1)), min_size=1, max_size=10),
    small_text,
    st.sampled_from(["gpt-4", "o1", "x"]),
)
def test_indexes_pick_what_trying_every_scenario_in_order_picks(
    specs: list[tuple[dict[str, Any], int]], text: str, model: str
) -> None:
    scenarios = load_data(
        [
            {"name": str(i), "match": m, "priority": p, "reply": {"content": "x"}}
            for i, (m, p) in enumerate(specs)
        ]
    )
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": text}]}).encode()
    request = parse_chat(body, {})
    ranked = ScenarioSet(scenarios).scenarios
    expected = next(
        (s.name for s in ranked if all(c.check(request) is not None for c in s.conditions)), None
    )
    try:
        got = ScenarioSet(scenarios).resolve(request).scenario.name
    except APIError:
        got = None
    assert got == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": json_values | st.just("gpt-4"),
        "messages": json_values
        | st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "system", "tool", "x"]) | json_values},
                optional={"content": json_values},
            ),
            max_size=3,
        ),
        "stream": json_values,
        "temperature": json_values,
        "max_tokens": json_values,
        "max_completion_tokens": json_values,
        "stop": json_values,
        "n": st.integers(-2, 3) | json_values,
        "tools": json_values,
        "response_format": json_values,
        "stream_options": json_values,
    },
)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with (
        MockServer([{"reply": {"content": "ok"}}]) as server,
        httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer k"}) as http,
    ):
        yield http


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies | json_values)
def test_no_body_makes_a_server_error(client: httpx.Client, body: Any) -> None:
    response = client.post("/chat/completions", content=json.dumps(body))
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200))
def test_no_raw_bytes_make_a_server_error(client: httpx.Client, raw: bytes) -> None:
    assert client.post("/chat/completions", content=raw).status_code in (200, 400)


FIXTURE_TEXTS = [
    p.read_text() for p in sorted((Path(__file__).parents[1] / "fixtures").glob("*.yaml"))
]


def _loads_or_locates(text: str) -> None:
    """Either scenarios, or a ScenarioError whose every problem names the file."""
    problems: list[str] = []
    try:
        load_text(text, "fuzz.yaml")
    except ScenarioError as err:
        problems = [str(p) for p in err.problems] or ["<no problems listed>"]
    assert all(p.startswith("fuzz.yaml:") for p in problems), problems


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from("-:{}[]'\"!&*|>#?, \n\tabc01"), max_size=80))
def test_fuzzed_yaml_never_crashes_the_loader(text: str) -> None:
    _loads_or_locates(text)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(FIXTURE_TEXTS),
    st.lists(
        st.tuples(st.floats(0, 1), st.integers(0, 3), st.text(max_size=3)), min_size=1, max_size=4
    ),
)
def test_mutated_fixtures_load_or_fail_located(
    text: str, edits: list[tuple[float, int, str]]
) -> None:
    for where, cut, insert in edits:
        at = int(where * len(text))
        text = text[:at] + insert + text[at + cut :]
    _loads_or_locates(text)


@settings(max_examples=50)
@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_usage_json_is_json_dumps(
    prompt: int, completion: int, reasoning: int, cached: int
) -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
    fixed = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "reasoning_tokens": reasoning,
        "cached_tokens": cached,
    }
    used = usage(parse_chat(body, {}), Rendered(()), fixed)
    assert json.loads(usage_json(used)) == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": cached,
            "text_tokens": prompt,
            "audio_tokens": 0,
            "image_tokens": 0,
        },
        "completion_tokens_details": {
            "text_tokens": max(0, completion - reasoning),
            "audio_tokens": 0,
            "reasoning_tokens": reasoning,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        ("weather in (?P<city>\\w+)", "weather in "),
        ("^hello world$", "hello world"),
        ("ab+cde", "cde"),
        ("(?i)hello", None),
        ("(?i:abc)def", "def"),
        ("cat|dog", None),
        ("a.b", None),
        ("[", None),
    ],
)
def test_regex_prefilter_takes_only_text_every_match_contains(
    pattern: str, literal: str | None
) -> None:
    assert required_literal(pattern) == literal
