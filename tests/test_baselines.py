"""The fair controls of benchmarks/gendexhand.py, built from the decomposed plan (no Genesis: synthetic metrics).

The plain-RL control's staged reward must be made of the plan's own terms: each stage is the subtask's own
reward program (or the template of what a planned subtask does), it is passed when the subtask's success
predicates hold, and the reward rises stage by stage."""

from __future__ import annotations

import pytest
import torch

from dexforge.agents.offline import OfflineReasoner
from dexforge.agents.schemas import DecomposeBrief, ProposeBrief
from dexforge.policies.baselines import freeze_only_plan, plain_staged_plan, stage_source, staged_reward
from dexforge.policies.rewards import check_program, compile_reward
from dexforge.policies.rewards.templates import render

SENTENCES = ["Open Cabinet", "Pick up bottle", "Put apple into bowl"]


def _plan(request: str):
    reasoner = OfflineReasoner()
    proposal = reasoner.propose(ProposeBrief(request=request))
    brief = DecomposeBrief(request=request, family=proposal.family, spec=proposal.spec)
    return proposal.spec, reasoner.decompose(brief).plan


def _metrics(spec, n: int = 4) -> dict[str, torch.Tensor]:
    """Every key a reward may read, zero-ish: nothing reached, lifted or opened."""
    m = {
        "palm_pos": torch.full((n, 3), 0.5),
        "actions": torch.zeros(n, 20),
        "step": torch.zeros(n, dtype=torch.long),
        "success": torch.zeros(n, dtype=torch.bool),
        "hand_closure": torch.zeros(n),
    }
    for o in spec.objects:
        k = o.key
        pos = torch.tensor(o.pose.pos).expand(n, 3).clone()
        m |= {
            f"{k}.pos": pos,
            f"{k}.start_pos": pos.clone(),
            f"{k}.quat": torch.tensor([1.0, 0, 0, 0]).expand(n, 4).clone(),
            f"{k}.start_quat": torch.tensor([1.0, 0, 0, 0]).expand(n, 4).clone(),
            f"{k}.linvel": torch.zeros(n, 3),
            f"{k}.angvel": torch.zeros(n, 3),
            f"{k}.lift": torch.zeros(n),
            f"{k}.palm_dist": torch.full((n,), 0.5),
            f"{k}.fingertip_dist": torch.full((n, 5), 0.5),
            f"{k}.contacts": torch.zeros(n, 6, dtype=torch.bool),
            f"{k}.contact_force": torch.zeros(n, 6),
            f"{k}.n_contacts": torch.zeros(n, dtype=torch.long),
            f"{k}.grasped": torch.zeros(n, dtype=torch.bool),
            f"{k}.grasp_time": torch.zeros(n),
            f"{k}.on_ground": torch.ones(n, dtype=torch.bool),
            f"{k}.open_fraction": torch.zeros(n),
            f"{k}.joint_pos": torch.zeros(n, 1),
        }
    return m


@pytest.mark.parametrize("request_", SENTENCES)
def test_staged_reward_is_made_of_the_plans_terms(request_: str) -> None:
    spec, plan = _plan(request_)
    source = staged_reward(plan, spec)
    check_program(source)
    for sub in plan.subtasks:  # every subtask's own program (rl) or stage template is in it, verbatim
        stage, _ = stage_source(sub, spec)
        assert stage.strip().splitlines()[-1].strip() in source
        body = [line.strip() for line in stage.strip().splitlines() if line.strip().startswith('"')]
        assert all(line in source for line in body)
    rl = [s for s in plan.subtasks if s.controller == "rl"]
    for sub in rl:  # the learnt subtasks' rewards are the very ones the decomposed plan trains with
        assert render(sub.reward_template, **sub.reward_params).strip().splitlines()[3] in source


def test_staged_reward_rises_stage_by_stage() -> None:
    spec, plan = _plan("Pick up bottle")  # approach, grasp, lift
    names = [s.name for s in plan.subtasks]
    assert names == ["approach", "grasp", "lift"]
    fn = compile_reward(staged_reward(plan, spec))
    m = _metrics(spec)
    obj = spec.success[0].object
    approach = plan.subtasks[0].success[0]
    rewards = []
    r0, comps = fn(m)
    rewards.append(r0)
    assert torch.equal(comps["stage"], torch.zeros(4))
    # stage 1: the palm at the approach goal
    m["palm_pos"] = m[f"{obj}.pos"] + torch.tensor(approach.offset)
    r1, comps = fn(m)
    assert torch.equal(comps["stage"], torch.ones(4))
    # stage 2 and 3: lifted past the grasp's and then the lift's heights
    heights = [s.success[0].height for s in plan.subtasks[1:]]
    m[f"{obj}.lift"] = torch.full((4,), heights[0] + 1e-3)
    m[f"{obj}.grasped"] = torch.ones(4, dtype=torch.bool)
    r2, comps = fn(m)
    assert torch.equal(comps["stage"], torch.full((4,), 2.0))
    m[f"{obj}.lift"] = torch.full((4,), max(heights) + 0.01)
    m["success"] = torch.ones(4, dtype=torch.bool)
    r3, comps = fn(m)
    assert torch.equal(comps["stage"], torch.full((4,), 3.0)) and bool((comps["next_stage_term"] == 0).all())
    assert bool((r0 < r1).all() and (r1 < r2).all() and (r2 < r3).all())


@pytest.mark.parametrize("request_", SENTENCES)
def test_controls_share_the_budget_and_keep_the_success(request_: str) -> None:
    spec, plan = _plan(request_)
    plain = plain_staged_plan(plan, spec, 600_000)
    (sub,) = plain.subtasks
    assert sub.controller == "rl" and sub.active == ("all",) and sub.start == "initial"
    assert sub.success == spec.success and sub.budget.env_steps == 600_000
    frozen = freeze_only_plan(plan, spec, 600_000)
    assert [s.name for s in frozen.subtasks] == [s.name for s in plan.subtasks]
    assert all(s.controller != "motion_plan" for s in frozen.subtasks)
    for before, after in zip(plan.subtasks, frozen.subtasks, strict=True):
        assert after.active == before.active and after.success == before.success
    rl = [s for s in frozen.subtasks if s.controller == "rl"]
    assert sum(s.budget.env_steps for s in rl) == pytest.approx(600_000, abs=len(rl))
