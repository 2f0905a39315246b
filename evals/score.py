"""Scoring a case's observed run against its expectations.

The node path is matched with agentevals' graph-trajectory strict match and the tool calls with its
trajectory match (superset of the expected calls, expected arguments a subset of the actual ones); the
rest are plain comparisons. Every check says what was expected and what was seen.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from dexforge.evals.suite import Bounds, Expect


@dataclass
class Check:
    name: str
    ok: bool
    expected: str
    seen: str

    def to_json(self) -> dict:
        return asdict(self)


def _count_ok(want: Bounds | int, seen: int) -> bool:
    return seen == want if isinstance(want, int) else want.holds(seen)


def _want_text(want: Bounds | int) -> str:
    return str(want) if isinstance(want, int) else want.text()


def _contains_run(path: list[str], run: list[str]) -> bool:
    n = len(run)
    return any(path[i : i + n] == run for i in range(len(path) - n + 1))


def _as_messages(calls: list[dict]) -> list[dict]:
    """Tool calls as OpenAI assistant messages (the form agentevals matches)."""
    return [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": c["name"], "arguments": json.dumps(c.get("args") or {})}}],
        }
        for c in calls
    ]


def node_path_matches(seen: list[str], expected: list[str]) -> bool:
    from agentevals.graph_trajectory.strict import graph_trajectory_strict_match

    result = graph_trajectory_strict_match(
        outputs={"inputs": [], "results": [], "steps": [seen]},
        reference_outputs={"inputs": [], "results": [], "steps": [expected]},
    )
    return bool(result["score"])


def _agentevals(seen: list[dict], expected: list[dict], mode: str, args: str) -> bool:
    from agentevals.trajectory.match import create_trajectory_match_evaluator

    evaluator = create_trajectory_match_evaluator(trajectory_match_mode=mode, tool_args_match_mode=args)
    result = evaluator(outputs=_as_messages(seen), reference_outputs=_as_messages(expected))
    return bool(result["score"])


def tool_calls_match(seen: list[dict], expected: list[dict], mode: str = "superset", args: str = "superset") -> bool:
    """agentevals' trajectory match of the calls `seen` against `expected`.

    agentevals applies an argument mode in both directions of an unordered or subset match, so "the expected
    arguments among the actual ones" (superset) or the reverse (subset) would fail those modes; they are
    scored as the calls' names in that mode (arguments ignored) and, separately, every expected call found
    with its arguments (superset) or every seen call's arguments within an expected call's (subset)."""
    if mode in ("unordered", "subset") and args in ("superset", "subset"):
        names = _agentevals(seen, expected, mode, "ignore")
        found = _agentevals(seen, expected, "superset", "superset") if args == "superset" else True
        within = _agentevals(expected, seen, "superset", "superset") if args == "subset" else True
        return names and found and within
    return _agentevals(seen, expected, mode, args)


def _calls_text(calls: list[dict]) -> str:
    return ", ".join(f"{c['name']}({', '.join(f'{k}={v}' for k, v in (c.get('args') or {}).items())})" for c in calls)


def score(expect: Expect, seen: dict[str, Any]) -> list[Check]:
    """Every expectation given in `expect`, checked against the observed run `seen` (see run.observe)."""
    checks: list[Check] = []
    path = seen.get("node_path", [])

    def add(name: str, ok: bool, expected: Any, got: Any) -> None:
        checks.append(Check(name, bool(ok), str(expected), str(got)))

    if expect.node_path is not None:
        add("node_path", node_path_matches(path, expect.node_path), " -> ".join(expect.node_path), " -> ".join(path))
    for run in expect.node_path_includes:
        add(f"node_path includes {' -> '.join(run)}", _contains_run(path, run), " -> ".join(run), " -> ".join(path))
    for node, want in expect.node_counts.items():
        n = path.count(node)
        add(f"'{node}' runs", _count_ok(want, n), _want_text(want), n)
    if expect.tool_calls:
        wanted = [c.model_dump(exclude_none=True) for c in expect.tool_calls]
        calls = seen.get("tool_calls", [])
        ok = all(
            tool_calls_match([c for c in calls if w.get("role") in (None, c.get("role", "graph"))], [w]) for w in wanted
        ) and tool_calls_match(calls, wanted)
        add("tool_calls", ok, wanted, _calls_text(calls) or "no tool calls")
    for t in expect.trajectories:
        mine = [c for c in seen.get("tool_calls", []) if c.get("role", "graph") == t.role]
        wanted = [c.model_dump(exclude_none=True) for c in t.calls]
        add(
            f"{t.role} trajectory ({t.match})",
            tool_calls_match(mine, wanted, t.match, t.args),
            _calls_text(wanted) or "no tool calls",
            _calls_text(mine) or "no tool calls",
        )
    for name, want in expect.failed_tool_calls.items():
        n = sum(1 for c in seen.get("tool_calls", []) if c["name"] == name and c.get("ok") is False)
        add(f"failed {name} calls", _count_ok(want, n), _want_text(want), n)
    for name in expect.no_tool_calls:
        n = sum(c["name"] == name for c in seen.get("tool_calls", []))
        add(f"no {name} calls", n == 0, 0, n)
    for kind in expect.corrections:
        kinds = seen.get("corrections", [])
        add(f"a '{kind}' correction applied", kind in kinds, kind, kinds or "none")
    if expect.memories is not None:
        n = len(seen.get("memories", []))
        add("memories retrieved", expect.memories.holds(n), expect.memories.text(), n)
    for text in expect.memory_includes:
        memories = seen.get("memories", [])
        add(f"a memory mentions '{text}'", any(text in m for m in memories), text, memories or "none")
    if expect.plan is not None:
        add("plan", seen.get("plan") == expect.plan, expect.plan, seen.get("plan"))
    if expect.status is not None:
        add("status", seen.get("status") == expect.status, expect.status, seen.get("status"))
    for text in expect.reason_includes:
        reason = seen.get("reason") or ""
        add(f"reason mentions '{text}'", text in reason, text, reason or "no reason")
    for role, want in expect.model_calls.items():
        n = seen.get("model_calls", {}).get(role, {}).get("answers", 0)
        add(f"{role} answers", _count_ok(want, n), _want_text(want), n)
    for role, want in expect.invalid_answers.items():
        n = seen.get("model_calls", {}).get(role, {}).get("invalid", 0)
        add(f"{role} invalid answers", _count_ok(want, n), _want_text(want), n)
    for sub, bounds in expect.subtask_success.items():
        rate = seen.get("subtask_success", {}).get(sub)
        add(f"'{sub}' success", bounds.holds(rate), bounds.text(), rate)
    if expect.task_success_rate is not None:
        rate = seen.get("task_success_rate")
        add("whole-task success", expect.task_success_rate.holds(rate), expect.task_success_rate.text(), rate)
    for kind in expect.events:
        kinds = seen.get("event_kinds", [])
        add(f"event '{kind}'", kind in kinds, kind, "seen" if kind in kinds else "absent")
    return checks
