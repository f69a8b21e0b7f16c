"""Roll trained policies out on held-out env seeds, asking each episode for a target return.

The policy keeps, per vector-env slot, the last K (state, action, return-to-go, timestep) entries;
the return-to-go starts at the episode's target and is decremented by every reward received.
All slots are stepped together, one batched forward pass per env step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from justask.envs.lunar import make_vector_env
from justask.envs.runner import Episode, run_episodes


class ConditionedRollout:
    """Batch policy for :func:`run_episodes` around a trained model."""

    def __init__(self, model, num_envs: int, targets: np.ndarray, device: torch.device):
        spec, k = model.spec, model.context
        self.model, self.targets, self.device = model, np.asarray(targets, dtype=np.float32), device
        self.discrete = spec.discrete
        self.obs = np.zeros((num_envs, k, spec.obs_dim), np.float32)
        self.actions = np.zeros((num_envs, k) if spec.discrete else (num_envs, k, spec.act_dim),
                                np.int64 if spec.discrete else np.float32)
        self.rtg = np.zeros((num_envs, k), np.float32)
        self.t = np.zeros((num_envs, k), np.int64)
        self.mask = np.zeros((num_envs, k), bool)
        self.step = np.zeros(num_envs, np.int64)
        self.remaining = np.zeros(num_envs, np.float32)

    def start(self, slot: int, episode_index: int) -> None:
        for a in (self.obs, self.actions, self.rtg, self.t, self.mask):
            a[slot] = 0
        self.step[slot] = 0
        self.remaining[slot] = self.targets[episode_index]

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        # Slide each window left by one and append the current step.
        for a in (self.obs, self.actions, self.rtg, self.t, self.mask):
            a[:, :-1] = a[:, 1:]
        self.obs[:, -1], self.rtg[:, -1], self.t[:, -1] = obs, self.remaining, self.step
        self.actions[:, -1], self.mask[:, -1] = 0, True
        t = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
        batch = {"obs": t(self.obs), "actions": t(self.actions), "rtg": t(self.rtg),
                 "timesteps": t(self.t), "mask": t(self.mask)}
        action = self.model.act(batch).cpu().numpy()
        self.actions[:, -1] = action
        return action

    def observe(self, rewards: np.ndarray, active: np.ndarray) -> None:
        self.remaining -= rewards.astype(np.float32)
        self.step += 1


@dataclass(frozen=True)
class EpisodeResult:
    target: float
    env_seed: int
    ret: float
    length: int


def rollout(model, env_cfg, seeds: list[int], targets: list[float], num_envs: int,
            device: torch.device) -> list[EpisodeResult]:
    """Run one episode per (seed, target) pair; returns one result per pair, in order."""
    assert len(seeds) == len(targets)
    n = min(num_envs, len(seeds))
    envs = make_vector_env(n, env_cfg.id, env_cfg.continuous, env_cfg.max_episode_steps)
    policy = ConditionedRollout(model, n, np.asarray(targets), device)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one small forward pass per env step: threading only adds overhead
    try:
        episodes: list[Episode] = run_episodes(envs, seeds, policy, record=False)
    finally:
        torch.set_num_threads(threads)
        envs.close()
    return [EpisodeResult(float(targets[e.index]), e.seed, e.ret, len(e)) for e in episodes]
