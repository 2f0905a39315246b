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


def tool_calls_match(seen: list[dict], expected: list[dict]) -> bool:
    from agentevals.trajectory.match import create_trajectory_match_evaluator

    evaluator = create_trajectory_match_evaluator(trajectory_match_mode="superset", tool_args_match_mode="superset")
    result = evaluator(outputs=_as_messages(seen), reference_outputs=_as_messages(expected))
    return bool(result["score"])


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
        wanted = [c.model_dump() for c in expect.tool_calls]
        calls = seen.get("tool_calls", [])
        names = ", ".join(
            f"{c['name']}({', '.join(f'{k}={v}' for k, v in (c.get('args') or {}).items())})" for c in calls
        )
        add("tool_calls", tool_calls_match(calls, wanted), wanted, names or "no tool calls")
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
