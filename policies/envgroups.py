"""Env groups: the envs of one PPO training split across worker processes, one group per core.

Genesis steps a CPU scene on one core, and one process cannot step two scenes at once (two scenes
stepped from two threads ran slower than one). So training with 128 envs on a 2-core machine builds
two copies of the training env in two worker processes, 64 envs each, and steps them side by side:
every PPO step writes the actions into shared memory, wakes both workers, and reads back
observations, rewards and episode flags from shared memory. Each worker runs the same pre-step hook
(the lift test) and the same reward program as the in-process path, so PPO sees the same
transitions it would see from one env of 128. The policy, its update and the bookkeeping stay in the
calling process.

Each group draws its own layouts and start states (the spec's seed plus the group's index), so the
groups are not copies of one another.

`sim_workers()` reads the setting (`DEXFORGE_SIM_WORKERS`: a number, or `auto`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from dexforge.policies.skrl_env import SkrlHandEnv, Transition
from dexforge.sim.env import EnvState, HandEnv

WORKERS_ENV = "DEXFORGE_SIM_WORKERS"
MIN_ENVS_PER_GROUP = 32  # below this a group's step is mostly fixed overhead
MIN_AUTO_STEPS = 100_000  # auto: shorter trainings are not worth two scene builds (about 30 s each)
SEED_STRIDE = 7919  # group i draws with the spec's seed + i * SEED_STRIDE
START_TIMEOUT_S = 900.0  # a group builds its scene (and on a fresh machine compiles kernels)
STEP_TIMEOUT_S = 600.0
FLAGS = ("done", "success", "terminated", "truncated")


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def sim_workers(n_envs: int, backend: str, env_steps: int | None = None) -> int:
    """How many env groups a training of `n_envs` envs and `env_steps` steps should use.

    `DEXFORGE_SIM_WORKERS=N` asks for N (at most one per `MIN_ENVS_PER_GROUP` envs); `auto` (the default)
    uses one group per core on the CPU backend for trainings of at least `MIN_AUTO_STEPS` steps, and one
    group (this process) on a GPU, where one process already keeps the device busy."""
    raw = os.environ.get(WORKERS_ENV, "auto").strip().lower()
    if raw in ("", "auto"):
        if backend != "cpu" or (env_steps is not None and env_steps < MIN_AUTO_STEPS):
            return 1
        wanted = cores()
    else:
        try:
            wanted = int(raw)
        except ValueError:
            raise ValueError(f"{WORKERS_ENV} must be a whole number or 'auto', got {raw!r}") from None
        if wanted < 1:
            raise ValueError(f"{WORKERS_ENV} must be at least 1, got {wanted}")
    return max(1, min(wanted, n_envs // MIN_ENVS_PER_GROUP))


def split(n: int, groups: int) -> list[int]:
    """`n` envs in `groups` groups as even as can be, the larger ones first."""
    base, extra = divmod(n, groups)
    return [base + (1 if i < extra else 0) for i in range(groups)]


@dataclass
class GroupSetup:
    """What a worker needs to build its copy of the training env (all picklable)."""

    index: int
    n_envs: int
    spec: object  # TaskSpec
    env_config: object  # EnvConfig
    scene_config: object  # SceneConfig
    configure: dict
    start: EnvState | None
    reward_source: str
    pre_step: Callable[[HandEnv], None] | None
    components: list[str]
    parent: int


@dataclass
class Buffers:
    """One group's shared-memory tensors."""

    actions: torch.Tensor  # (k, A)
    obs: torch.Tensor  # (k, O)
    reward: torch.Tensor  # (k,)
    components: torch.Tensor  # (k, C)
    flags: torch.Tensor  # (k, 4) bool: FLAGS; after a reset, column 0 says whether the first episode counts

    @classmethod
    def allocate(cls, k: int, n_actions: int, n_obs: int, n_components: int) -> Buffers:
        return cls(
            actions=torch.zeros(k, n_actions).share_memory_(),
            obs=torch.zeros(k, n_obs).share_memory_(),
            reward=torch.zeros(k).share_memory_(),
            components=torch.zeros(k, n_components).share_memory_(),
            flags=torch.zeros(k, len(FLAGS), dtype=torch.bool).share_memory_(),
        )


_PRESTARTED: list[tuple[multiprocessing.process.BaseProcess, object]] = []


def prestart(groups: int) -> None:
    """Start `groups` workers now, to import Genesis while this process builds its own env; the next
    `EnvGroups` of as many groups takes them (one of another size stops them and starts its own)."""
    discard_prestarted()
    if groups < 2:
        return
    ctx = multiprocessing.get_context("spawn")
    _PRESTARTED.extend(_spawn(ctx, i) for i in range(groups))


