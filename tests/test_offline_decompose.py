"""The offline decomposer's lift test before a transport (no Genesis)."""

from __future__ import annotations

import math

import pytest

from dexforge.agents.offline import OfflineReasoner
from dexforge.agents.offline.decompose import CARRY_TEST_SHARE, LIFT_TEST_STEPS, SPEED
from dexforge.agents.schemas import DecomposeBrief, ProposeBrief


def _plan(request: str):
    reasoner = OfflineReasoner()
    proposal = reasoner.propose(ProposeBrief(request=request))
    brief = DecomposeBrief(request=request, family=proposal.family, spec=proposal.spec)
    return proposal.spec, reasoner.decompose(brief).plan


@pytest.mark.parametrize("request_", ["Put apple into bowl", "put the cube in the bowl", "place the can on the plate"])
def test_a_grasp_before_a_transport_is_tested_by_a_carry_toward_the_container(request_):
    spec, plan = _plan(request_)
    grasp, transport = plan.subtasks[1], plan.subtasks[2]
    assert grasp.name == "grasp" and transport.name == "transport"
    obj = spec.object_spec(spec.success[0].object).pose.pos
    target = spec.object_spec(transport.goal.relative_to).pose.pos
    way = (target[0] - obj[0], target[1] - obj[1])
    dx, dy = grasp.lift_test_shift
    moved = math.hypot(dx, dy)
    # toward the container, at most the transport's speed over the test's steps and a share of the way
    assert dx * way[0] + dy * way[1] == pytest.approx(moved * math.hypot(*way), rel=1e-3)
    assert 0.0 < moved <= SPEED * LIFT_TEST_STEPS * spec.dt + 1e-4
    assert moved <= CARRY_TEST_SHARE * math.hypot(*way) + 1e-4
    assert grasp.lift_test_hold >= grasp.lift_test_steps
    # the transport places the object's centre over the container's, wherever the grasp holds it
    assert transport.goal.carried == spec.success[0].object and transport.goal.offset[:2] == (0.0, 0.0)


@pytest.mark.parametrize("request_", ["Pick up bottle", "lift the cube"])
def test_a_grasp_before_a_lift_is_tested_in_place(request_):
    _, plan = _plan(request_)
    assert plan.subtasks[1].name == "grasp" and plan.subtasks[1].lift_test_shift is None


@pytest.mark.parametrize(("request_", "carry"), [("Put apple into bowl", "transport"), ("Pick up bottle", "lift")])
def test_a_carry_that_dropped_its_object_trains_the_grasp_again(request_, carry):
    reasoner = OfflineReasoner()
    proposal = reasoner.propose(ProposeBrief(request=request_))
    first = reasoner.decompose(DecomposeBrief(request=request_, family=proposal.family, spec=proposal.spec)).plan
    failure = f"subtask '{carry}' (motion_plan) failed: attempt 0: success 48% < 50% after 0 env steps"
    again = reasoner.decompose(
        DecomposeBrief(request=request_, family=proposal.family, spec=proposal.spec, previous=first, failure=failure)
    )
    old, new = {s.name: s for s in first.subtasks}, {s.name: s for s in again.plan.subtasks}
    assert new["approach"] == old["approach"]  # kept: the run does not move the hand to the object again
    assert new["grasp"].budget.env_steps == 2 * old["grasp"].budget.env_steps  # trained again, longer
    assert new["grasp"].episode_length == old["grasp"].episode_length
    assert new[carry].goal.speed < old[carry].goal.speed
    assert f"{carry} failed by dropping what grasp holds" in again.reasoning


def test_a_failed_approach_does_not_train_the_grasp_again():
    reasoner = OfflineReasoner()
    proposal = reasoner.propose(ProposeBrief(request="Put apple into bowl"))
    first = reasoner.decompose(DecomposeBrief(request="x", family=proposal.family, spec=proposal.spec)).plan
    failure = "subtask 'approach' (motion_plan) failed: attempt 0: success 10% < 50%"
    again = reasoner.decompose(
        DecomposeBrief(request="x", family=proposal.family, spec=proposal.spec, previous=first, failure=failure)
    ).plan
    assert again.subtasks[1] == first.subtasks[1] and again.subtasks[0] != first.subtasks[0]
