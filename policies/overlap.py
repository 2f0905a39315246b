"""The overlapped PPO update (`PPOConfig.overlap`, on by default in subtask training): while env groups step
rollout k+1, rollout k's update runs in a thread of the training process, so neither core idles during it.

`act_and_record` is one step of skrl's sequential loop (act, step, record), shared with `policies.ppo`.
"""

from __future__ import annotations

import contextlib
import os

import torch

from dexforge.policies.skrl_env import SkrlHandEnv

OVERLAP_ENV = "DEXFORGE_PPO_OVERLAP"
UPDATE_NICE = int(os.environ.get("DEXFORGE_UPDATE_NICE", "0"))  # experiment: the overlapped update's thread niceness


def act_and_record(agent, wrapped: SkrlHandEnv, observations: torch.Tensor, timestep: int) -> torch.Tensor:
    """One step of every env acted by `agent`, recorded in its memory; the next observations."""
    with torch.no_grad():
        actions, _ = agent.act(observations, None, timestep=timestep, timesteps=1 << 40)
        next_obs, rewards, terminated, truncated, infos = wrapped.step(actions)
        agent.record_transition(
            observations=observations,
            states=None,
            actions=actions,
            rewards=rewards,
            next_observations=next_obs,
            next_states=None,
            terminated=terminated,
            truncated=truncated,
            infos=infos,
            timestep=timestep,
            timesteps=1 << 40,
        )
    return next_obs


class Overlapped:
    """`PPOConfig.overlap`: a second agent (the actor) collects each rollout into its own memory while the
    learner's update of the previous rollout runs in a thread; then the memories swap and the actor takes the
    learner's new weights. Torch keeps one thread throughout: the groups' workers have the cores."""

    def __init__(self, learner, actor, wrapped: SkrlHandEnv, rollouts: int):
        import threading

        self.learner, self.actor, self.wrapped, self.rollouts = learner, actor, wrapped, rollouts
        self.actor.enable_training_mode(True)
        self._threading = threading
        self.thread: threading.Thread | None = None
        self.timestep = 0
        self.error: BaseException | None = None
        torch.set_num_threads(1)
        self._sync()

    def _sync(self) -> None:
        """The actor takes the learner's networks and normalisers (not its optimiser, which it never steps)."""
        for name, module in self.learner.checkpoint_modules.items():
            if name != "optimizer" and hasattr(module, "state_dict"):
                self.actor.checkpoint_modules[name].load_state_dict(module.state_dict())

    def rollout(self, observations: torch.Tensor, timestep: int) -> tuple[torch.Tensor, int]:
        """One rollout acted by the actor, into the actor's memory; then the update that ran beside it ends and
        the actor takes its weights."""
        for _ in range(self.rollouts):
            observations = act_and_record(self.actor, self.wrapped, observations, timestep)
            timestep += 1
        self.wait()
        self._sync()
        return observations, timestep

    def learn(self, timestep: int) -> None:
        """Swap memories (the learner gets the rollout just collected) and start its update in a thread."""
        self.wait()
        self.timestep = timestep
        learner, actor = self.learner, self.actor
        learner.memory, actor.memory = actor.memory, learner.memory
        learner._current_next_observations = actor._current_next_observations
        learner._current_next_states = actor._current_next_states

        def update() -> None:
            _lower_priority(UPDATE_NICE)
            try:
                learner.enable_models_training_mode(True)
                learner.update(timestep=timestep, timesteps=1 << 40)
                learner.enable_models_training_mode(False)
            except BaseException as exc:  # raised in the training loop by wait()
                self.error = exc

        self.thread = self._threading.Thread(target=update, name="dexforge-ppo-update", daemon=True)
        self.thread.start()

    def wait(self) -> None:
        """The update in flight (if any) has ended; its tracking data is written."""
        if self.thread is not None:
            self.thread.join()
            self.thread = None
            if self.error is not None:
                error, self.error = self.error, None
                raise error
            from skrl.agents.torch import Agent

            # writes the update's losses to TensorBoard (skrl writes at steps that are multiples of `rollouts`)
            Agent.post_interaction(self.learner, timestep=self.timestep - 1, timesteps=1 << 40)

    def close(self) -> None:
        self.wait()


def _lower_priority(nice: int) -> None:
    """This thread yields to the rest of the process and to other processes of its priority: `nice` added to its
    niceness (Linux threads have their own; elsewhere, nothing happens)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    import threading

    with contextlib.suppress(OSError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)


def overlap_setting() -> bool:
    """`DEXFORGE_PPO_OVERLAP`: 1/true/on (the default) runs each rollout's update beside the next rollout
    (`PPOConfig.overlap`) in subtask training; 0/false/off runs them one after the other. On by default since
    it learnt as well on the tuning seeds (the apple's grasp, seeds 101 and 102) and trained 35% faster."""
    raw = os.environ.get(OVERLAP_ENV, "").strip().lower()
    if raw in ("0", "false", "off", "no"):
        return False
    if raw in ("", "1", "true", "on", "yes"):
        return True
    raise ValueError(f"{OVERLAP_ENV} must be 1 or 0, got {raw!r}")
