"""The tools: the typed toolboxes of the roles (`toolboxes.toolbox(role, scope)`, built on `base.RoleTool`:
asset_tools, scene_tools, plan_tools, reward_tools, memory_tools) and the tools the graph calls itself
(check a scene, check a reward, train a subtask, collect; `all_tools()` lists those and dexgen_assist).
"""


def all_tools() -> list:
    from dexforge.tools.dexgen_tools import dexgen_assist
    from dexforge.tools.sim_tools import check_scene
    from dexforge.tools.train_tools import check_reward, collect, train_subtask

    return [check_scene, check_reward, train_subtask, collect, dexgen_assist]
