"""Mistakes that load fine but serve wrong: found at load (errors) or by ``validate`` (warnings)."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from mockserver import MockServer, ScenarioError, load_paths, load_text
from mockserver.cli import main
from mockserver.core.request import Request
from mockserver.protocols.chat import parse_chat
from mockserver.scenarios.lint import warnings
from mockserver.scenarios.matching import nearest

pytestmark = pytest.mark.usefixtures("sdk_imported")


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "s.yaml")
    return [str(p) for p in caught.value.problems]


def warned(text: str) -> list[str]:
    return [str(p) for p in warnings(load_text(text, "s.yaml"))]


def test_match_placeholder_needs_a_regex_group() -> None:
    text = (
        "- name: w\n"
        "  match: {last_user: {regex: 'weather in (?P<town>\\w+)'}}\n"
        "  reply: {content: 'Sunny in {{ match.city }}.'}\n"
        "- name: none\n"
        "  reply: {content: '{{ match.city }}'}\n"
    )
    assert problems(text) == [
        "s.yaml:3: [0].reply.content: '{{ match.city }}' would always be empty: the "
        "scenario's regex conditions capture only: town, 1",
        "s.yaml:5: [1].reply.content: '{{ match.city }}' would always be empty: the "
        "scenario has no regex condition with groups",
    ]


def test_match_placeholder_with_its_group_renders(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    mockserver.add(
        "- match: {headers: {x-city: {regex: '(?P<city>\\w+)'}}, last_user: {regex: 'in (\\w+)'}}\n"
        "  reply:\n"
        "    content: '{{ match.city }}/{{ match.1 }}'\n"
        "    tool_calls: [{name: f, arguments: {city: '{{ match.city }}'}}]\n"
    )
    reply = openai_client.chat.completions.create(
        model="gpt-4",
        messages=[{"role": "user", "content": "weather in Oslo"}],
        extra_headers={"x-city": "Bergen"},
    )
    assert reply.choices[0].message.content == "Bergen/Oslo"
    calls = reply.choices[0].message.tool_calls or []
    assert calls[0].function.arguments == '{"city":"Bergen"}'


@pytest.mark.parametrize(
    ("content", "piece"),
    [
        ("Hello {{ model", "'{{ model'"),
        ("{{ }}", "'{{ }}'"),
        ("a {{ 1 + 1 }} b", "'{{ 1 + 1 }} b'"),
    ],
)
def test_a_brace_pair_that_is_no_placeholder_is_an_error(content: str, piece: str) -> None:
    assert problems(f"- reply: {{content: '{content}'}}\n") == [
        f"s.yaml:1: [0].reply.content: {piece} is not a placeholder (unclosed '{{{{'?); "
        "placeholders are written '{{ name }}'"
    ]


def test_duplicate_names_are_errors_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("- {name: hi, match: {model: a}, reply: {content: a}}\n")
    (tmp_path / "b.yaml").write_text("- {name: hi, match: {model: b}, reply: {content: b}}\n")
    with pytest.raises(ScenarioError) as caught:
        load_paths([tmp_path])
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path}/b.yaml:1: the name 'hi' is already used by the scenario at "
        f"{tmp_path}/a.yaml:1; give each scenario its own 'name' (the journal and "
        "assert_called() tell scenarios apart by name)"
    ]


def test_every_problem_of_a_file_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "s.yaml").write_text(
        "scenarios:\n"
        "  - name: a\n"
        "    match: {last_user: {regex: '('}}\n"
        "    reply: {contnet: x}\n"
        "  - name: b\n"
        "    reply: {content: '{{ nope }}'}\n"
    )
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 2)[1] for line in err[:-1]] == [
        "scenarios[0].match.last_user",
        "scenarios[0].reply.contnet",
        "scenarios[1].reply.content",
    ]
    assert err[-1] == "3 problem(s)"


@pytest.mark.parametrize(
    ("first", "second", "why"),
    [
        ("{name: all, reply: {content: a}}", "{name: later, match: {model: x}, reply: {content: b}}", "it matches every request"),
        ("{name: all, match: {model: '*', last_user: {contains: ''}}, reply: {content: a}}", "{name: later, match: {model: x}, reply: {content: b}}", "it matches every request"),
        ("{name: all, match: {model: x}, reply: {content: a}}", "{name: later, match: {model: x, stream: true}, reply: {content: b}}", "its conditions are a subset of this one's"),
        ("{name: all, match: {model: x}, reply: {content: a}}", "{name: later, match: {model: x}, reply: {content: b}}", "its conditions are a subset of this one's"),
    ],
)  # fmt: skip
def test_a_shadowed_scenario_is_a_warning(first: str, second: str, why: str) -> None:
    assert warned(f"- {first}\n- {second}\n") == [
        f"s.yaml:2: warning: scenario 'later' can never answer: 'all' (s.yaml:1) has the same "
        f"priority and comes first and {why}; give 'all' a narrower 'match' or this one a "
        "higher 'priority'"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "- {name: all, priority: -1, reply: {content: a}}\n- {name: b, match: {model: x}, reply: {content: b}}\n",
        "- {name: b, match: {model: x}, reply: {content: b}}\n- {name: all, reply: {content: a}}\n",
        "- {name: a, match: {model: x}, reply: {content: a}}\n- {name: b, match: {model: y}, reply: {content: b}}\n",
        "- {name: once, after_last: stop, steps: [{reply: {content: a}}]}\n- {name: b, reply: {content: b}}\n",
        "- {name: a, match: {model: x, stream: true}, reply: {content: a}}\n- {name: b, match: {model: x}, reply: {content: b}}\n",
    ],
)  # fmt: skip
def test_reachable_scenarios_get_no_warning(text: str) -> None:
    assert warned(text) == []


def test_higher_priority_catch_all_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yaml").write_text("- {name: b, match: {model: x}, reply: {content: b}}\n")
    (tmp_path / "b.yaml").write_text("- {name: all, priority: 5, reply: {content: a}}\n")
    assert main(["validate", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        f"{tmp_path}/a.yaml:1: warning: scenario 'b' can never answer: 'all' "
        f"({tmp_path}/b.yaml:1) has a higher priority (5 > 0) and it matches every request; "
        "give 'all' a narrower 'match' or this one a higher 'priority'\n"
    )
    assert captured.out == "ok: 2 scenario(s), 1 warning(s)\n"


def test_validate_of_an_empty_folder_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a scenario")
    assert main(["validate", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"{tmp_path}: no scenario files (.yaml, .yml, .json) in this folder\n1 problem(s)\n"
    )
    (tmp_path / "empty.yaml").write_text("scenarios: []\n")
    assert main(["validate", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"{tmp_path}: no scenarios in these files\n1 problem(s)\n"


def request(last_user: str) -> Request:
    body = {"model": "gpt-4", "messages": [{"role": "user", "content": last_user}]}
    return parse_chat(json.dumps(body).encode())


def test_nearest_ranks_by_conditions_held_then_text_closeness() -> None:
    scenarios = load_text(
        "- {name: far, match: {last_user: 'something else entirely', model: gpt-5}, reply: {content: x}}\n"
        "- {name: model-only, match: {model: gpt-5}, reply: {content: x}}\n"
        "- {name: close-text, match: {last_user: 'weather in Pariss'}, reply: {content: x}}\n"
        "- {name: other-text, match: {last_user: 'stock prices'}, reply: {content: x}}\n"
        "- {name: header-only-fails, match: {last_user: {contains: weather}, headers: {x-tenant: acme}}, reply: {content: x}}\n"
    )
    ranked = nearest(scenarios, request("weather in Paris"))
    assert [n.scenario.name for n in ranked] == ["header-only-fails", "close-text", "other-text"]
    assert (ranked[0].held, ranked[0].total, ranked[0].ratio) == (1, 2, 0.5)
    assert ranked[1].closeness > ranked[2].closeness


@pytest.mark.mockserver(unmatched="ignore")
def test_404_names_a_scenario_whose_only_failed_condition_is_a_header(
    mockserver: MockServer, openai_client: openai.OpenAI
) -> None:
    many = "".join(
        f"- {{name: s{i}, match: {{model: m{i}}}, reply: {{content: x}}}}\n" for i in range(5)
    )
    mockserver.add(
        many
        + "- {name: tenant, match: {last_user: {contains: hello}, headers: {x-tenant: acme}}, reply: {content: x}}\n"
    )
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "hello"}]
        )
    message = caught.value.body["message"]  # type: ignore[index]
    assert (
        "Nearest: 'tenant' (<inline>:6): header x-tenant exact 'acme', got None | 's0'" in message
    )
    assert message.count(" | ") == 2
