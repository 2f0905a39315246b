"""Reward programs: the static check, the sandbox that runs them, and templates for common subtasks.

A reward program is source text defining `def compute_reward(m):` that returns `(reward (N,), {name: (N,)})`
from the metrics dict alone. `check_program` rejects anything outside an allowlist, `dry_run` runs it once in
a resource-limited worker and summarises each component (the gate before training), and `compile_reward`
loads it in-process for the training hot path. `render` fills in a template.

The sandbox's names load on first use (they need torch); the check and the templates do not, so that the
agent process can check programs and render templates without importing torch.
"""

from dexforge.policies.rewards.check import (
    CheckedProgram,
    RewardCheckError,
    RewardError,
    RewardForbiddenError,
    RewardSignatureError,
    RewardSyntaxError,
    RewardUnknownKeyError,
    check_program,
)
from dexforge.policies.rewards.templates import (
    TEMPLATES,
    RewardTemplate,
    RewardTemplateError,
    describe_templates,
    render,
)

__all__ = [
    "TEMPLATES",
    "CheckedProgram",
    "CompiledReward",
    "ComponentStats",
    "DryRunReport",
    "RewardCheckError",
    "RewardError",
    "RewardForbiddenError",
    "RewardMemoryError",
    "RewardNotFinite",
    "RewardResult",
    "RewardRuntimeError",
    "RewardShapeError",
    "RewardSignatureError",
    "RewardSyntaxError",
    "RewardTemplate",
    "RewardTemplateError",
    "RewardTimeout",
    "RewardUnknownKeyError",
    "RewardWorkerError",
    "check_program",
    "compile_reward",
    "describe_templates",
    "dry_run",
    "render",
    "run_reward",
]

_SANDBOX = {
    "CompiledReward",
    "ComponentStats",
    "DryRunReport",
    "RewardMemoryError",
    "RewardNotFinite",
    "RewardResult",
    "RewardRuntimeError",
    "RewardShapeError",
    "RewardTimeout",
    "RewardWorkerError",
    "compile_reward",
    "dry_run",
    "run_reward",
}


def __getattr__(name: str):
    if name in _SANDBOX:
        from dexforge.policies.rewards import sandbox

        return getattr(sandbox, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
