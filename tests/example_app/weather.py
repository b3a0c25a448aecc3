"""An example app under test: answers weather questions with the openai SDK and one tool.

It knows nothing about mockserver; its tests (``test_weather.py``) point it at the mock.
"""

from __future__ import annotations

import json
from typing import Any

import openai

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    }
]

REPORTS = {"Paris": "21°C and sunny", "Tokyo": "17°C and raining"}


def get_weather(city: str, unit: str = "celsius") -> str:
    report = REPORTS.get(city, "unknown")
    return report if unit == "celsius" else f"{report} (in celsius)"


def run_tool(name: str, arguments: str) -> str:
    if name != "get_weather":
        return f"error: no tool named {name!r}"
    return get_weather(**json.loads(arguments))


def answer(client: openai.OpenAI, question: str, model: str = "gpt-4", max_rounds: int = 4) -> str:
    """Ask the model, run the tools it calls, and return its final answer."""
    messages: list[Any] = [{"role": "user", "content": question}]
    for _ in range(max_rounds):
        reply = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
        message = reply.choices[0].message
        if not message.tool_calls:
            return message.content or ""
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            result = run_tool(call.function.name, call.function.arguments)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    raise RuntimeError(f"no answer after {max_rounds} rounds")
