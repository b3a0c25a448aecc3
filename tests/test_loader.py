"""Scenario files are checked at load: every defect is located by file, line and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from mockserver import ScenarioError, load_data, load_paths, load_text


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "s.yaml")
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("scenarios: [\n", "s.yaml:2: invalid YAML: expected the node content, but found '<stream end>'"),
        ("- reply: {content: hi}\n  reply: x\n", "s.yaml:2: [0].reply: duplicate key"),
        ("scenarios:\n  - reply: {content: a}\n    reply: {content: b}\n", "s.yaml:3: scenarios[0].reply: duplicate key"),
        ("scenarios:\n  - name: x\n    replly: {content: a}\n", "s.yaml:3: scenarios[0].replly: unknown key (did you mean 'reply'?); expected one of: name, priority, seed, match, reply, error, raw, headers, delay, cadence, fault, steps, after_last, rate_limit, conversation, recording"),
        ("scenarios:\n  - reply:\n      tool_calls:\n        - name: f\n          arguments: 3\n", "s.yaml:5: scenarios[0].reply.tool_calls[0].arguments: expected a mapping or a JSON string, got 3"),
        ("scenarios:\n  - reply:\n      tool_calls:\n        - name: f\n          arguments: '{bad'\n", "s.yaml:5: scenarios[0].reply.tool_calls[0].arguments: expected a mapping or a JSON string; this string is not JSON"),
        ("scenarios:\n  - match:\n      last_user: {regex: '('}\n    reply: {content: a}\n", "s.yaml:3: scenarios[0].match.last_user: invalid regex: missing ), unterminated subpattern at position 0"),
        ("scenarios:\n  - match:\n      last_user: {startswith: a}\n    reply: {content: a}\n", "s.yaml:3: scenarios[0].match.last_user.startswith: unknown key; expected one of: exact, contains, regex"),
        ("scenarios:\n  - reply: {content: 'Hi {{ user }}'}\n", "s.yaml:2: scenarios[0].reply.content: unknown placeholder '{{ user }}'; expected one of: model, last_user, system, tool_name, tool_result, match.<group>, request.<field>, fake.<kind>"),
        ("scenarios:\n  - reply: {finish_reason: stopp}\n", "s.yaml:2: scenarios[0].reply.finish_reason: 'stopp' is not one of 'stop', 'length', 'tool_calls', 'content_filter', 'function_call'"),
        ("scenarios:\n  - cadence: {delay: -1}\n    reply: {content: a}\n", "s.yaml:2: scenarios[0].cadence.delay: must be >= 0, got -1"),
        ("scenarios:\n  - name: only-a-name\n", "s.yaml:2: scenarios[0]: a step needs one of 'reply', 'error' or 'raw'"),
        ("scenarios:\n  - steps: []\n", "s.yaml:2: scenarios[0].steps: expected at least 1 item(s)"),
        ("version: 1\n", "s.yaml:1: missing required key 'scenarios'"),
        ("just text\n", "s.yaml:1: expected a mapping with 'scenarios', or a list of scenarios, got 'just text'"),
        ("- !!python/object:os.system {}\n", "s.yaml:1: [0]: unsupported YAML tag 'tag:yaml.org,2002:python/object:os.system'"),
        ("- reply: {content: a}\n- reply: {content: \"b\x08\"}\n", "s.yaml:2: invalid YAML: character '\\x08' is not allowed in YAML (special characters are not allowed)"),
        ("- !!python/name:os.system\n", "s.yaml:1: invalid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'"),
    ],
)  # fmt: skip
def test_located_problem(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_every_problem_in_a_file_is_reported() -> None:
    found = problems(
        "scenarios:\n"
        "  - reply: {content: 1}\n"
        "  - error: {status: 200}\n"
        "  - fault: {kind: explode}\n"
    )
    assert found == [
        "s.yaml:2: scenarios[0].reply.content: expected a string or null, got 1",
        "s.yaml:3: scenarios[1].error.status: must be >= 400, got 200",
        "s.yaml:4: scenarios[2].fault.kind: 'explode' is not one of 'hang', 'reset', 'drop', "
        "'stall', 'malformed', 'stream_error', 'failed', 'no_done'",
    ]


def test_folders_load_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "one.yaml").write_text("- name: b1\n  reply: {content: x}\n")
    (tmp_path / "a.yml").write_text("- name: a1\n  reply: {content: x}\n")
    (tmp_path / "c.json").write_text('[{"name": "c1", "reply": {"content": "x"}}]')
    (tmp_path / "notes.txt").write_text("ignored")
    assert [s.name for s in load_paths([tmp_path])] == ["a1", "b1", "c1"]


def test_defaults_apply_to_every_scenario_in_the_file() -> None:
    loaded = load_text(
        "defaults: {priority: 5, headers: {x-env: test}}\n"
        "scenarios:\n"
        "  - reply: {content: a}\n"
        "  - priority: 9\n    reply: {content: b}\n",
        "d.yaml",
    )
    assert [s.priority for s in loaded] == [5, 9]
    assert [s.name for s in loaded] == ["d[0]", "d[1]"]
    assert loaded[0].steps[0].headers == {"x-env": "test"}


def test_inline_data_gets_the_same_checks() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_data({"reply": {"content": "x", "colour": "red"}})
    assert str(caught.value).startswith("<inline>: [0].reply.colour: unknown key")


def test_explicit_chunks_must_spell_the_content() -> None:
    assert problems(
        "- reply: {content: Hello}\n  cadence:\n    chunks: [{text: Hel}, {text: p}]\n"
    ) == ["s.yaml:3: [0].cadence.chunks: the chunks spell 'Help', but reply.content is 'Hello'"]


def test_tool_argument_templates_must_stay_json() -> None:
    assert problems(
        "- reply: {tool_calls: [{name: f, arguments: '{\"q\": {{ last_user }}}'}]}\n"
    ) == [
        "s.yaml:1: [0].reply.tool_calls[0].arguments: expected a mapping or a JSON string; "
        "this string is not JSON (placeholders go inside JSON strings)"
    ]


def test_includes_load_first_and_once(tmp_path: Path) -> None:
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "x.yaml").write_text("- {name: x, reply: {content: x}}\n")
    (tmp_path / "common" / "y.yaml").write_text(
        "include: [../main.yaml]\nscenarios: [{name: y, reply: {content: y}}]\n"
    )
    (tmp_path / "main.yaml").write_text(
        "include: ['common/*.yaml']\nscenarios: [{name: main, reply: {content: m}}]\n"
    )
    names = [s.name for s in load_paths([tmp_path / "main.yaml"])]
    assert names == ["x", "y", "main"]  # includes first; the cycle back to main.yaml reads it once
    assert [s.name for s in load_paths([tmp_path])] == ["x", "main", "y"]  # y includes main


def test_includes_cannot_leave_the_scenario_root(tmp_path: Path) -> None:
    root = tmp_path / "scenarios"
    root.mkdir()
    (tmp_path / "secret.yaml").write_text("- {name: secret, reply: {content: s}}\n")
    (root / "link.yaml").symlink_to(tmp_path / "secret.yaml")
    (root / "main.yaml").write_text(
        "include:\n  - ../secret.yaml\n  - /etc/passwd\n  - link.yaml\n  - missing.yaml\n  - 'none/*.yaml'\n  - 'a/**b'\nscenarios: []\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load_paths([root / "main.yaml"])
    assert [str(p) for p in caught.value.problems] == [
        f"{root}/main.yaml:2: include[0]: '../secret.yaml' is outside the scenario root {root}",
        f"{root}/main.yaml:3: include[1]: '/etc/passwd' is outside the scenario root {root}",
        f"{root}/main.yaml:4: include[2]: 'link.yaml' is outside the scenario root {root}",
        f"{root}/main.yaml:5: include[3]: 'missing.yaml': no such file",
        f"{root}/main.yaml:6: include[4]: 'none/*.yaml' matches no file",
        f"{root}/main.yaml:7: include[5]: 'a/**b': Invalid pattern: '**' can only be an entire path component",
    ]


def test_text_from_the_admin_api_cannot_include() -> None:
    assert problems("include: [/etc/passwd]\nscenarios: []\n") == [
        "s.yaml:1: include: only scenario files can include others (paths are relative to the including file)"
    ]
