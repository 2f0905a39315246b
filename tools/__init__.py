"""The tools the roles call (typed arguments, docstrings written for the model, errors as tool errors).

Import the tool objects from `dexforge.tools.sim_tools`, `dexforge.tools.train_tools` and
`dexforge.tools.dexgen_tools`; `all_tools()` lists them all for binding to a model or serving them.
"""


def all_tools() -> list:
    from dexforge.tools.dexgen_tools import dexgen_assist
    from dexforge.tools.sim_tools import check_scene, describe_metrics, find_assets, validate_spec
    from dexforge.tools.train_tools import check_reward, collect, train_subtask

    return [
        validate_spec,
        find_assets,
        describe_metrics,
        check_scene,
        check_reward,
        train_subtask,
        collect,
        dexgen_assist,
    ]
