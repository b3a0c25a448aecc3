"""Checks across a whole scenario set, for ``validate`` and ``serve``.

The loader checks each scenario on its own; these look at scenarios side by side, where the
silent traps are: a scenario that can never answer because an earlier one always wins, two
scenarios under one name, a ``{{ match.NAME }}`` that no regex captures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from ..core.errors import Problem
from .matching import ApiIs, BodyField, ModelIs, TextIs, TextMatch, ToolsOffered
from .scenario import VECTOR_APIS, AfterLast, Condition, Scenario

# Regexes that ``search`` finds in any text (a whitelist: proving it in general is undecidable
# for practical purposes, and a false "shadowed" warning would be worse than a missed one).
_ANY_TEXT = frozenset({"", "^", ".*", ".*?", "^.*", "(?s).*", "(?s)^.*"})


def regex_groups(conditions: Iterable[Condition]) -> frozenset[str]:
    """The names ``{{ match.NAME }}`` can use: named groups and group numbers (from 1)."""
    names: set[str] = set()
    for cond in conditions:
        match = getattr(cond, "match", None) if not isinstance(cond, BodyField) else cond.value
        if isinstance(match, TextMatch) and match.op == "regex":
            compiled = re.compile(match.value)
            names.update(compiled.groupindex)
            names.update(str(i) for i in range(1, compiled.groups + 1))
    return frozenset(names)


def always_holds(cond: Condition) -> bool:
    """True for conditions every request meets (``model: "*"``, ``contains: ""``, ...)."""
    if isinstance(cond, ModelIs):
        return cond.pattern == "*"
    if isinstance(cond, TextIs):
        m = cond.match
        return (m.op == "contains" and not m.value) or (m.op == "regex" and m.value in _ANY_TEXT)
    if isinstance(cond, ToolsOffered):
        return not cond.names
    return False


def in_try_order(scenarios: Iterable[Scenario]) -> list[Scenario]:
    """The order ``ScenarioSet`` tries them: higher priority first, then load order."""
    ranked = sorted(enumerate(scenarios), key=lambda p: (-p[1].priority, p[0]))
    return [s for _, s in ranked]


def _key(cond: Condition) -> str:
    return repr(cond)  # conditions are dataclasses; repr is total where hash is not (body: [])


def _always_answers(scenario: Scenario) -> bool:
    """Once matched it answers: ``after_last: stop`` lets later scenarios answer instead."""
    return scenario.after_last is not AfterLast.STOP


def shadowed(scenarios: Sequence[Scenario]) -> list[Problem]:
    """Warnings for scenarios that can never answer: an earlier one (same or higher priority,
    tried first) holds on every request they hold on, because its conditions are a subset of
    theirs (no conditions at all, or only ones every request meets, is the common case)."""
    out: list[Problem] = []
    # Earlier scenarios that always answer, indexed by one of their conditions (the longest:
    # usually the text, which differs most between scenarios).
    # A winner must also answer every protocol this one does (a text reply does not answer
    # embeddings: a catch-all chat scenario leaves them to later ones).
    by_key: dict[str, list[tuple[Scenario, frozenset[str]]]] = {}
    catch_alls: list[Scenario] = []
    for scenario in in_try_order(scenarios):
        if _unanswered(scenario):
            continue  # ``unanswerable`` says why it never answers
        keys = frozenset(_key(c) for c in scenario.conditions if not always_holds(c))
        apis = scenario.apis
        winner = next((c for c in catch_alls if apis <= c.apis), None)
        if winner is None:
            for key in keys:
                winner = next(
                    (c for c, ck in by_key.get(key, ()) if ck <= keys and apis <= c.apis), None
                )
                if winner is not None:
                    break
        if winner is not None:
            if winner.conditions and any(not always_holds(c) for c in winner.conditions):
                why = "its conditions are a subset of this one's"
            else:
                why = "it matches every request"
            if winner.priority > scenario.priority:
                first = f"has a higher priority ({winner.priority} > {scenario.priority})"
            else:
                first = "has the same priority and comes first"
            out.append(
                Problem(
                    scenario.source,
                    scenario.line,
                    "",
                    f"warning: scenario {scenario.name!r} can never answer: {winner.name!r} "
                    f"({winner.where}) {first} and {why}; give {winner.name!r} a narrower "
                    "'match' or this one a higher 'priority'",
                )
            )
            continue
        if not _always_answers(scenario):
            continue
        if not keys:
            catch_alls.append(scenario)
        else:
            by_key.setdefault(max(keys, key=len), []).append((scenario, keys))
    return out


def duplicate_names(scenarios: Sequence[Scenario]) -> list[Problem]:
    """Errors for a name used twice. Names are how the journal, ``assert_called()``,
    ``requests()`` and the 404 report refer to scenarios: with two, ``assert_called("x",
    times=1)`` would count both silently. Renaming is always possible, so it is an error."""
    first: dict[str, Scenario] = {}
    out: list[Problem] = []
    for scenario in scenarios:
        earlier = first.setdefault(scenario.name, scenario)
        if earlier is not scenario:
            out.append(
                Problem(
                    scenario.source,
                    scenario.line,
                    "",
                    f"the name {scenario.name!r} is already used by the scenario at "
                    f"{earlier.where}; give each scenario its own 'name' (the journal and "
                    "assert_called() tell scenarios apart by name)",
                )
            )
    return out


def _unanswered(scenario: Scenario) -> list[str]:
    """The protocols ``match.api`` names that the scenario's replies cannot answer."""
    wanted = {c.api for c in scenario.conditions if isinstance(c, ApiIs)}
    return sorted(wanted - scenario.apis)


def unanswerable(scenarios: Sequence[Scenario]) -> list[Problem]:
    """Warnings for scenarios whose ``match.api`` names a protocol their replies cannot answer
    (text for embeddings, vectors for chat): no request would ever get them."""
    out: list[Problem] = []
    for scenario in scenarios:
        for api in _unanswered(scenario):
            kind = "vectors" if api in VECTOR_APIS else "text"
            out.append(
                Problem(
                    scenario.source,
                    scenario.line,
                    "",
                    f"warning: scenario {scenario.name!r} can never answer: it matches only "
                    f"{api} requests, and its replies are not {kind}",
                )
            )
    return out


def moderation_only(scenarios: Sequence[Scenario]) -> list[Problem]:
    """Warnings for a reply that says which moderation categories fire, in a scenario that
    answers every API: a chat request it matches gets an empty message."""
    out = []
    for scenario in scenarios:
        if any(isinstance(c, ApiIs) for c in scenario.conditions):
            continue
        if any(s.reply is not None and s.reply.flagged is not None for s in scenario.steps):
            out.append(
                Problem(
                    scenario.source,
                    scenario.line,
                    "",
                    f"warning: scenario {scenario.name!r} answers with 'flagged' categories, "
                    "which only moderations read, but it matches every API (a chat request "
                    "gets an empty message); add match.api: moderations",
                )
            )
    return out


def warnings(scenarios: Sequence[Scenario]) -> list[Problem]:
    """Everything worth a warning about a loaded set (it still serves)."""
    return [*shadowed(scenarios), *unanswerable(scenarios), *moderation_only(scenarios)]
