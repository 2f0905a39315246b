"""Faults an eval suite injects into a run, to see the agent recover (or fail cleanly) as it should.

A fault is part of the run's settings (`AgentContext.faults`), so it is recorded in `run.json`, applies
the same way after `dexforge resume`, and is decided from the state alone (a critic round, an attempt
number), never from a counter that a crash would lose. Kinds:

- `critic_verdict`: the critic's answer in its first `times` rounds is replaced by `verdict` (revise or
  accept) with a finding that says it was injected; any backend.
- `malformed_reply`: in every question to `role`, the first `times` answers count as malformed (not
  valid JSON) and are asked again with that error, as a model's would be; offline backend (a scripted
  endpoint scripts its malformed replies itself).
- `reward_raises`: the reward program written for `subtask` on attempt `attempt` is replaced by one that
  passes the static check but raises when it runs (an index out of range), so the dry run stops it.
- `train_fails`: training `subtask` on attempt `attempt` fails as a failed job would, without running.
- `worker_crash`: the worker process of the `subtask`'s training job on attempt `attempt` aborts as soon
  as it starts (SIGABRT): the real crash path of the job runner.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal["critic_verdict", "malformed_reply", "reward_raises", "train_fails", "worker_crash"]

INJECTED = "(injected fault)"

RAISING_REWARD = '''"""A reward program that passes the static check and raises when it runs (an injected fault)."""


def compute_reward(m):
    beyond = m["actions"][:, 1000000]
    return beyond, {"beyond": beyond}
'''


class Fault(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FaultKind
    role: Literal["proposer", "critic", "decomposer", "reward_writer"] | None = Field(
        default=None, description="malformed_reply: the role whose answers are malformed."
    )
    subtask: str | None = Field(
        default=None, description="reward_raises, train_fails, worker_crash: the subtask (None: any)."
    )
    attempt: int = Field(default=0, ge=0, description="The subtask's attempt it applies to (0: the first).")
    times: int = Field(default=1, ge=1, le=20, description="critic_verdict, malformed_reply: how many times.")
    verdict: Literal["revise", "accept"] = Field(default="revise", description="critic_verdict: the verdict forced.")


def _for_subtask(faults: tuple[Fault, ...], kind: str, subtask: str, attempt: int) -> Fault | None:
    return next(
        (f for f in faults if f.kind == kind and f.subtask in (None, subtask) and f.attempt == attempt),
        None,
    )


def reward_raises(faults: tuple[Fault, ...], subtask: str, attempt: int) -> bool:
    return _for_subtask(faults, "reward_raises", subtask, attempt) is not None


def train_fails(faults: tuple[Fault, ...], subtask: str, attempt: int) -> bool:
    return _for_subtask(faults, "train_fails", subtask, attempt) is not None


def worker_crash(faults: tuple[Fault, ...], subtask: str, attempt: int) -> bool:
    return _for_subtask(faults, "worker_crash", subtask, attempt) is not None


def malformed_replies(faults: tuple[Fault, ...], role: str) -> int:
    """How many answers of each question to `role` count as malformed."""
    return sum(f.times for f in faults if f.kind == "malformed_reply" and f.role == role)


def forced_verdict(faults: tuple[Fault, ...], critic_round: int) -> Fault | None:
    """The critic_verdict fault that overrides the critic in this round, if any."""
    return next((f for f in faults if f.kind == "critic_verdict" and critic_round < f.times), None)
