"""memory_search: every role's look into the experience store (past tasks, passed subtasks, failures)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dexforge.tools.base import RoleTool, Scope, ToolError, ToolResult


class MemorySearchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, description="What to look for, in words ('grasp a ball', 'lift the mug').")
    kind: Literal["task", "subtask", "failure"] = Field(
        default="task",
        description="task: whole runs (spec, plan, outcome); subtask: subtasks that passed (reward program, "
        "statistics); failure: what went wrong before and why.",
    )
    k: int = Field(default=3, ge=1, le=10, description="How many records.")


class MemoryHit(BaseModel):
    id: str
    similarity: float = Field(description="Cosine similarity to the query, 0..1.")
    text: str = Field(description="The record in one line: request or name, outcome, reason.")
    plan_yaml: str = Field(default="", description="task: the plan it ran.")
    reward_program: str = Field(default="", description="subtask: the reward program that passed.")


class MemorySearchResult(ToolResult):
    query: str
    kind: str
    hits: list[MemoryHit]

    def summary(self) -> str:
        if not self.hits:
            return f"no {self.kind} records in memory resemble '{self.query}'"
        lines = [f"[{h.similarity:.2f}] {h.text} ({h.id})" for h in self.hits]
        for h in self.hits[:1]:
            if h.reward_program:
                lines.append(f"reward program of {h.id}:\n{h.reward_program}")
            if h.plan_yaml:
                lines.append(f"plan of {h.id}:\n{h.plan_yaml}")
        return "\n".join(lines)


def _text(record) -> str:
    kind = record.kind
    if kind == "task":
        rate = record.metrics.task_success_rate
        tail = f", whole-task success {rate:.0%}" if rate is not None else ""
        return f"task '{record.request}' ({record.family or '?'}): {record.status}{tail}" + (
            f"; reason: {record.reason}" if record.reason else ""
        )
    if kind == "subtask":
        rate = "n/a" if record.success_rate is None else f"{record.success_rate:.0%}"
        return f"subtask {record.name} ({record.controller}): {record.description}; success {rate}"
    return f"failure in '{record.request}' at {record.stage} {record.subtask}: {record.reason}"


def memory_search(args: MemorySearchArgs, scope: Scope) -> MemorySearchResult:
    from dexforge.home import DexforgeError
    from dexforge.memory.store import ExperienceStore

    if not scope.memory:
        raise ToolError("memory is off for this run (--no-memory); decide without it")
    try:
        with ExperienceStore.open(writer=False) as store:
            hits = store.search(args.query, kind=args.kind, k=args.k)
    except DexforgeError as exc:
        raise ToolError(f"the experience store cannot be read: {exc}; decide without it") from None
    rows = [
        MemoryHit(
            id=h.id,
            similarity=round(h.similarity, 3),
            text=_text(h.record),
            plan_yaml=getattr(h.record, "plan_yaml", "") or "",
            reward_program=getattr(h.record, "reward_program", "") or "",
        )
        for h in hits
    ]
    return MemorySearchResult(query=args.query, kind=args.kind, hits=rows)


TOOLS = [
    RoleTool(
        "memory_search",
        "Search the experience store: past tasks (with their plans and outcomes), subtasks that passed (with "
        "their reward programs) or failures (what went wrong and why), nearest in meaning first with a "
        "similarity 0..1 (below about 0.4 is unrelated). Use it to start from what worked before.",
        MemorySearchArgs,
        MemorySearchResult,
        memory_search,
    )
]
