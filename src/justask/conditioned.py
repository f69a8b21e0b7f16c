"""A conditioned policy (:mod:`justask.models`) acting in the rollout engine: asked for a target, it
keeps per slot the last K (state, action, condition, timestep) entries. A skill condition stays the
asked skill for the whole episode; a return-to-go starts at the episode's target and is
decremented by every reward received, or, for a
policy trained on a *learned* reward (the ``reward`` family), by that reward of each state it acted
in (the env's reward is never seen then). All slots act together, one batched forward pass per
env step. Works in any env with vector observations.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from justask.models.common import MIN_ROWS


def acting_rows(active: np.ndarray) -> np.ndarray:
    """Slots to run the model on: the live ones, topped up with idle ones to ``MIN_ROWS`` (all
    slots if there are no more), so that a slot's greedy action is the one a pass over all slots
    gives (see :data:`justask.models.common.MIN_ROWS`)."""
    live = np.flatnonzero(active)
    if len(live) >= MIN_ROWS or len(active) <= MIN_ROWS:
        return live if len(live) >= MIN_ROWS else np.arange(len(active))
    idle = np.flatnonzero(~active)
    return np.sort(np.concatenate([live, idle[:MIN_ROWS - len(live)]]))


class ConditionedRollout:
    """Batch policy for :func:`run_episodes` around a trained model."""

    def __init__(self, model, num_envs: int, targets: np.ndarray, device: torch.device,
                 reward_fn: Callable[[np.ndarray], np.ndarray] | None = None):
        spec, k = model.spec, model.context
        self.reward_fn = reward_fn
        self.decrement = getattr(model, "condition", "return") == "return"
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
        self.last_obs = obs
        self.actions[:, -1], self.mask[:, -1] = 0, True
        rows = acting_rows(active)
        t = lambda a: torch.as_tensor(a[rows], device=self.device)  # noqa: E731
        batch = {"obs": t(self.obs), "actions": t(self.actions), "rtg": t(self.rtg),
                 "timesteps": t(self.t), "mask": t(self.mask)}
        with torch.inference_mode():
            action = self.model.act(batch).cpu().numpy()
        self.actions[rows, -1] = action
        return self.actions[:, -1].copy()

    def observe(self, rewards: np.ndarray, ended: np.ndarray, active: np.ndarray) -> None:
        if self.decrement:
            if self.reward_fn is not None:
                rewards = self.reward_fn(self.last_obs)
            self.remaining -= rewards.astype(np.float32)
        self.step += 1
