"""The decomposer's tools: the metrics, the controllers (and whether DexGen is trained), validate a plan,
probe a planned leg in simulation. The first three answer at once; `probe_motion` is a worker job.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dexforge.tools.base import NoArgs, RoleTool, Scope, ToolError, ToolResult
from dexforge.tools.common import run_worker


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


# describe_metrics -------------------------------------------------------------------------------------------
class MetricsResult(ToolResult):
    metrics: dict[str, str] = Field(description="key -> 'shape unit: meaning'.")

    def summary(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self.metrics.items())


def describe_metrics(args: NoArgs, scope: Scope) -> MetricsResult:
    from dexforge.tools.sim_tools import metric_keys

    return MetricsResult(metrics=metric_keys(scope.spec()))


# controllers ------------------------------------------------------------------------------------------------
class ControllerInfo(BaseModel):
    kind: str
    use: str = Field(description="What it is for.")
    needs: str = Field(description="The subtask fields it needs.")
    available: bool = True
    note: str = ""


class ControllersResult(ToolResult):
    controllers: list[ControllerInfo]
    dexgen_folder: str = Field(description="Where a dexgen subtask looks for its model.")
    dexgen_trained: bool = Field(description="A trained DexGen model (dexgen.pt) is there.")
    dexgen_objects: dict[str, list[str]] = Field(
        default_factory=dict, description="Object -> skills with a trained expert in that folder."
    )

    def summary(self) -> str:
        lines = [
            f"{c.kind} ({'available' if c.available else 'NOT available'}): {c.use} Needs: {c.needs}"
            + (f" {c.note}" if c.note else "")
            for c in self.controllers
        ]
        return "\n".join(lines)


def controllers(args: NoArgs, scope: Scope) -> ControllersResult:
    from dexforge.policies.dexgen import jobs as J

    folder = J.default_folder()
    trained = (folder / J.MODEL).is_file()
    objects: dict[str, list[str]] = {}
    for asset in J.expert_assets(folder):
        skills = ["hold", *sorted(p.parent.name for p in (folder / "experts" / asset).glob("*/expert.json"))]
        objects[asset] = skills
    if trained:
        held = "; ".join(f"{a} ({', '.join(skills)})" for a, skills in objects.items()) or "none"
        note = f"Trained; experts for: {held}."
    else:
        note = f"No trained model in {folder}: do not plan a dexgen subtask (training it takes about 35 minutes)."
    infos = [
        ControllerInfo(
            kind="motion_plan",
            use="The palm moves along a planned, collision-aware path: approach, transport, lift.",
            needs="goal: {relative_to: object, offset: [x, y, z] m (palm minus object centre)} or {lift: m}; "
            "grip while carrying.",
        ),
        ControllerInfo(
            kind="rl",
            use="A PPO policy for the contact-rich part (grasp, in-hand rotation, push, pull).",
            needs="reward_template and reward_params (the reward-writer writes the program), active joints "
            "(freeze what it need not move: e.g. fingers only), success predicates, budget.env_steps, "
            "episode_length; lift_test to prove a grasp; safety_filter {mode, strength} to run it through DexGen.",
        ),
        ControllerInfo(
            kind="scripted",
            use="A fixed hand motion: open_hand, close_hand, power_grasp, hold.",
            needs="script.",
        ),
        ControllerInfo(
            kind="dexgen",
            use="DexGen moves the fingers to keep a held object in hand (hold) or turn it (rotate) while the wrist "
            "holds or moves.",
            needs="dexgen: {mode: hold|rotate, fingertip_offset: [x, y, z] m per step, strength}.",
            available=trained,
            note=note,
        ),
    ]
    return ControllersResult(
        controllers=infos, dexgen_folder=str(folder), dexgen_trained=trained, dexgen_objects=objects
    )


# validate_plan ----------------------------------------------------------------------------------------------
class PlanArgs(_Args):
    plan_yaml: str = Field(description="The whole Plan as YAML (task and subtasks).")


class ValidatePlanResult(ToolResult):
    subtasks: list[str] = Field(description="name:controller, in order.")
    rl_env_steps: int = Field(description="Env steps of all rl subtasks' budgets together.")

    def summary(self) -> str:
        return f"valid plan: {' -> '.join(self.subtasks)}; rl budget {self.rl_env_steps} env steps in all"


def parse_plan(plan_yaml: str, scope: Scope):
    from dexforge.home import DexforgeError
    from dexforge.policies.subtask import Plan
    from dexforge.sim.spec import describe_validation_error, load_yaml

    try:
        plan = Plan.model_validate(load_yaml(plan_yaml))
        plan.check_against(scope.spec())
    except ValidationError as exc:
        raise ToolError(f"invalid plan: {describe_validation_error(exc)}") from None
    except (DexforgeError, ValueError) as exc:
        raise ToolError(f"invalid plan: {exc}") from None
    return plan


def validate_plan(args: PlanArgs, scope: Scope) -> ValidatePlanResult:
    plan = parse_plan(args.plan_yaml, scope)
    return ValidatePlanResult(
        subtasks=[f"{s.name}:{s.controller}" for s in plan.subtasks],
        rl_env_steps=sum(s.budget.env_steps for s in plan.subtasks if s.controller == "rl"),
    )


# probe_motion -----------------------------------------------------------------------------------------------
class ProbeArgs(_Args):
    plan_yaml: str = Field(description="The Plan as YAML.")
    subtask: str = Field(description="Name of a motion_plan or scripted subtask of it to run.")


class ProbeMotionResult(ToolResult):
    subtask: str
    controller: str
    episodes: int
    reached_rate: float = Field(description="Fraction of envs whose palm reached the leg's goal.")
    final_error_m: float = Field(description="Mean distance of the palm from the goal at the end.")
    collisions: list[dict] = Field(description="Contacts the leg should not make: a, b, fraction of envs.")
    moved_objects: dict[str, float] = Field(description="Mean displacement of each object over the leg, metres.")
    steps: int

    def summary(self) -> str:
        hits = ", ".join(f"{c['a']} hit {c['b']} in {c['envs']:.0%}" for c in self.collisions) or "no collisions"
        moved = ", ".join(f"{k} {v:.3f} m" for k, v in self.moved_objects.items())
        return (
            f"{self.subtask} ({self.controller}) over {self.episodes} envs, {self.steps} steps: reached "
            f"{self.reached_rate:.0%}, final error {self.final_error_m:.3f} m; {hits}; objects moved: {moved}"
        )


def probe_motion(args: ProbeArgs, scope: Scope) -> ProbeMotionResult:
    plan = parse_plan(args.plan_yaml, scope)
    names = [s.name for s in plan.subtasks]
    if args.subtask not in names:
        raise ToolError(f"no subtask '{args.subtask}' in the plan; subtasks: {', '.join(names)}")
    index = names.index(args.subtask)
    if plan.subtasks[index].controller not in ("motion_plan", "scripted"):
        raise ToolError(f"'{args.subtask}' is {plan.subtasks[index].controller}; probe_motion runs planned legs")
    if index > 0 and plan.subtasks[index].start == "previous" and plan.subtasks[index - 1].controller == "rl":
        raise ToolError(f"'{args.subtask}' starts where the rl subtask before it ends, which is not trained yet")
    out = scope.tool_dir("probe_motion")
    value = run_worker(
        "probe_motion",
        {
            "spec_yaml": scope.spec_yaml,
            "plan_yaml": args.plan_yaml,
            "index": index,
            "start_states": None,
            "n_envs": 4,
            "backend": scope.backend,
        },
        out,
        scope.job_timeout_s,
        hint="the leg could not be simulated; check its goal",
    )
    return ProbeMotionResult.model_validate({k: value[k] for k in ProbeMotionResult.model_fields if k in value})


TOOLS = [
    RoleTool(
        "describe_metrics",
        "The metrics this task's environment publishes (what success predicates and reward programs read): "
        "key, shape, unit, meaning.",
        NoArgs,
        MetricsResult,
        describe_metrics,
    ),
    RoleTool(
        "controllers",
        "The controller kinds a subtask can use, what each is for and which fields it needs, and whether a "
        "trained DexGen model exists (for which objects and skills). Ask before planning a dexgen subtask or "
        "a safety_filter.",
        NoArgs,
        ControllersResult,
        controllers,
    ),
    RoleTool(
        "validate_plan",
        "Check a Plan (YAML) against this scene without simulating: the schema, the objects and predicates it "
        "names, each controller's fields. Use it before answering; the error names what to fix.",
        PlanArgs,
        ValidatePlanResult,
        validate_plan,
    ),
    RoleTool(
        "probe_motion",
        "Run one motion_plan or scripted subtask of a plan in simulation (4 envs, from the initial layout or the "
        "previous planned leg): did the palm reach the goal, what did the hand hit, how far did objects move. "
        "Use it to test an approach or transport goal before training. Takes 20-60 seconds.",
        ProbeArgs,
        ProbeMotionResult,
        probe_motion,
    ),
]
