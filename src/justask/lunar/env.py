"""LunarLander environments: one env with the configured time limit, or a vector of them whose
finished slots the rollout engine resets itself (autoreset disabled)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym

if TYPE_CHECKING:
    from justask.lunar.config import EnvConfig


def make_env(env_id: str = "LunarLander-v3", continuous: bool = False, max_episode_steps: int = 1000,
             render_mode: str | None = None) -> gym.Env:
    """One environment instance with the configured time limit."""
    return gym.make(env_id, continuous=continuous, max_episode_steps=max_episode_steps, render_mode=render_mode)


def make_vector_env(num_envs: int, env_id: str = "LunarLander-v3", continuous: bool = False,
                    max_episode_steps: int = 1000, render_mode: str | None = None) -> gym.vector.SyncVectorEnv:
    """A synchronous vector env with autoreset disabled: callers reset finished slots with
    explicit per-episode seeds (gymnasium 1.x's autoreset would pick seeds itself)."""
    return gym.vector.SyncVectorEnv(
        [lambda: make_env(env_id, continuous, max_episode_steps, render_mode) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.DISABLED,
    )


def from_config(cfg: EnvConfig, num_envs: int | None = None, render_mode: str | None = None):
    """The env of ``cfg``; a vector env of ``num_envs`` when given."""
    if num_envs is None:
        return make_env(cfg.id, cfg.continuous, cfg.max_episode_steps, render_mode)
    return make_vector_env(num_envs, cfg.id, cfg.continuous, cfg.max_episode_steps, render_mode)


def spaces(cfg: EnvConfig) -> tuple[gym.Space, gym.Space]:
    """(observation, action) spaces of the env ``cfg`` configures."""
    env = from_config(cfg)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def model_expectation(cfg: EnvConfig) -> dict[str, Any]:
    """The fields of a model's spec (:class:`justask.models.Spec`) a policy acting in ``cfg``'s env
    must have."""
    from gymnasium import spaces as gspaces

    obs, act = spaces(cfg)
    discrete = isinstance(act, gspaces.Discrete)
    return {"obs_dim": int(obs.shape[0]), "discrete": discrete,
            "act_dim": int(act.n) if discrete else int(act.shape[0])}
