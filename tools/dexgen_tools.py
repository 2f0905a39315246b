"""DexGen tools: measure whether a trained DexGen model keeps a corrupted finger policy's object in hand.

The measurement runs as a worker job (`dexgen_assist`, a minute or two); the checks that the folder holds a
model and an expert run here, so that a missing model is a tool error that says how to make one.
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.tools import ToolException, tool
from pydantic import BaseModel, Field

from dexforge.tools.common import progress, run_worker


class DexGenAssistArgs(BaseModel):
    folder: str | None = Field(
        default=None,
        description="DexGen folder holding dexgen.pt and experts/ (default $DEXFORGE_HOME/dexgen/default, the "
        "model a plan's dexgen subtask uses).",
    )
    asset: str | None = Field(
        default=None,
        description="Catalog object whose hold expert is corrupted; default the first object DexGen was trained on.",
    )
    noise: float = Field(
        default=1.0, ge=0.0, le=10.0, description="Uniform noise U(-noise, noise) added to the expert's actions."
    )
    strength: float = Field(
        default=1.0,
        ge=0.0,
        le=1000.0,
        description="DexGen's guidance toward the policy's motion: 0 ignores the policy, large values follow it.",
    )
    skill: str = Field(
        default="hold",
        description="The expert corrupted: hold, or spin_normal / spin_thumb / spin_fingers (turning the object in "
        "the hand; its goals, 45-degree turns before the drop, are counted too).",
    )
    n_envs: int = Field(default=64, ge=1, le=1024, description="Parallel envs; hold times are their mean.")
    seconds: float = Field(default=8.0, gt=0.0, le=120.0, description="Simulated seconds per run (the cap).")
    timeout_s: float = Field(default=1800.0, gt=0, description="Most seconds the job may take.")


@tool(args_schema=DexGenAssistArgs, response_format="content_and_artifact")
def dexgen_assist(
    folder: str | None = None,
    asset: str | None = None,
    noise: float = 1.0,
    strength: float = 1.0,
    skill: str = "hold",
    n_envs: int = 64,
    seconds: float = 8.0,
    timeout_s: float = 1800.0,
) -> tuple[str, dict]:
    """Measure how long a noisy finger policy keeps a held object in hand, alone and through DexGen, a learnt
    controller that turns any policy's finger actions into motions its data showed to be safe.

    When DexGen helps: in-hand subtasks (hold, carry, reorient) where a learnt or coarse finger policy drops
    the object: noisy, slow or under-trained policies, and the wrist moving or turning against gravity. Use it
    as a plan's `dexgen` controller (mode hold or rotate) or to filter such a policy (an rl subtask's
    `safety_filter: {mode, strength}`), with the strength that did best here. Not for release: turn it
    off (another controller) for the subtask that lets go, or it keeps holding.
    What it costs: a trained model in the folder (`dexforge dexgen collect FOLDER` then `dexforge dexgen
    train FOLDER`: about 35 minutes on a CPU); this measurement then takes a minute or two. Returns both mean
    hold times (capped at `seconds`), their ratio, the fractions held to the end and DexGen's latency."""
    from dexforge.home import DexforgeError
    from dexforge.policies.dexgen import jobs as J
    from dexforge.policies.dexgen.job_types import DexGenAssistArgs as AssistJobArgs
    from dexforge.policies.dexgen.job_types import DexGenAssistResult
    from dexforge.policies.dexgen.skills import skill_mode
    from dexforge.sim.catalog import default_catalog

    where = Path(folder) if folder else J.default_folder()
    try:
        asset = default_catalog().object(asset).id if asset else None
        skill_mode(skill)
        J.require_model(where)
        J.require_expert(where, asset, skill)
    except (DexforgeError, ValueError) as exc:
        raise ToolException(str(exc)) from None
    progress(event="dexgen_assist", folder=str(where))
    args = AssistJobArgs(
        out=str(where), asset=asset, n_envs=n_envs, seconds=seconds, noise=noise, strength=strength, skill=skill
    )
    value = run_worker(
        "dexgen_assist",
        args,
        where / "jobs",
        timeout_s,
        hint="check the folder with `dexforge dexgen eval`, or retrain it with `dexforge dexgen train`",
    )
    result = DexGenAssistResult.model_validate(value)
    text = (
        f"{result.asset} ({skill}), {result.corruption}: the policy alone holds {result.raw_hold_s:.2f} s, "
        f"through DexGen (strength {strength:g}) {result.dexgen_hold_s:.2f} s "
        f"({result.ratio:g}x; cap {seconds:g} s)"
    )
    if result.raw_goals is not None and result.dexgen_goals is not None:
        text += f"; goals per run {result.raw_goals:.2f} alone, {result.dexgen_goals:.2f} through DexGen"
    return text, result.model_dump(mode="json")
