"""Which tools each role's model is bound to (DESIGN.md, "Roles act through tools").

`toolbox(role, scope)` returns the LangChain tools of `role` bound to `scope`; `TOOLBOXES` names them,
and `ROLE_TOOLS` holds every typed tool by name (the eval suites validate recorded arguments with it).
"""

from __future__ import annotations

from langchain_core.tools import BaseTool

from dexforge.tools import asset_tools, memory_tools, plan_tools, reward_tools, scene_tools
from dexforge.tools.base import RoleTool, Scope

ROLE_TOOLS: dict[str, RoleTool] = {
    t.name: t
    for t in (*asset_tools.TOOLS, *scene_tools.TOOLS, *plan_tools.TOOLS, *reward_tools.TOOLS, *memory_tools.TOOLS)
}

TOOLBOXES: dict[str, tuple[str, ...]] = {
    "proposer": ("find_assets", "asset_info", "validate_spec", "static_checks", "memory_search"),
    "critic": ("render_view", "physics_findings", "measure", "settle_preview"),
    "decomposer": (
        "describe_metrics",
        "controllers",
        "validate_plan",
        "memory_search",
        "probe_motion",
        "dexgen_assist",
    ),
    "reward_writer": (
        "describe_metrics",
        "check_reward",
        "dry_run_reward",
        "training_stats",
        "rollout_frames",
        "memory_search",
    ),
}


def _plain(name: str) -> BaseTool:
    """Tools that need no scope (their own typed arguments say everything)."""
    if name == "dexgen_assist":
        from dexforge.tools.dexgen_tools import dexgen_assist

        return dexgen_assist
    raise KeyError(name)


def toolbox(role: str, scope: Scope) -> list[BaseTool]:
    """The tools of `role`, bound to `scope` (an unknown role has none)."""
    return [ROLE_TOOLS[n].bind(scope) if n in ROLE_TOOLS else _plain(n) for n in TOOLBOXES.get(role, ())]
