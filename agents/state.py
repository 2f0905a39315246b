"""The graph's state: what a run has decided and measured so far (loop counters included).

Everything is JSON-friendly (specs and plans as YAML text) so that the SQLite checkpointer stores it
and a resumed run continues from it. Nodes return partial updates; `node_path` and `model_calls`
accumulate.
"""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict


class SpecVersion(TypedDict, total=False):
    version: int
    spec: str  # path of the YAML, relative to the run directory
    renders: dict[str, str]
    findings: list[dict]
    critique: dict | None
    source: str  # proposer | corrections | amendment


class Attempt(TypedDict, total=False):
    attempt: int
    plan: int  # the plan version (number of plans so far) it was trained under
    reward: str | None  # path of reward.py, relative
    stats: str | None  # path of stats.jsonl, relative
    success_rate: float
    env_steps: int
    stop_reason: str
    error: str | None
    reflection: str | None
    checkpoint: str | None
    end_states: str | None
    warm_start: str | None  # the checkpoint this attempt's training started from
    warm_start_memory: str | None  # the experience-store id of that policy, when it came from memory
    obs_size: int | None
    act_size: int | None
    reward_stats: dict | None
    components: dict | None


class AgentState(TypedDict, total=False):
    request: str
    history: list[str]  # earlier requests of a chat, oldest first
    run_id: str
    run_dir: str
    memories: list[str]
    examples: list[dict]  # succeeded similar tasks: plan and reward programs that worked (agents.schemas.Example)
    family: str
    spec_yaml: str  # the current spec
    specs: list[SpecVersion]
    critic_round: int
    pending: list[dict]  # corrections of the last critique, not yet applied
    critique_feedback: str | None  # the last critique in words, for the proposer
    verdict: str  # accept | revise
    amendment: str | None  # the user's change in chat mode
    approved: bool
    plan_yaml: str
    plans: list[str]  # paths of every plan version
    redecomposed: int
    current: int  # index of the subtask being worked on
    retries: int  # reward rewrites for the current subtask
    reward_errors: int  # invalid reward programs for the current subtask (dry run failures)
    attempts: dict[str, list[Attempt]]  # subtask -> attempts
    passed: dict[str, Attempt]  # subtask -> the attempt that passed
    failure: str | None  # why the current subtask or plan failed
    reflection: str | None  # the reward-writer's reasoning for a rewritten reward (goes with the next attempt)
    decision: str  # after judge: next | retry | redecompose | give_up | keep; after collect: improve
    collect: dict
    improved: int  # extra training rounds after a weak chained result (AgentContext.max_improve)
    improving: str | None  # the subtask being trained again in such a round
    kept: dict | None  # what that round may fall back to: {"passed": ..., "collect": ...}
    status: str  # running | succeeded | failed
    reason: str | None
    node_path: Annotated[list[str], operator.add]
    model_calls: Annotated[list[dict], operator.add]
