"""Measuring an in-hand expert with and without DexGen (DexterityGen's simulated experiment): its actions
corrupted (`Corruption`), the time until it drops the object and, for a spin expert, the goals it reaches in
a fixed simulated time (`hold_duration`), the summaries the benchmark and `dexforge dexgen eval` print, and
DexGen's latency per action.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch

from dexforge.policies.dexgen.collect import WristMotion, WristMotionConfig, object_held
from dexforge.policies.dexgen.pipeline import ready_envs
from dexforge.policies.dexgen.skills import skill_mode
from dexforge.sim.env import EnvState, HandEnv


@dataclass
class Corruption:
    """How the expert's actions are spoiled: `noise` e adds U(-e, e); `slow` a multiplies by U(0, a)."""

    noise: float = 0.0
    slow: float | None = None

    def apply(self, actions: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        out = actions
        if self.slow is not None:
            out = out * torch.rand(out.shape, generator=gen).to(out) * self.slow
        if self.noise:
            out = out + (2 * torch.rand(out.shape, generator=gen).to(out) - 1) * self.noise
        return out

    @property
    def label(self) -> str:
        return f"slow U(0,{self.slow:g})" if self.slow is not None else f"noise U(-{self.noise:g},{self.noise:g})"


@dataclass
class HoldResult:
    corruption: str
    strength: float | None  # None: the raw (corrupted) expert, no DexGen
    hold_s: float  # mean time to drop, capped at the run's length
    held_to_end: float  # fraction of envs that never dropped
    envs: int
    latency_ms: float | None = None  # per DexGen call (the whole batch)
    per_env: list[float] = field(default_factory=list)
    expert: str = "hold"  # the expert's skill
    goals: float | None = None  # spin experts: mean goals (goal_deg turns about the axis) per env in the run
    turned_deg: float | None = None  # spin experts: mean turn about the axis while held, deg


class TurnCounter:
    """How far each env's object has turned in the hand about a palm axis (`rewards.templates.PALM_AXES`),
    summed step by step from its orientation relative to the palm while `alive`; goals = whole `goal_deg`
    turns in the commanded direction. `history[k]` is the sum after the k-th update (the first sets the
    reference), so that a turn can be judged up to a chosen step (`goals_until`)."""

    def __init__(self, axis: str, n_envs: int, goal_deg: float = 45.0) -> None:
        from dexforge.policies.rewards.templates import PALM_AXES

        if axis not in PALM_AXES:
            raise ValueError(f"unknown palm axis {axis!r}; one of {', '.join(PALM_AXES)}")
        if goal_deg <= 0:
            raise ValueError(f"goal_deg must be > 0, got {goal_deg}")
        self.axis = torch.tensor(PALM_AXES[axis])
        self.goal = math.radians(goal_deg)
        self.total = torch.zeros(n_envs)
        self.history: list[torch.Tensor] = []
        self._prev: torch.Tensor | None = None

    def update(self, m: dict, obj: str, alive: torch.Tensor) -> None:
        from dexforge.sim.rotations import quat_conj, quat_mul

        q = quat_mul(quat_conj(m["palm_quat"]), m[f"{obj}.quat"]).cpu().float()
        if self._prev is not None:
            d = quat_mul(q, quat_conj(self._prev))  # this step's turn, in the palm frame
            d = torch.where(d[:, :1] < 0, -d, d)
            angle = 2 * torch.atan2((d[:, 1:] * self.axis).sum(-1), d[:, 0])
            self.total = self.total + torch.where(alive.cpu(), angle, torch.zeros_like(angle))
        self._prev = q
        self.history.append(self.total.clone())

    @property
    def goals(self) -> torch.Tensor:
        return torch.floor(self.total.clamp(min=0) / self.goal)

    def turned_until(self, step: torch.Tensor) -> torch.Tensor:
        """Each env's turn after `step[i]` updates past the first (clamped to what was recorded), rad."""
        cum = torch.stack(self.history)  # (updates, N)
        idx = step.clamp(0, cum.shape[0] - 1).long()
        return cum[idx, torch.arange(cum.shape[1])]

    def goals_until(self, step: torch.Tensor) -> torch.Tensor:
        return torch.floor(self.turned_until(step).clamp(min=0) / self.goal)


@torch.no_grad()
def hold_duration(
    env: HandEnv,
    start: EnvState,
    act,
    corruption: Corruption,
    *,
    seconds: float,
    bundle=None,
    strength: float | None = None,
    seed: int = 0,
    grace_s: float = 0.1,
    skill: str = "hold",
    wrist: WristMotionConfig | None = None,
    goal_deg: float = 45.0,
    settle_s: float = 0.5,
) -> HoldResult:
    """Run the corrupted expert (through DexGen when `bundle` is given, in the skill's mode) with the wrist
    moving (`wrist`, default WristMotionConfig()); the mean time until the object is dropped (not held for
    longer than `grace_s`), capped at `seconds`. For a spin_<axis> expert also the goals achieved in that
    fixed simulated time: whole `goal_deg` turns about the axis, reached at least `settle_s` before the drop
    (the tumble of a falling object is no goal)."""
    from dexforge.policies.dexgen.assist import DexGenAssist

    steps = round(seconds / env.dt)
    ready_envs(env, start, steps)
    gen = torch.Generator().manual_seed(seed)

    def spoiled(obs: torch.Tensor) -> torch.Tensor:
        return corruption.apply(act(obs), gen)

    mode = skill_mode(skill)
    motion = WristMotion(wrist or WristMotionConfig(), seed=10_000 + seed)
    motion.begin(env)
    assist = DexGenAssist(bundle, spoiled, strength=strength, mode=mode, pre_step=motion, seed=seed) if bundle else None
    if assist is not None:
        assist.begin(env)
    obj = env.object_names[0]
    grace = max(1, round(grace_s / env.dt))
    lost = torch.zeros(env.num_envs, dtype=torch.long)
    drop = torch.full((env.num_envs,), steps, dtype=torch.long)
    turns = TurnCounter(skill[5:], env.num_envs, goal_deg) if skill.startswith("spin_") else None
    if turns is not None:
        turns.update(env.metrics, obj, torch.ones(env.num_envs, dtype=torch.bool))
    for t in range(steps):
        if assist is not None:
            result = assist.step(env)
        else:
            motion(env)
            result = env.step(spoiled(env.observations()))
        held = object_held(result.metrics, obj).cpu() & ~result.reset.cpu()
        lost = torch.where(held, torch.zeros_like(lost), lost + 1)
        newly = (lost == grace) & (drop == steps)
        drop[newly] = t + 1 - grace
        if turns is not None:
            turns.update(result.metrics, obj, drop == steps)
    per_env = (drop.float() * env.dt).tolist()
    # turns count up to settle_s before a drop (the fall's tumble is no goal), to the end of a run that held
    judged_until = torch.where(drop < steps, drop - round(settle_s / env.dt), drop)
    latency = None
    if assist is not None and assist.latency_s:
        latency = 1000 * sum(assist.latency_s) / len(assist.latency_s)
    return HoldResult(
        corruption=corruption.label,
        strength=strength if bundle is not None else None,
        hold_s=round(sum(per_env) / len(per_env), 3),
        held_to_end=round(sum(d >= steps for d in drop.tolist()) / env.num_envs, 3),
        envs=env.num_envs,
        latency_ms=None if latency is None else round(latency, 2),
        per_env=[round(x, 2) for x in per_env],
        expert=skill,
        goals=None if turns is None else round(float(turns.goals_until(judged_until).mean()), 3),
        turned_deg=None if turns is None else round(math.degrees(float(turns.turned_until(judged_until).mean())), 1),
    )


def summarize(rows: Sequence[HoldResult], corruptions: Sequence[Corruption], drops_within_s: float = 3.0):
    """Per corruption: the raw expert's hold time, DexGen's best (and its strength) and their ratio; and the
    judged corruption, the highest noise at which the raw expert drops within `drops_within_s` on average and
    in most envs (None if none: a run capped before anything dropped judges nothing)."""
    summary, dropped = {}, {}
    for c in corruptions:
        raw = next(r for r in rows if r.corruption == c.label and r.strength is None)
        best = max((r for r in rows if r.corruption == c.label and r.strength is not None), key=lambda r: r.hold_s)
        dropped[c.label] = raw.held_to_end < 0.5
        summary[c.label] = {
            "raw_hold_s": raw.hold_s,
            "dexgen_best_hold_s": best.hold_s,
            "best_strength": best.strength,
            "ratio": round(best.hold_s / max(raw.hold_s, 1e-3), 2),
        }
    dropping = [
        c
        for c in corruptions
        if c.slow is None and dropped[c.label] and summary[c.label]["raw_hold_s"] < drops_within_s
    ]
    return summary, (max(dropping, key=lambda c: c.noise) if dropping else None)


def summarize_goals(rows: Sequence[HoldResult], corruptions: Sequence[Corruption]) -> dict:
    """Per corruption of a spin expert: goals and hold time raw and with DexGen (its best strength by goals)."""
    out = {}
    for c in corruptions:
        raw = next(r for r in rows if r.corruption == c.label and r.strength is None)
        assisted = [r for r in rows if r.corruption == c.label and r.strength is not None]
        best = max(assisted, key=lambda r: (r.goals or 0.0, r.hold_s))
        out[c.label] = {
            "raw_goals": raw.goals,
            "dexgen_best_goals": best.goals,
            "best_strength": best.strength,
            "raw_hold_s": raw.hold_s,
            "dexgen_hold_s": best.hold_s,
        }
    return out


def latency_per_action(bundle, *, calls: int = 50, strength: float = 1.0) -> dict:
    """ms per DexGen action for one env (batch 1): median and p95 over `calls`, guided, on this machine."""
    cfg = bundle.cfg
    cond = bundle.normalizers["cond"].unnormalize(torch.zeros(1, cfg.cond_dim))
    command = torch.zeros(1, cfg.motion_dim)
    times = []
    for _ in range(calls + 5):
        t0 = time.perf_counter()
        bundle.act(cond, 0, command=command, strength=strength)
        times.append(1000 * (time.perf_counter() - t0))
    times = sorted(times[5:])
    return {
        "median_ms": round(times[len(times) // 2], 2),
        "p95_ms": round(times[math.ceil(0.95 * len(times)) - 1], 2),
        "ddim_steps": cfg.ddim_steps,
        "torch_threads": torch.get_num_threads(),
    }


def as_json(results: Sequence[HoldResult]) -> list[dict]:
    return [asdict(r) for r in results]
