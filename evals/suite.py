"""Eval suites: cases of agent behaviour, written in YAML (`evals/suites/*.yaml`).

A case names a request, the backend behind the roles, optional faults to inject and what the run must
show. Backends:

- `offline`: the offline reasoner;
- `scripted`: a local OpenAI-compatible server (dexforge.evals.scripted) answers each role from the
  case's `replies`, in order: a mapping is sent as the role's JSON answer, a string as-is (malformed
  JSON on purpose);
- `live`: the model endpoint from the environment (DEXFORGE_BASE_URL, ...), as `dexforge run` uses it.

    name: core
    defaults: {settings: {n_envs: 8, rl_budget: 1024}}
    cases:
      - name: critic-loop
        request: lift the cube
        faults: [{kind: critic_verdict, verdict: revise}]
        settings: {stop_after: decompose}
        expect:
          node_path: [recall, propose, check, propose, check, decompose, archive, report]
          status: stopped
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dexforge.agents.faults import Fault
from dexforge.home import DexforgeError


class SuiteError(DexforgeError):
    """A suite file that cannot be read or does not validate."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Bounds(_Model):
    min: float | None = None
    max: float | None = None

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def text(self) -> str:
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f"[{lo}, {hi}]"


class ToolCall(_Model):
    name: str = Field(description="Tool name: check_scene, train_subtask, find_assets, render_view, ...")
    args: dict[str, Any] = Field(default_factory=dict, description="Arguments that must match (a subset).")
    role: str | None = Field(
        default=None, description="Who called it: a role (proposer, critic, ...) or graph; None: anyone."
    )

    @model_validator(mode="after")
    def _typed_args(self) -> ToolCall:
        """Expected arguments of a role's typed tool must be valid for its argument model (the schema the
        model sees), so that a suite cannot expect a call no model could make."""
        from dexforge.tools.toolboxes import ROLE_TOOLS

        tool = ROLE_TOOLS.get(self.name)
        if tool is not None:
            unknown = sorted(set(self.args) - set(tool.args.model_fields))
            if unknown:
                raise ValueError(
                    f"tool {self.name} has no argument(s) {unknown}; it takes {sorted(tool.args.model_fields)}"
                )
            tool.args.model_validate({**_required(tool.args), **self.args})
        return self


def _required(model: type[BaseModel]) -> dict[str, Any]:
    """Placeholder values for the required fields not given (validated on their own elsewhere)."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.is_required():
            out[name] = [0.0, 0.0, 1.0] if "eye" in name else "x"
    return out


class Trajectory(_Model):
    """The tool calls one role made (over all its loops in the run), scored with agentevals' trajectory match."""

    role: str = Field(description="proposer, critic, decomposer, reward_writer (or graph: the graph's own calls).")
    calls: list[ToolCall] = Field(description="The expected calls (their `role` may be left out).")
    match: Literal["strict", "unordered", "superset", "subset"] = Field(
        default="unordered",
        description="strict: the same calls in the same order; unordered: the same calls in any order; superset: "
        "at least these; subset: no others.",
    )
    args: Literal["exact", "superset", "subset", "ignore"] = Field(
        default="superset", description="How arguments match: superset (the expected ones among the actual ones), ..."
    )


class MemoryRecord(_Model):
    """A record put into the case's fresh experience store before the run."""

    kind: Literal["task", "failure"] = "task"
    request: str
    family: str = ""
    status: Literal["succeeded", "failed"] = "failed"
    reason: str = ""
    stage: str = "train"
    subtask: str = ""


class Expect(_Model):
    """What the run must show; every field given is checked, the rest is not."""

    node_path: list[str] | None = Field(default=None, description="The exact node path (agentevals strict match).")
    node_path_includes: list[list[str]] = Field(
        default_factory=list, description="Runs of consecutive nodes that must each appear in the path."
    )
    node_counts: dict[str, Bounds | int] = Field(default_factory=dict, description="Node -> times (or bounds).")
    tool_calls: list[ToolCall] = Field(
        default_factory=list, description="Tool calls that must appear, in any order (agentevals superset match)."
    )
    no_tool_calls: list[str] = Field(default_factory=list, description="Tools that must not be called.")
    trajectories: list[Trajectory] = Field(
        default_factory=list, description="Per role, its tool-call trajectory (agentevals trajectory match)."
    )
    failed_tool_calls: dict[str, Bounds | int] = Field(
        default_factory=dict, description="Tool -> calls that came back as errors (bad arguments, tool errors)."
    )
    corrections: list[str] = Field(default_factory=list, description="Correction kinds that must have been applied.")
    memories: Bounds | None = Field(default=None, description="How many memories the recall must retrieve.")
    memory_includes: list[str] = Field(default_factory=list, description="Texts the retrieved memories must hold.")
    plan: list[str] | None = Field(default=None, description="The final plan's subtasks as name:controller, in order.")
    status: Literal["succeeded", "failed", "stopped"] | None = None
    reason_includes: list[str] = Field(default_factory=list, description="Texts the failure reason must hold.")
    model_calls: dict[str, Bounds | int] = Field(
        default_factory=dict, description="Role -> answers asked of it (invalid ones included)."
    )
    invalid_answers: dict[str, Bounds | int] = Field(default_factory=dict, description="Role -> invalid answers.")
    subtask_success: dict[str, Bounds] = Field(default_factory=dict, description="Subtask -> evaluated success.")
    task_success_rate: Bounds | None = None
    events: list[str] = Field(default_factory=list, description="Event kinds that must appear in events.jsonl.")


