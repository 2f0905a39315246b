"""HandEnv as a skrl environment: rewards from a reward program, episode outcomes and per-component reward
statistics by outcome (the Eureka-style feedback the reward-writer reads). `policies.envgroups` steps the
same interface in worker processes."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium
import torch

from dexforge.policies.probe_types import EpisodeComponents
from dexforge.sim.env import HandEnv

RewardFn = Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class EpisodeComponentTracker:
    """Reward components per episode, split by outcome (Eureka-style feedback on what pays in the episodes
    that succeed and in those that fail).

    Running sums per env live in tensors: `update` adds one step's components (no loop over envs) and, for
    envs whose whole episode just ended, files each component's mean per step over that episode under
    success or failure. `drain` summarises what was filed since the last drain (n, mean, min, max over
    episodes, as EpisodeComponents dumps) and starts over."""

    OUTCOMES = ("success", "failure")

    def __init__(self, num_envs: int, device: torch.device | str = "cpu"):
        self.num_envs, self.device = num_envs, torch.device(device)
        self.sums: dict[str, torch.Tensor] = {}  # component -> (N,) sum over the running episode
        self.steps = torch.zeros(num_envs, device=self.device)  # (N,) steps of the running episode
        self._ended: dict[str, dict[str, list[torch.Tensor]]] = {o: {} for o in self.OUTCOMES}
        self._count = dict.fromkeys(self.OUTCOMES, 0)

    def reset(self) -> None:
        """Forget the running episodes (the env was reset)."""
        self.sums = {k: torch.zeros_like(v) for k, v in self.sums.items()}
        self.steps.zero_()

    def update(
        self, components: dict[str, torch.Tensor], done: torch.Tensor, success: torch.Tensor, counted: torch.Tensor
    ) -> None:
        """One step: `components` name -> (N,), `done` (N,) episodes that ended at this step, `success` (N,)
        their outcome, `counted` (N,) episodes that ran whole (a staggered first episode does not)."""
        for k, v in components.items():
            base = self.sums.get(k)
            self.sums[k] = (base if base is not None else torch.zeros_like(self.steps)) + v.detach().float()
        self.steps += 1
        if not bool(done.any()):
            return
        whole = done & counted
        for outcome, mask in (("success", whole & success), ("failure", whole & ~success)):
            n = int(mask.sum())
            if n == 0:
                continue
            self._count[outcome] += n
            length = self.steps[mask]
            for k, total in self.sums.items():
                self._ended[outcome].setdefault(k, []).append((total[mask] / length).cpu())
        keep = (~done).float()
        self.sums = {k: v * keep for k, v in self.sums.items()}
        self.steps *= keep

    def drain(self) -> dict[str, dict]:
        """{"success": EpisodeComponents dump, "failure": ...} since the last drain."""
        out = {}
        for outcome in self.OUTCOMES:
            per = {k: torch.cat(v) for k, v in self._ended[outcome].items()}
            summary = EpisodeComponents(
                n=self._count[outcome],
                mean={k: float(v.mean()) for k, v in per.items()},
                min={k: float(v.min()) for k, v in per.items()},
                max={k: float(v.max()) for k, v in per.items()},
            )
            out[outcome] = summary.model_dump()
        self._ended = {o: {} for o in self.OUTCOMES}
        self._count = dict.fromkeys(self.OUTCOMES, 0)
        return out


@dataclass
class Transition:
    """What one step of every env hands to PPO: (N, obs) observations, (N,) rewards, per-component (N,)
    rewards, and (N,) booleans: the episode ended (and was reset), succeeded, terminated, was truncated."""

    obs: torch.Tensor
    reward: torch.Tensor
    components: dict[str, torch.Tensor]
    done: torch.Tensor
    success: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor


def _skrl_wrapper_base():
    from skrl.envs.wrappers.torch.base import Wrapper

    return Wrapper


class SkrlHandEnv(_skrl_wrapper_base()):
    """HandEnv as a skrl environment: rewards from a reward program, episode outcomes tracked.

    Finished envs are reset inside HandEnv.step, as skrl expects with several envs.
    """

    def __init__(self, env: HandEnv, reward_fn: RewardFn, pre_step: Callable[[HandEnv], None] | None = None):
        super().__init__(env)
        self.env = env
        self.reward_fn = reward_fn
        self.pre_step = pre_step
        self.outcomes: list[bool] = []  # success of every finished episode since the last drain
        self.counted = torch.ones(env.num_envs, dtype=torch.bool, device=env.device)  # whole episodes
        self.component_sums: dict[str, float] = {}
        self.episode_components = EpisodeComponentTracker(env.num_envs, env.device)
        self.reward_sum = 0.0
        self.success_steps = 0  # env steps at which the task's success held, since the last drain
        self.samples = 0
        self.env_steps = 0
        self.rollout_threads: int | None = None  # torch threads while stepping (None: as set)

    @property
    def observation_space(self) -> gymnasium.Space:
        return gymnasium.spaces.Box(-math.inf, math.inf, (self.env.num_obs,))

    @property
    def action_space(self) -> gymnasium.Space:
        return gymnasium.spaces.Box(-1.0, 1.0, (self.env.num_actions,))

    @property
    def state_space(self) -> gymnasium.Space | None:
        return None

    @property
    def num_envs(self) -> int:
        return self.env.num_envs

    @property
    def num_agents(self) -> int:
        return 1

    @property
    def device(self) -> torch.device:
        return self.env.device

    def reset(self, stagger: bool = False, seed: int = 0):
        obs = self.env.reset()
        self.episode_components.reset()
        if stagger and self.env.episode_length > 1:
            gen = torch.Generator().manual_seed(seed)
            phase = torch.randint(0, self.env.episode_length, (self.env.num_envs,), generator=gen)
            self.env.episode_step[:] = phase.to(self.env.device)
            self.counted = phase.to(self.env.device) == 0
            obs = self.env.observations()
        return obs, {}

    def step(self, actions: torch.Tensor):
        out = self.advance(actions)
        done = out.done
        self.episode_components.update(out.components, done, out.success, self.counted)
        if done.any():  # an episode counts as a success when its last step is one (what chaining hands over)
            whole = done & self.counted  # a staggered first episode is cut short: not counted
            self.outcomes += out.success[whole].tolist()
            self.counted |= done
        self.reward_sum += float(out.reward.sum())
        self.success_steps += int(out.success.sum())
        for k, v in out.components.items():
            self.component_sums[k] = self.component_sums.get(k, 0.0) + float(v.float().sum())
        self.samples += self.num_envs
        self.env_steps += self.num_envs
        info = {"success": out.success}
        return out.obs, out.reward[:, None], out.terminated[:, None], out.truncated[:, None], info

    def advance(self, actions: torch.Tensor) -> Transition:
        """One step of every env: the lift-test hook, the simulation, the reward program."""
        if self.pre_step is not None:
            self.pre_step(self.env)
        result = self.env.step(actions)
        reward, components = self.reward_fn(result.metrics)
        return Transition(
            obs=result.obs,
            reward=reward,
            components=components,
            done=result.reset,
            success=result.success,
            terminated=result.terminated | (result.reset & ~result.truncated),
            truncated=result.truncated,
        )

    def state(self):
        return None

    def render(self, *args, **kwargs):
        return None

    def close(self) -> None:
        return None

    def drain(self) -> dict:
        """Statistics since the last drain: episodes, success rate, mean reward and components per step,
        `step_success` (the share of env steps at which success held, at any point of an episode: a policy
        that reaches the goal but does not yet end there shows here first), and (`episode_components`)
        each component's mean per step over the episodes that ended, by outcome."""
        n = max(self.samples, 1)
        stats = {
            "episodes": len(self.outcomes),
            "outcomes": self.outcomes,
            "step_success": self.success_steps / n,
            "reward_mean": self.reward_sum / n,
            "components": {k: v / n for k, v in self.component_sums.items()},
            "episode_components": self.episode_components.drain(),
        }
        self.outcomes, self.component_sums, self.reward_sum, self.samples = [], {}, 0.0, 0
        self.success_steps = 0
        return stats