def take_prestarted(groups: int) -> list[tuple[multiprocessing.process.BaseProcess, object]]:
    """The prestarted workers if there are `groups` of them, all alive; else none (and those stopped)."""
    taken = list(_PRESTARTED)
    _PRESTARTED.clear()
    if len(taken) == groups and all(proc.is_alive() for proc, _ in taken):
        return taken
    for proc, conn in taken:
        _stop(proc, conn)
    return []


def discard_prestarted() -> None:
    for proc, conn in _PRESTARTED:
        _stop(proc, conn)
    _PRESTARTED.clear()


def _spawn(ctx, index: int):
    mine, theirs = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(theirs, os.getpid()), name=f"dexforge-envgroup-{index}", daemon=True)
    proc.start()
    theirs.close()
    return proc, mine


def _stop(proc, conn) -> None:
    with contextlib.suppress(OSError):
        conn.send(("stop",))
    proc.join(timeout=5)
    if proc.is_alive():
        proc.kill()
        proc.join(timeout=5)
    conn.close()


class EnvGroups(SkrlHandEnv):
    """`env`'s envs, as configured now (joints, success, episode length, start states), stepped as
    `groups` copies in worker processes; a drop-in for SkrlHandEnv in `train_ppo(stepper=...)`.

    `env` itself is not stepped: it gives the sizes, the configuration to copy and a metrics batch that
    names the reward's components. Close it (or use it as a context manager) to stop the workers."""

    def __init__(
        self,
        env: HandEnv,
        reward_source: str,
        pre_step: Callable[[HandEnv], None] | None = None,
        groups: int = 2,
    ):
        from dexforge.policies.rewards.sandbox import compile_reward

        reward_fn = compile_reward(reward_source)
        super().__init__(env, reward_fn, pre_step)
        self.rollout_threads = 1  # torch's spinning threads would take the workers' cores
        if groups < 2 or env.num_envs < groups:
            raise ValueError(f"env groups: need 2 or more groups of one env or more, got {groups} for {env.num_envs}")
        _, components = reward_fn(env.metrics)
        self.component_names = list(components)
        self.sizes = split(env.num_envs, groups)
        self.buffers: list[Buffers] = []
        self.conns = []
        self.procs = []
        ctx = multiprocessing.get_context("spawn")  # Genesis and torch do not survive a fork
        configure = {
            "active": tuple(env.active_joints),
            "success": list(env.success_spec),
            "episode_length": env.episode_length,
            "auto_reset": True,
            "terminate_on_success": env.terminate_on_success,
            "action_mode": env.action_mode,
        }
        started = take_prestarted(groups)
        try:
            for i, k in enumerate(self.sizes):
                buf = Buffers.allocate(k, env.num_actions, env.num_obs, len(self.component_names))
                setup = GroupSetup(
                    index=i,
                    n_envs=k,
                    spec=env.spec.model_copy(update={"seed": env.spec.seed + i * SEED_STRIDE}),
                    env_config=env.config,
                    scene_config=env.built.config.model_copy(update={"n_envs": k, "cameras": False}),
                    configure=configure,
                    start=env.start_states,
                    reward_source=reward_source,
                    pre_step=pre_step,
                    components=self.component_names,
                    parent=os.getpid(),
                )
                proc, mine = started[i] if started else _spawn(ctx, i)
                mine.send(("setup", setup, buf))
                self.buffers.append(buf)
                self.conns.append(mine)
                self.procs.append(proc)
            for i in range(groups):
                self._wait(i, START_TIMEOUT_S, "build its scene")
        except BaseException:
            for proc, conn in started[len(self.procs) :]:
                _stop(proc, conn)
            self.close()
            raise

    # the SkrlHandEnv interface ------------------------------------------------------------------
    def reset(self, stagger: bool = False, seed: int = 0):
        for i, conn in enumerate(self.conns):
            conn.send(("reset", stagger, seed + i * SEED_STRIDE))
        self._gather("reset")
        self.episode_components.reset()
        self.counted = torch.cat([b.flags[:, 0] for b in self.buffers]).clone()
        return torch.cat([b.obs for b in self.buffers]), {}

    def advance(self, actions: torch.Tensor) -> Transition:
        start = 0
        for buf, conn in zip(self.buffers, self.conns, strict=True):
            k = buf.actions.shape[0]
            buf.actions.copy_(actions[start : start + k])
            start += k
            conn.send(("step",))
        self._gather("step")
        flags = torch.cat([b.flags for b in self.buffers])  # torch.cat copies: the next step cannot alias
        comps = torch.cat([b.components for b in self.buffers])
        return Transition(
            obs=torch.cat([b.obs for b in self.buffers]),
            reward=torch.cat([b.reward for b in self.buffers]),
            components={name: comps[:, j] for j, name in enumerate(self.component_names)},
            done=flags[:, 0],
            success=flags[:, 1],
            terminated=flags[:, 2],
            truncated=flags[:, 3],
        )

    def evaluate(self, sub, checkpoint: Path, deterministic: bool) -> tuple[int, int]:
        """Episodes of subtask `sub` (a SubtaskSpec) from the start states, acted by the policy at `checkpoint`
        (sampled or mean actions), one batch per group side by side: (successes, episodes). The groups are
        configured for `sub`'s evaluation after it: call it once training is over."""
        for conn in self.conns:
            conn.send(("evaluate", sub, str(checkpoint), deterministic))
        replies, errors = [], []
        for i in range(len(self.conns)):  # every reply is read, so that none is left for the next call
            try:
                replies.append(self._wait(i, STEP_TIMEOUT_S, "evaluate a policy"))
            except RuntimeError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return sum(r[1] for r in replies), sum(r[2] for r in replies)

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        for conn in self.conns:
            conn.close()
        self.conns, self.procs = [], []

    def __enter__(self) -> EnvGroups:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------
    def _gather(self, what: str) -> None:
        for i in range(len(self.conns)):
            self._wait(i, STEP_TIMEOUT_S, what)

    def _wait(self, i: int, timeout: float, what: str) -> tuple:
        conn, proc = self.conns[i], self.procs[i]
        try:
            ready = conn.poll(timeout)
            reply = conn.recv() if ready else None
        except (EOFError, OSError):
            proc.join(timeout=5)
            raise RuntimeError(
                f"env group {i} ({self.sizes[i]} envs) died during {what} (exit code {proc.exitcode}); "
                "its simulator crashed or was killed"
            ) from None
        if reply is None:
            raise RuntimeError(f"env group {i} did not {what} within {timeout:.0f} s")
        if reply[0] == "error":
            raise RuntimeError(f"env group {i} failed during {what}: {reply[1]}")
        return reply


