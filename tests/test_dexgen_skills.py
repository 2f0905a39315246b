"""DexGen's expert skills without a simulator: skill names and folders, the spin reward, counting turns in the
hand (goals) and summarising them."""

from __future__ import annotations

import math

import pytest
import torch

from dexforge.policies.dexgen import evaluate as E
from dexforge.policies.dexgen.experts import ExpertConfig, expert_folder, skill_reward
from dexforge.policies.dexgen.skills import MODES, SKILLS, skill_mode
from dexforge.policies.rewards import compile_reward, render
from dexforge.policies.rewards.templates import RewardTemplateError
from dexforge.sim.rotations import quat_from_euler, quat_mul


def test_skills_have_modes_and_folders(tmp_path):
    assert skill_mode("hold") == MODES["hold"]
    assert {skill_mode(s) for s in SKILLS if s != "hold"} == {MODES["rotate"]}
    assert expert_folder(tmp_path, "cube") == tmp_path / "experts" / "cube"
    assert expert_folder(tmp_path, "cube@1.2", "spin_thumb") == tmp_path / "experts" / "cube@1.2" / "spin_thumb"
    with pytest.raises(ValueError, match="spin_normal"):
        skill_mode("spin_sideways")
    assert "angvel_in_palm" in skill_reward("spin_fingers", "cube", ExpertConfig())
    assert "angvel_in_palm" not in skill_reward("hold", "cube", ExpertConfig())


def _spin_metrics(w: list[list[float]]) -> dict[str, torch.Tensor]:
    n = len(w)
    return {
        "cube.grasped": torch.ones(n, dtype=torch.bool),
        "cube.angvel_in_palm": torch.tensor(w),
        "cube.palm_dist": torch.full((n,), 0.05),
        "cube.on_ground": torch.zeros(n, dtype=torch.bool),
        "actions": torch.zeros(n, 16),
        "success": torch.zeros(n, dtype=torch.bool),
    }


def test_the_spin_reward_pays_for_turning_about_its_palm_axis_in_its_direction():
    reward = compile_reward(render("spin", obj="cube", axis="normal", speed=1.0))
    # palm normal = -y of the palm link: +1 rad/s about it, the same backwards, about the fingers, still
    r, parts = reward(_spin_metrics([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    assert r[0] > r[3] > r[2] and r[3] > r[1]
    assert parts["spin"][0] == pytest.approx(2.0) and parts["spin"][1] == pytest.approx(-2.0)
    assert parts["off_axis"][2] < 0 == parts["off_axis"][0]
    backwards = compile_reward(render("spin", obj="cube", axis="normal", speed=-1.0))
    rb, _ = backwards(_spin_metrics([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]))
    assert rb[0] > rb[1]
    with pytest.raises(RewardTemplateError, match="thumb, normal, fingers"):
        render("spin", obj="cube", axis="z")


def _metrics(palm_deg: list[float], obj_deg: list[float], axis: int) -> dict[str, torch.Tensor]:
    """Palm and object orientations (N envs), each a rotation about the same link axis (0 x, 1 y, 2 z)."""

    def q(deg: float) -> torch.Tensor:
        e = [0.0, 0.0, 0.0]
        e[axis] = deg
        return quat_from_euler(e)

    palm = torch.stack([q(d) for d in palm_deg])
    return {"palm_quat": palm, "cube.quat": quat_mul(palm, torch.stack([q(d) for d in obj_deg]))}


def test_turns_are_counted_in_the_palm_frame_while_held():
    counter = E.TurnCounter("fingers", 3, goal_deg=45.0)  # fingers = +z of the palm link
    alive = torch.tensor([True, True, True])
    for t in range(11):
        # env 0 turns +10 deg a step in the hand; env 1 turns with the palm (no turn in the hand), env 2 backwards
        palm = [0.0, 10.0 * t, 0.0]
        obj = [10.0 * t, 0.0, -10.0 * t]
        if t == 6:
            alive = torch.tensor([True, True, False])  # env 2 dropped: its turning no longer counts
        counter.update(_metrics(palm, obj, axis=2), "cube", alive)
    assert counter.total[0] == pytest.approx(math.radians(100), abs=1e-4)
    assert counter.total[1] == pytest.approx(0.0, abs=1e-4)
    assert counter.total[2] == pytest.approx(math.radians(-50), abs=1e-4)
    assert counter.goals.tolist() == [2.0, 0.0, 0.0]
    # judged earlier (e.g. before a drop's tumble): env 0 after 4 steps had turned 40 deg, no goal yet
    until = torch.tensor([4, 10, 3])
    assert counter.turned_until(until)[0] == pytest.approx(math.radians(40), abs=1e-4)
    assert counter.goals_until(until).tolist() == [0.0, 0.0, 0.0]
    assert counter.goals_until(torch.tensor([5, 99, -3])).tolist() == [1.0, 0.0, 0.0]  # clamped to the record
    with pytest.raises(ValueError, match="palm axis"):
        E.TurnCounter("z", 1)


def test_the_goal_summary_picks_the_strength_with_most_goals():
    def run(c, strength, goals, hold):
        return E.HoldResult(c.label, strength, hold, 0.0, 4, expert="spin_normal", goals=goals)

    noisy = E.Corruption(noise=2)
    rows = [run(noisy, None, 0.25, 1.5), run(noisy, 0.1, 1.5, 6.0), run(noisy, 1.0, 2.0, 5.0)]
    assert E.summarize_goals(rows, [noisy])[noisy.label] == {
        "raw_goals": 0.25,
        "dexgen_best_goals": 2.0,
        "best_strength": 1.0,
        "raw_hold_s": 1.5,
        "dexgen_hold_s": 5.0,
    }
