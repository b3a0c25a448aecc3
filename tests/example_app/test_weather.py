"""The example app's own test suite: its tool-call round trip, end to end, against the mock."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from mockserver import MockServer

from .weather import answer

FIXTURES = Path(__file__).parents[2] / "fixtures"


@pytest.mark.mockserver(FIXTURES / "tool_round_trip.yaml")
def test_round_trip(mockserver: MockServer, openai_client: openai.OpenAI) -> None:
    assert answer(openai_client, "Weather in Paris?") == "It is 21°C and sunny in Paris right now."
    first, second = mockserver.assert_called("weather-round-trip", times=2)
    assert first.tool_names == ["get_weather"]
    assert first.last_user == second.last_user == "Weather in Paris?"
    call = second.body["messages"][1]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert second.body["messages"][2] == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": "21°C and sunny",
    }


def test_parallel_calls_are_all_answered(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add(
        """
        scenarios:
          - match: {last_role: user}
            reply:
              tool_calls:
                - {name: get_weather, arguments: {city: Paris}}
                - {name: get_weather, arguments: {city: Tokyo}}
          - match: {last_role: tool}
            reply: {content: "Latest: {{ tool_result }}"}
        """
    )
    assert answer(openai_client, "Paris or Tokyo?") == "Latest: 17°C and raining"
    results = [m for m in mockserver.last.body["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in results] == ["21°C and sunny", "17°C and raining"]


def test_unknown_tool_is_reported_back_to_the_model(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add(
        {
            "scenarios": [
                {"match": {"last_role": "user"}, "reply": {"tool_calls": [{"name": "get_time"}]}},
                {"match": {"last_role": "tool"}, "reply": {"content": "Sorry: {{ tool_result }}"}},
            ]
        }
    )
    assert answer(openai_client, "What time is it?") == "Sorry: error: no tool named 'get_time'"


def test_a_model_that_never_stops_calling_tools_is_cut_off(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add(
        {"reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}}
    )
    with pytest.raises(RuntimeError, match="no answer after 4 rounds"):
        answer(openai_client, "Weather?")
    assert len(mockserver.journal) == 4