def _serve(conn, parent: int) -> None:
    """A worker: import Genesis, wait for its setup, build the env, then answer reset/step/stop until told
    to stop."""
    from dexforge.jobs import die_with_parent

    die_with_parent(parent)
    torch.set_num_threads(1)  # one core per group
    # Genesis's default on the CPU is one kernel thread, but only QD_NUM_THREADS also stops its other
    # thread pool: measured, two groups stepped 20% faster with it set
    os.environ.setdefault("QD_NUM_THREADS", "1")
    from dexforge.sim.genesis_init import preload

    preload()
    try:
        message = conn.recv()
    except (EOFError, OSError):
        return
    if message[0] == "setup":
        _run_group(conn, message[1], message[2])


def _run_group(conn, setup: GroupSetup, buf: Buffers) -> None:
    try:
        from dexforge.policies.rewards.sandbox import compile_reward

        env = HandEnv(setup.spec, setup.env_config, setup.scene_config)
        env.set_start_states(setup.start)
        env.configure(**setup.configure, reset=True)
        reward_fn = compile_reward(setup.reward_source)
        conn.send(("ok",))
    except Exception as exc:  # the parent raises it with the worker's traceback
        conn.send(("error", _describe(exc)))
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if message[0] == "stop":
                return
            if message[0] == "reset":
                _, stagger, seed = message
                obs = env.reset()
                counted = torch.ones(env.num_envs, dtype=torch.bool)
                if stagger and env.episode_length > 1:  # as SkrlHandEnv.reset
                    gen = torch.Generator().manual_seed(seed)
                    phase = torch.randint(0, env.episode_length, (env.num_envs,), generator=gen)
                    env.episode_step[:] = phase.to(env.device)
                    counted = phase == 0
                    obs = env.observations()
                buf.obs.copy_(obs)
                buf.flags[:, 0] = counted
            elif message[0] == "evaluate":
                from dexforge.policies.segments import policy_successes

                _, sub, checkpoint, deterministic = message
                ok = policy_successes(env, sub, Path(checkpoint), deterministic)
                conn.send(("ok", int(ok.sum()), int(ok.numel())))
                continue
            else:
                if setup.pre_step is not None:
                    setup.pre_step(env)
                result = env.step(buf.actions.clone())
                reward, components = reward_fn(result.metrics)
                if list(components) != setup.components:
                    raise RuntimeError(f"the reward's components changed: {list(components)} != {setup.components}")
                buf.obs.copy_(result.obs)
                buf.reward.copy_(reward)
                for j, name in enumerate(setup.components):
                    buf.components[:, j] = components[name].float()
                buf.flags[:, 0] = result.reset
                buf.flags[:, 1] = result.success
                buf.flags[:, 2] = result.terminated | (result.reset & ~result.truncated)
                buf.flags[:, 3] = result.truncated
            conn.send(("ok",))
        except Exception as exc:
            conn.send(("error", _describe(exc)))


def _describe(exc: Exception) -> str:
    tb = traceback.format_exc().strip().splitlines()
    return f"{type(exc).__name__}: {exc} ({' | '.join(tb[-3:])})"
