"""DexGen end to end on a tiny real scene: a hold expert is trained (PPO), its rollouts collected, DexGen trained
on them, and a noisy expert run with and without DexGen."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError

from dexforge.home import DexforgeError
from dexforge.policies.dexgen import evaluate as E
from dexforge.policies.dexgen import pipeline as P
from dexforge.policies.dexgen.checkpoint import DexGen
from dexforge.policies.dexgen.collect import load_dataset
from dexforge.policies.dexgen.config import DexGenConfig
from dexforge.policies.dexgen.experts import ExpertConfig, make_env
from dexforge.policies.segments import make_controller, run_segment
from dexforge.policies.subtask import DexGenUse, SubtaskSpec
from dexforge.policies.train import train_subtask
from dexforge.sim.env import EnvState
from dexforge.sim.spec import Held

TINY = DexGenConfig(hidden=64, state_hidden=64, id_hidden=64, diffusion_steps=20, ddim_steps=4)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_collect_train_and_assist_on_a_tiny_scene(tmp_path):
    cfg = ExpertConfig(env_steps=256, episode_s=0.3)
    expert, spinner = P.train_experts(tmp_path, ["cube"], n_envs=4, cfg=cfg, skills=["hold", "spin_normal"])
    folder = tmp_path / "experts" / "cube"
    assert expert["env_steps"] >= 256 and (folder / "checkpoint.pt").is_file()
    assert json.loads((folder / "expert.json").read_text())["mode"] == "hold"
    assert json.loads((folder / "spin_normal" / "expert.json").read_text())["mode"] == "rotate"
    assert spinner["skill"] == "spin_normal" and "angvel_in_palm" in (folder / "spin_normal" / "reward.py").read_text()
    start = EnvState.load(folder / "start_states.pt")
    assert 1 <= start.n <= 4  # the envs that held the cube after the scripted pick

    # runs of 0.4 s: a 0.1 s margin before a drop (not 2 s) leaves steps to learn from in a run that drops
    data = P.collect_data(
        tmp_path, ["cube"], n_envs=4, runs=1, steps=40, skills=["hold", "spin_normal"], drop_margin_s=0.1
    )
    episodes, provenance = load_dataset(data)
    assert len(episodes) == 8 and provenance["experts"] == ["cube:hold", "cube:spin_normal"]
    assert all(bool((e["mode"] == 0).all()) for e in episodes[:4])  # the hold expert's runs, then the spinner's
    assert all(bool((e["mode"] == 1).all()) for e in episodes[4:]) and sum(len(e["mode"]) for e in episodes[4:]) > 0
    assert provenance["drop_margin_s"] == 0.1
    assert [r["mode"] for r in provenance["runs"]] == [0, 1]
    run = provenance["runs"][0]
    assert run["expert"] == expert["checkpoint"] and len(run["randomization"]["friction_scale"]) == 4
    kept = [e for e in episodes if e["keypoints"].shape[0]]
    assert kept, "every run keeps the steps until 0.1 s before its drop"
    for e in kept:
        n = e["keypoints"].shape[0]
        assert e["keypoints"].shape == (n, 10, 3) and e["joint_pos"].shape == (n, 22) and e["targets"].shape == (n, 22)

    path = P.train_model(tmp_path, epochs=1, cfg=TINY)
    bundle = DexGen.load(path)
    assert bundle.provenance["windows"] > 0 and bundle.provenance["data"]["assets"] == ["cube"]
    # forward kinematics learnt something: it maps the data's joint positions near their keypoints
    q = torch.cat([e["joint_pos"] for e in kept])
    k = torch.cat([e["keypoints"] for e in kept]).flatten(1)
    err = (bundle.forward_kinematics(q) - k).norm(dim=-1).mean()
    assert err < (k - k.mean(0)).norm(dim=-1).mean() + 0.05

    env = make_env("cube", n_envs=4, seed=1)
    P.ready_envs(env, start, 1)
    act, _ = P.load_expert(env, folder, deterministic=True)
    noisy = E.Corruption(noise=0.5)
    raw = E.hold_duration(env, start, act, noisy, seconds=0.2)
    helped = E.hold_duration(env, start, act, noisy, seconds=0.2, bundle=bundle, strength=1.0)
    for r in (raw, helped):
        assert r.envs == 4 and 0.0 <= r.hold_s <= 0.2 + 1e-6 and len(r.per_env) == 4
    assert raw.strength is None and raw.latency_ms is None
    assert helped.strength == 1.0 and helped.latency_ms is not None and helped.latency_ms > 0
    turning = E.hold_duration(env, start, act, noisy, seconds=0.2, bundle=bundle, strength=1.0, skill="spin_normal")
    assert turning.expert == "spin_normal" and turning.goals is not None and turning.goals >= 0
    latency = E.latency_per_action(bundle, calls=5)
    assert latency["median_ms"] > 0 and latency["ddim_steps"] == 4

    # a plan's dexgen subtask: DexGen keeps the fingers on the cube from the held starts, with a coarse command
    use = DexGenUse(model=str(path), fingertip_offset=(0.0, 0.0, -0.001), strength=2.0)
    sub = SubtaskSpec(
        name="keep",
        controller="dexgen",
        dexgen=use,
        active=("fingers",),
        episode_length=10,
        success=[Held(object="cube", duration=0.05)],
    )
    env.set_start_states(start)
    outcome, _ = train_subtask(env, sub, tmp_path / "plan", eval_episodes=4)
    assert outcome.controller == "dexgen" and outcome.episodes == 4 and 0.0 <= outcome.success_rate <= 1.0

    # an rl subtask's trained policy through DexGen as a safety filter: DexGen sets the finger targets
    filtered = SubtaskSpec(
        name="hold_filtered",
        controller="rl",
        reward_template="hold",
        reward_params={"obj": "cube"},
        safety_filter=DexGenUse(model=str(path), strength=1.0),
        active=("fingers",),
        episode_length=5,
        success=[Held(object="cube", duration=0.02)],
    )
    controller = make_controller(filtered, act)
    assert type(controller).__name__ == "FilteredController"
    env.set_start_states(start)
    env.configure(action_mode="delta", reset=True)
    success, _ = run_segment(env, controller, filtered)
    assert success.shape == (4,) and len(controller.assist.latency_s) == 5  # every step went through DexGen


def test_a_dexgen_subtask_without_a_model_says_how_to_get_one(tmp_path):
    sub = SubtaskSpec(name="keep", controller="dexgen", dexgen=DexGenUse(model=str(tmp_path / "none.pt")))
    with pytest.raises(DexforgeError, match="dexforge dexgen collect"):
        make_controller(sub)
    plain = SubtaskSpec.model_validate({"name": "keep", "controller": "dexgen"})
    assert plain.dexgen is None  # the defaults apply: hold, no command, the home folder's model
    with pytest.raises(ValidationError):
        DexGenUse(mode="juggle")
    no_model = DexGenUse(model=str(tmp_path / "none.pt"))
    filtered = SubtaskSpec(name="g", controller="rl", reward_template="hold", safety_filter=no_model)
    with pytest.raises(DexforgeError, match="safety_filter needs a trained DexGen model"):
        make_controller(filtered, act=lambda obs: obs)
    with pytest.raises(ValidationError, match="only an rl subtask"):
        SubtaskSpec(name="g", controller="scripted", script="hold", safety_filter=no_model)


def test_the_summary_judges_the_highest_noise_at_which_the_raw_expert_drops():
    def run(c, strength, hold, held_to_end=0.0):
        return E.HoldResult(corruption=c.label, strength=strength, hold_s=hold, held_to_end=held_to_end, envs=4)

    quiet, mid, loud, slow = (
        E.Corruption(noise=0.5),
        E.Corruption(noise=2),
        E.Corruption(noise=4),
        E.Corruption(slow=0.5),
    )
    rows = [run(quiet, None, 6.0), run(quiet, 1.0, 6.5), run(mid, None, 2.5), run(mid, 0.1, 3.0), run(mid, 1.0, 5.0)]
    rows += [run(loud, None, 0.4), run(loud, 1.0, 4.4), run(slow, None, 1.0), run(slow, 1.0, 9.0)]
    summary, judged = E.summarize(rows, [quiet, mid, loud, slow])
    assert judged is loud  # the slowed expert also drops early, but only noise levels are judged
    assert summary[mid.label] == {"raw_hold_s": 2.5, "dexgen_best_hold_s": 5.0, "best_strength": 1.0, "ratio": 2.0}
    assert summary[loud.label]["ratio"] == 11.0
    _, none = E.summarize(rows[:2], [quiet])
    assert none is None
    capped = [run(mid, None, 0.2, held_to_end=1.0), run(mid, 1.0, 0.2, held_to_end=1.0)]  # 0.2 s runs: no drop
    assert E.summarize(capped, [mid])[1] is None


def test_objects_can_be_scaled_for_the_experts():
    from dexforge.policies.dexgen.experts import in_hand_spec, parse_asset

    assert parse_asset("cube") == ("cube", 1.0) and parse_asset("cube@1.2") == ("cube", 1.2)
    for bad in ("cube@big", "cube@9"):
        with pytest.raises(ValueError, match="cube@"):
            parse_asset(bad)
    spec = in_hand_spec("cube@1.2")
    (obj,) = spec.objects
    assert obj.asset == "cube" and obj.scale == 1.2 and obj.pose.pos[2] == pytest.approx(0.03)
    assert spec.name == "hold_cube_x1.2" and spec.success == []


def test_the_scripted_pick_finds_a_grasp_for_a_ball_with_few_envs():
    from dexforge.policies.dexgen.experts import PICK_GRID, held_start

    env = make_env("ball", n_envs=4, seed=0)
    try:
        start = held_start(env)  # the default cube grasp (first in the grid) closes above a ball: lower ones hold
        assert 1 <= start.n <= 4 and PICK_GRID[0] == (-0.04, 0.004, 0.0)
        env.set_start_states(start)
        env.configure(success=[], auto_reset=False, active=("fingers",), reset=True)
        m = env.metrics
        # every start holds the ball off the table: its centre rests at 3.4 cm, held starts are >= 5 cm higher
        assert bool(m["ball.grasped"].all()) and float(m["ball.pos"][:, 2].min()) > 0.08
    finally:
        env.close()