class Case(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Unique in its suite; letters, digits, . _ -")
    description: str = ""
    request: str
    backend: Literal["offline", "scripted", "live"] = "offline"
    settings: dict[str, Any] = Field(default_factory=dict, description="AgentContext fields (n_envs, rl_budget, ...).")
    replies: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="scripted: role -> replies in order (a model's moves: tool calls, then its answer). Under "
        "`dexforge eval --backend live` these roles ask the live model instead.",
    )
    fixed_replies: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Replies that stay scripted even against a live model: they set the stage (a proposer's "
        "flawed scene for the critic under test).",
    )
    tags: list[str] = Field(default_factory=list, description="Labels to select cases by (`--tag`, `--skip-tag`).")
    faults: list[Fault] = Field(default_factory=list)
    memory: list[MemoryRecord] = Field(default_factory=list)
    expect: Expect = Field(default_factory=Expect)
    timeout_s: float = Field(default=900.0, gt=0, description="The case fails when its run takes longer.")

    @model_validator(mode="after")
    def _consistent(self) -> Case:
        if (self.replies or self.fixed_replies) and self.backend == "offline":
            raise ValueError(f"case '{self.name}': replies are for the scripted backend, not '{self.backend}'")
        if self.backend == "scripted" and not (self.replies or self.fixed_replies):
            raise ValueError(f"case '{self.name}': the scripted backend needs replies (role -> list)")
        unknown = (set(self.replies) | set(self.fixed_replies)) - {"proposer", "critic", "decomposer", "reward_writer"}
        if unknown:
            raise ValueError(f"case '{self.name}': replies for unknown roles {sorted(unknown)}")
        if self.backend != "offline" and any(f.kind == "malformed_reply" for f in self.faults):
            raise ValueError(
                f"case '{self.name}': malformed_reply faults apply to the offline backend; "
                "a scripted case scripts its malformed replies"
            )
        return self


class Suite(_Model):
    name: str
    description: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict, description="settings and timeout_s every case starts from.")
    embedder: str | None = Field(
        default=None, description="Memory embedder of the cases (hashing, minilm, ...); None: the environment's."
    )
    cases: list[Case]

    @field_validator("cases")
    @classmethod
    def _unique(cls, cases: list[Case]) -> list[Case]:
        names = [c.name for c in cases]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"case names must be unique; repeated: {dupes}")
        if not cases:
            raise ValueError("a suite needs at least one case")
        return cases


def load_suite(path: Path | str) -> Suite:
    """Read and validate a suite; case settings start from the suite's defaults."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"no eval suite at {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite is a mapping with name and cases")
    data = {k: v for k, v in data.items() if not str(k).startswith("x-")}  # x-...: YAML anchors to reuse
    defaults = data.get("defaults") or {}
    cases = []
    for raw in data.get("cases") or []:
        if not isinstance(raw, dict):
            raise SuiteError(f"{path}: every case is a mapping, got {raw!r}")
        case = dict(raw)
        case["settings"] = {**(defaults.get("settings") or {}), **(raw.get("settings") or {})}
        if "timeout_s" in defaults and "timeout_s" not in raw:
            case["timeout_s"] = defaults["timeout_s"]
        cases.append(case)
    try:
        return Suite.model_validate({**data, "cases": cases})
    except ValueError as exc:
        raise SuiteError(f"{path}: {exc}") from None


def installed_suite(name: str) -> Path | None:
    """An installed suite by name ('core', 'tools'), or None."""
    from importlib import resources

    path = Path(str(resources.files("dexforge.evals") / "suites" / f"{name}.yaml"))
    return path if path.is_file() else None


def core_suite() -> Path:
    """The installed core suite (offline, CI-sized)."""
    from importlib import resources

    return Path(str(resources.files("dexforge.evals") / "suites" / "core.yaml"))
