"""Parameter profiles: the API factory's documented quirks, and OpenAI's behaviour."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from mockserver import APIFACTORY, OPENAI, MockServer, Options
from mockserver.core.profiles import Profile, Unsupported

REPLY = "The quick brown fox jumps over three lazy dogs."
USER = [{"role": "user", "content": "Tell me about the fox."}]


def serve(profile: Profile) -> Iterator[openai.OpenAI]:
    with MockServer([{"reply": {"content": REPLY}}], options=Options(profile=profile)) as server:
        yield openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)


@pytest.fixture(scope="module")
def apifactory() -> Iterator[openai.OpenAI]:
    yield from serve(APIFACTORY)


@pytest.fixture(scope="module")
def openai_profile() -> Iterator[openai.OpenAI]:
    yield from serve(OPENAI)


def ask(client: openai.OpenAI, **params: Any) -> tuple[str, str, str | None]:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4", messages=USER, **params)
    choice = raw.parse().choices[0]
    return choice.message.content or "", choice.finish_reason, raw.headers.get("x-mock-adjusted")


@pytest.mark.parametrize(
    ("params", "adjusted"),
    [
        ({"temperature": -13}, "temperature=0"),
        ({"temperature": 5}, "temperature=2"),
        ({"top_p": 2}, "top_p=1"),
        ({"stop": "three"}, "stop=ignored"),
        ({"stop": ["three"]}, "stop=ignored"),
        ({"max_tokens": 0}, "max_tokens=ignored"),
        ({"max_tokens": 1}, "max_tokens=ignored"),
        ({"temperature": 1, "top_p": 0.5}, None),
    ],
)
def test_apifactory_quirks_give_the_full_reply(
    apifactory: openai.OpenAI, params: dict[str, Any], adjusted: str | None
) -> None:
    assert ask(apifactory, **params) == (REPLY, "stop", adjusted)


def test_apifactory_honours_max_completion_tokens(apifactory: openai.OpenAI) -> None:
    assert ask(apifactory, max_completion_tokens=3) == ("The quick brown", "length", None)
    stream = apifactory.chat.completions.create(
        model="gpt-4", messages=USER, max_completion_tokens=3, stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "The quick brown"
    assert chunks[-1].choices[0].finish_reason == "length"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"temperature": -13}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 2}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_openai_rejects_out_of_range(
    openai_profile: openai.OpenAI, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(openai_profile, **params)
    assert caught.value.param == param
    assert caught.value.code == "invalid_value"


def test_openai_honours_stop_and_max_tokens(openai_profile: openai.OpenAI) -> None:
    assert ask(openai_profile, stop="three") == ("The quick brown fox jumps over ", "stop", None)
    assert ask(openai_profile, stop=["fox", "quick"]) == ("The ", "stop", None)
    assert ask(openai_profile, max_tokens=2) == ("The quick", "length", None)


def test_adjustments_are_journalled() -> None:
    with MockServer([{"reply": {"content": REPLY}}]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k")
        client.chat.completions.create(model="gpt-4", messages=USER, temperature=9, stop="x")
        assert server.last.adjusted == ("temperature=2", "stop=ignored")


def test_a_profile_is_a_table() -> None:
    o_series = Profile(
        "o-series", {"chat": (*OPENAI.rules["chat"], Unsupported("max_tokens", "o1*"))}
    )
    with MockServer([{"reply": {"content": REPLY}}], options=Options(profile=o_series)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="o1-mini", messages=USER, max_tokens=5)
    assert caught.value.code == "unsupported_parameter"
    assert caught.value.param == "max_tokens"
