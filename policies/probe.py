"""Probes of a plan's pieces for the agent's tools, as worker jobs (see dexforge.jobs): a reward program
dry-run on a saved metrics batch, one planned or scripted leg run on a few envs, and a filmed episode of
a trained rl subtask.

`dry_run_reward_job` never imports Genesis (it only needs torch and the reward sandbox); the other two
build the spec in their worker. Each returns a result model of `dexforge.policies.probe_types` as JSON.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dexforge.policies.probe_types import DryRunResult, ProbeMotionResult, RolloutFramesResult

REACHED_TOL = 0.02  # m: a leg without success predicates has reached its goal within this distance
PARTS = ("thumb", "index", "middle", "ring", "little", "palm", "hand", "arm")  # ContactLog's rows


# dry run ---------------------------------------------------------------------------------------------
def dry_run_reward_job(source: str, metrics_path: str, check_keys: bool = True) -> dict:
    """Check the reward program `source` and run it once on the metrics batch saved at `metrics_path`
    (torch.save of metric key -> tensor, num_envs rows), in the reward sandbox. A rejected or failing
    program is a normal result (ok=False, with the error's kind, message and line). Returns a DryRunResult."""
    from dexforge.policies.rewards.check import RewardError
    from dexforge.policies.rewards.sandbox import dry_run

    path = Path(metrics_path)
    if not path.is_file():
        raise FileNotFoundError(f"no metrics batch at {path}; make one with check_scene or metrics_batch")
    metrics = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(metrics, dict) or not all(isinstance(v, torch.Tensor) for v in metrics.values()):
        raise ValueError(f"{path.name} is not a metrics batch (a dict of metric key -> tensor)")
    n = int(next(iter(metrics.values())).shape[0]) if metrics else 0
    try:
        report = dry_run(source, metrics, check_keys=check_keys)
    except RewardError as exc:  # the program's fault: an answer for the reward writer, not a failed job
        result = DryRunResult(
            ok=False, num_envs=n, error_kind=type(exc).__name__, error=str(exc), line=getattr(exc, "line", None)
        )
        return result.model_dump(mode="json")
    result = DryRunResult(
        ok=True,
        num_envs=report.num_envs,
        reward=report.reward.model_dump(),
        components={k: s.model_dump() for k, s in report.components.items()},
        keys_used=list(report.keys_used),
    )
    return result.model_dump(mode="json")


# contacts --------------------------------------------------------------------------------------------
class ContactLog:
    """Which hand part touched which body (an object or the ground) in which env, at any step so far.

    `hit` is (N, len(PARTS), K + 1) bool: rows are PARTS (the five fingers and the palm as in the metrics'
    contact parts, "hand" for the hand's other links, "arm" for an arm mount's links), columns the K objects
    in the env's order, then the ground. `read()` after each step adds that step's contacts."""

    def __init__(self, env):
        from dexforge.sim import hand as H

        b = env.built
        self.env = env
        self.bodies = [*env.objects, "ground"]
        n_links = b.scene.rigid_solver.n_links
        part = torch.full((n_links + 1,), -1, dtype=torch.long)  # the last entry answers index -1
        body = torch.full((n_links + 1,), -1, dtype=torch.long)
        part[b.hand.link_start : b.hand.link_end] = PARTS.index("hand")
        for p, name in enumerate(H.CONTACT_PARTS):
            for link in H.FINGER_LINKS[name]:
                part[b.hand.get_link(link).idx] = p
        if b.arm is not None:
            part[b.arm.link_start : b.arm.link_end] = PARTS.index("arm")
        for k, entity in enumerate(env.objects.values()):
            body[entity.link_start : entity.link_end] = k
        body[b.ground.link_start : b.ground.link_end] = len(env.objects)
        self._part, self._body = part.to(env.device), body.to(env.device)
        self.hit = torch.zeros(env.num_envs, len(PARTS), len(self.bodies), dtype=torch.bool, device=env.device)

    def read(self) -> None:
        collider = self.env.built.scene.rigid_solver.collider
        cfg = collider.collider_config
        if cfg.has_prunable_contacts or cfg.has_non_box_plane_convex_convex:  # as sim.contacts.ContactReader
            data = collider.get_contacts(as_tensor=True, to_torch=True, is_padded=False)
            la, lb = data["link_a"].long(), data["link_b"].long()
            valid = (la >= 0) & (lb >= 0)
        else:
            data = collider.get_contacts(as_tensor=True, to_torch=True, is_padded=True)
            n = data["n_contacts"].reshape(-1)
            cmax = int(n.max()) if n.numel() else 0
            la, lb = data["link_a"][:, :cmax].long(), data["link_b"][:, :cmax].long()
            valid = torch.arange(cmax, device=la.device)[None, :] < n[:, None]
        if la.shape[-1] == 0:
            return
        la, lb = torch.where(valid, la, -1), torch.where(valid, lb, -1)
        pa, pb, ba, bb = self._part[la], self._part[lb], self._body[la], self._body[lb]
        k = len(self.bodies)
        dump = len(PARTS) * k
        cell = torch.where((pa >= 0) & (bb >= 0), pa * k + bb, torch.where((pb >= 0) & (ba >= 0), pb * k + ba, dump))
        counts = torch.zeros(self.env.num_envs, dump + 1, device=la.device).scatter_add_(1, cell, valid.float())
        self.hit |= (counts[:, :dump] > 0).view(-1, len(PARTS), k).to(self.hit.device)

    def pairs(self, bodies: set[str]) -> list[dict]:
        """[{"a": part, "b": body, "envs": fraction of envs}] for contacts with `bodies`, most frequent first."""
        frac = self.hit.float().mean(dim=0)
        out = [
            {"a": part, "b": body, "envs": round(float(frac[p, j]), 4)}
            for p, part in enumerate(PARTS)
            for j, body in enumerate(self.bodies)
            if body in bodies and float(frac[p, j]) > 0
        ]
        return sorted(out, key=lambda d: -d["envs"])


def _leg_objects(env, sub) -> set[str]:
    """Objects a leg is about, whose contact with the hand is expected: its goal's object (an approach), the
    objects its predicates name, and every object the hand touches as the leg begins (one it holds)."""
    about = set()
    if sub.goal is not None and sub.goal.relative_to is not None and sub.goal.lift is None:
        about.add(sub.goal.relative_to)
    for pred in sub.success:
        about |= {getattr(pred, f, None) for f in ("object", "container", "surface")}
    m = env.metrics
    about |= {k for k in env.objects if bool((m[f"{k}.n_contacts"] > 0).any())}
    return about - {None}


# a planned or scripted leg ----------------------------------------------------------------------------
def probe_motion_job(
    spec_yaml: str,
    plan_yaml: str,
    index: int,
    start_states: str | None = None,
    n_envs: int = 4,
    backend: str = "cpu",
) -> dict:
    """Run subtask `index` of the plan (motion_plan or scripted) once on `n_envs` envs from the task's
    randomised layout, or from `start_states` (end_states.pt of the previous subtask) when the subtask starts
    from the previous one. Reports whether the palm got to its goal, the contacts it should not make (the
    ground, objects the leg is not about) and how far each object moved. Returns a ProbeMotionResult."""
    from dexforge.policies.controllers import MotionPlanController, run_episode
    from dexforge.policies.jobs import _load
    from dexforge.policies.segments import make_controller, segment
    from dexforge.sim.env import EnvConfig, HandEnv
    from dexforge.sim.probe import load_start_states
    from dexforge.sim.scene import SceneConfig

    spec, plan = _load(spec_yaml, plan_yaml)
    sub = _subtask(plan, index)
    if sub.controller not in ("motion_plan", "scripted"):
        need = "training (train_subtask)" if sub.controller == "rl" else "the DexGen model (train_subtask measures it)"
        raise ValueError(
            f"subtask '{sub.name}' is {sub.controller}: probe_motion runs planned or scripted legs; "
            f"an {sub.controller} subtask needs {need}"
        )
    if not 1 <= n_envs <= 1024:
        raise ValueError(f"n_envs {n_envs} is out of range; use 1 to 1024")
    env = HandEnv(spec, EnvConfig(auto_reset=False), SceneConfig(n_envs=n_envs, backend=backend))
    if sub.start == "previous" and start_states:
        load_start_states(env, start_states)
    segment(env, sub, reset=True)
    m = env.metrics
    start_pos = {k: m[f"{k}.pos"].clone() for k in env.objects}
    palm_start = m["palm_pos"].clone()
    about = _leg_objects(env, sub)
    log = ContactLog(env)
    controller = make_controller(sub)
    with torch.no_grad():
        episode = run_episode(env, controller, watch=lambda t, r: log.read())
    m = env.metrics
    if isinstance(controller, MotionPlanController) and controller.path is not None:
        goal = controller.path.goal
    else:  # a scripted leg: the wrist holds, so the palm should stay where it was
        goal = palm_start
    error = (m["palm_pos"] - goal.to(m["palm_pos"])).norm(dim=-1)
    reached = episode.success_final if sub.success else (error < REACHED_TOL) & ~episode.failed
    result = ProbeMotionResult(
        subtask=sub.name,
        controller=sub.controller,
        episodes=env.num_envs,
        reached_rate=float(reached.float().mean()),
        final_error_m=float(error.mean()),
        collisions=log.pairs({*env.objects, "ground"} - about),
        moved_objects={k: float((m[f"{k}.pos"] - p).norm(dim=-1).mean()) for k, p in start_pos.items()},
        steps=episode.steps,
    )
    return result.model_dump(mode="json")


def _subtask(plan, index: int):
    if not 0 <= index < len(plan.subtasks):
        names = [f"{i}: {s.name}" for i, s in enumerate(plan.subtasks)]
        raise ValueError(f"subtask index {index} is out of range; the plan's subtasks are {names}")
    return plan.subtasks[index]


# a trained rl subtask, filmed ------------------------------------------------------------------------
def rollout_frames_job(
    spec_yaml: str,
    plan_yaml: str,
    index: int,
    checkpoint: str,
    out_dir: str,
    start_states: str | None = None,
    frames: int = 6,
    width: int = 320,
    height: int = 240,
    backend: str = "cpu",
) -> dict:
    """One episode of rl subtask `index`'s trained policy (`checkpoint`, in its measured action mode when
    checkpoint.mode.json exists) on one env, from the task's layout or from one of `start_states`: `frames`
    PNGs evenly spaced over it in `out_dir` (oblique camera), its success, and the mean per step of each
    component of the subtask's reward program. Returns a RolloutFramesResult."""
    from dexforge.policies.jobs import _load
    from dexforge.policies.policy_files import checkpoint_misfit, load_policy, saved_config
    from dexforge.policies.ppo import PPOConfig
    from dexforge.policies.rewards.sandbox import compile_reward
    from dexforge.policies.segments import make_controller, segment
    from dexforge.policies.train import reward_program
    from dexforge.sim.probe import _camera_env, _save_png, load_start_states
    from dexforge.sim.render import _sync

    spec, plan = _load(spec_yaml, plan_yaml)
    sub = _subtask(plan, index)
    if sub.controller != "rl":
        raise ValueError(f"subtask '{sub.name}' is {sub.controller}: rollout_frames films a trained rl subtask")
    if not 1 <= frames <= 30:
        raise ValueError(f"frames {frames} is out of range; ask for 1 to 30")
    path = Path(checkpoint)
    env = _camera_env(spec, width, height, backend)
    segment(env, sub, reset=False)  # the observation and action sizes of this subtask
    misfit = checkpoint_misfit(path, env.num_obs, env.num_actions, PPOConfig(**saved_config(path)))
    if misfit is not None:
        raise ValueError(f"checkpoint {path} does not fit subtask '{sub.name}': {misfit}")
    act = load_policy(env, path)
    if sub.start == "previous" and start_states:
        load_start_states(env, start_states)
    segment(env, sub, reset=True)
    reward_fn = compile_reward(reward_program(sub))
    camera = env.built.cameras["oblique"]
    steps = sub.episode_length
    at = [0] if frames == 1 else [round(k * steps / (frames - 1)) for k in range(frames)]
    out = Path(out_dir)
    _sync(env)
    paths = [_save_png(camera, out / "frame_00.png")] if 0 in at else []
    controller = make_controller(sub, act)
    env.episode_step.zero_()
    controller.begin(env)
    sums: dict[str, float] = {}
    success = False
    with torch.no_grad():
        for t in range(1, steps + 1):
            result = controller.step(env)
            _, components = reward_fn(result.metrics)
            for k, v in components.items():
                sums[k] = sums.get(k, 0.0) + float(v.float().sum())
            success = bool(result.success[0])
            for _ in range(at.count(t)):
                paths.append(_save_png(camera, out / f"frame_{len(paths):02d}.png"))
    result = RolloutFramesResult(
        subtask=sub.name,
        frames=[str(p) for p in paths],
        success=success,
        steps=steps,
        components={k: v / steps for k, v in sums.items()},
    )
    return result.model_dump(mode="json")
