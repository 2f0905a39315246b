"""Every setting of a run in one typed object: limits, budgets and the model behind each role.

Resolution order: an explicit argument (CLI option, `AgentContext(...)`) > the environment
(`DEXFORGE_*` variables, read once by `AgentContext.from_env`) > the default written here.
The context is frozen; loop counters live in the graph state and their limits here.

Model settings: with no base URL configured, every role runs on the offline reasoner. With
`DEXFORGE_BASE_URL` (any OpenAI-compatible server: OpenAI, vLLM, Ollama, LM Studio), the roles use
`DEXFORGE_MODEL` unless a role names its own (`DEXFORGE_CRITIC_MODEL`, ...), and the API key is read
from the variable named by `DEXFORGE_API_KEY_ENV` (default OPENAI_API_KEY).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dexforge.agents.faults import Fault

ROLES: tuple[str, ...] = ("proposer", "critic", "decomposer", "reward_writer")
Role = Literal["proposer", "critic", "decomposer", "reward_writer"]


class ModelSettings(BaseModel):
    """The model behind one role."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["offline", "openai"] = Field(
        default="offline", description="offline: the deterministic reasoner; openai: an OpenAI-compatible endpoint."
    )
    base_url: str | None = Field(default=None, description="Endpoint base URL, e.g. http://localhost:8000/v1.")
    model: str = Field(default="offline", description="Model name sent to the endpoint.")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Variable that holds the API key.")
    structured_output: Literal["json_schema", "function_calling"] = Field(
        default="function_calling",
        description="How answers are constrained: json_schema (strict response_format) or function_calling "
        "(works with servers that lack json_schema).",
    )
    vision: bool = Field(default=False, description="Send the scene renders as images (critic).")
    stream: bool = Field(default=False, description="Stream answers (server-sent events) instead of one JSON reply.")
    timeout_s: float = Field(default=120.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(default=2, ge=0, le=10, description="HTTP-level retries of one request.")
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    price_in_per_mtok: float = Field(default=0.0, ge=0.0, description="USD per million input tokens (for cost).")
    price_out_per_mtok: float = Field(default=0.0, ge=0.0, description="USD per million output tokens.")

    @property
    def label(self) -> str:
        return "offline reasoner" if self.backend == "offline" else f"{self.model} @ {self.base_url}"


class AgentContext(BaseModel):
    """Settings of one run (LangGraph runtime context)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: dict[str, ModelSettings] = Field(
        default_factory=lambda: {r: ModelSettings() for r in ROLES}, description="Role name -> model settings."
    )
    max_critic_rounds: int = Field(default=3, ge=0, le=20, description="Critic revise rounds before training anyway.")
    max_retries: int = Field(default=2, ge=0, le=10, description="Reward rewrites per failed rl subtask (K).")
    max_redecompose: int = Field(default=1, ge=0, le=3, description="Fresh plans after a subtask exhausts K.")
    max_invalid: int = Field(default=3, ge=1, le=10, description="Invalid answers a role may give per question.")
    max_tool_calls: int = Field(
        default=8, ge=0, le=100, description="Tool calls a role may make per question before it is asked to answer."
    )
    tool_budgets: dict[str, int] = Field(
        default_factory=dict, description="Role -> its own tool-call budget (overrides max_tool_calls for that role)."
    )
    pass_rate: float = Field(
        default=0.5, ge=0.0, le=1.0, description="A subtask passes when its evaluated success rate reaches this."
    )
    improve_below: float = Field(
        default=0.75,
        ge=0.0,
        le=1.0,
        description="When the chained task succeeds less often than this, the rl subtask that passed furthest "
        "below its target trains once more from its policy, and the task is chained again.",
    )
    max_improve: int = Field(default=1, ge=0, le=3, description="Such extra training rounds per run (0: none).")
    n_envs: int = Field(
        default=128,
        ge=1,
        le=8192,
        description="Parallel envs for training and evaluation (128 learnt the lift grasp on 3 of 3 seeds).",
    )
    rl_budget: int | None = Field(
        default=None, ge=1, description="Cap on every rl subtask's env steps (None: the plan's own budgets)."
    )
    eval_episodes: int = Field(default=64, ge=1, description="Episodes per evaluation.")
    job_timeout_s: float = Field(default=3600.0, gt=0, description="Wall-clock limit of one worker job.")
    render: bool = Field(default=True, description="Render the scene for the critic and the report.")
    video: bool = Field(default=True, description="Record a rollout video of the chained task for the report.")
    backend: Literal["cpu", "gpu"] = Field(default="cpu", description="Genesis backend of the workers.")
    warm_start: bool = Field(
        default=True,
        description="Start an rl subtask from the stored policy of the most similar subtask trained before.",
    )
    memory: bool = Field(
        default=True, description="Recall similar past tasks for the roles and archive this run in the store."
    )
    mode: Literal["run", "chat"] = Field(default="run", description="chat: ask the user to approve the scene.")
    faults: tuple[Fault, ...] = Field(
        default=(), description="Faults to inject (eval suites; see agents/faults.py). None in normal use."
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        description="Seed of the run: the scene's random layout draws and the RL seeds (the spec's `seed`). None "
        "keeps what the proposer wrote (0 offline).",
    )
    stop_after: Literal["propose", "check", "decompose"] | None = Field(
        default=None,
        description="End the run (archive and report) after this step: propose (a spec, nothing simulated), "
        "check (a checked scene) or decompose (a plan, nothing trained). None: go through training and collection.",
    )

    def tool_budget(self, role: str) -> int:
        return self.tool_budgets.get(role, self.max_tool_calls)

    def model_for(self, role: str) -> ModelSettings:
        return self.models.get(role, ModelSettings())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> AgentContext:
        """Settings from `DEXFORGE_*` variables, then `overrides` (explicit arguments win)."""
        env = os.environ if env is None else env
        models = {}
        for role in ROLES:
            up = role.upper()
            base_url = env.get(f"DEXFORGE_{up}_BASE_URL") or env.get("DEXFORGE_BASE_URL")
            if not base_url:
                models[role] = ModelSettings()
                continue
            fields: dict = {
                "backend": "openai",
                "base_url": base_url,
                "model": env.get(f"DEXFORGE_{up}_MODEL") or env.get("DEXFORGE_MODEL") or "gpt-4o-mini",
                "api_key_env": env.get("DEXFORGE_API_KEY_ENV", "OPENAI_API_KEY"),
                "vision": role == "critic" and env.get("DEXFORGE_CRITIC_VISION", "1") != "0",
            }
            if env.get("DEXFORGE_STREAM", "0") == "1":
                fields["stream"] = True
            method = env.get(f"DEXFORGE_{up}_STRUCTURED_OUTPUT") or env.get("DEXFORGE_STRUCTURED_OUTPUT")
            if method:
                fields["structured_output"] = method
            models[role] = ModelSettings(**fields)
        data: dict = {"models": models}
        for name, var, kind in (
            ("n_envs", "DEXFORGE_ENVS", int),
            ("max_tool_calls", "DEXFORGE_TOOL_BUDGET", int),
            ("rl_budget", "DEXFORGE_RL_BUDGET", int),
            ("backend", "DEXFORGE_BACKEND", str),
            ("warm_start", "DEXFORGE_WARM_START", lambda v: v.lower() not in ("0", "false", "no")),
            ("memory", "DEXFORGE_USE_MEMORY", lambda v: v.lower() not in ("0", "false", "no")),
        ):
            if env.get(var):
                data[name] = kind(env[var])
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)
