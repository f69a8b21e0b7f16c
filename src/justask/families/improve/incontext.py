"""Running a frozen in-context model on tasks: many consecutive episodes per task, the model's own
steps appended to its context as it goes (the last ``model.context`` steps are what it sees). No
gradient, no weight update: whatever gets better from episode to episode is inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from justask.render import write_gif

from .contexts import NO_ACTION
from .env import frame, move, reward
from .goals import start_cell


@torch.no_grad()
def run_in_context(model, goals: np.ndarray, episodes: int, size: int, horizon: int, seed: int,
                   keep_cells: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Returns (B, episodes) of ``model`` run on ``goals`` (B, 2) in parallel, actions sampled from
    its predictions with a generator seeded by ``seed``; with ``keep_cells`` also the cells visited
    (B, episodes, horizon + 1, 2)."""
    model.eval()
    b, k = len(goals), model.context
    gen = torch.Generator().manual_seed(seed)
    total = episodes * horizon
    cells = torch.zeros(b, total, dtype=torch.long)
    prev_actions = torch.full((b, total), NO_ACTION, dtype=torch.long)
    prev_rewards = torch.zeros(b, total)
    timesteps = torch.arange(horizon).repeat(episodes).expand(b, total)
    returns = np.zeros((b, episodes), np.float32)
    visited = np.zeros((b, episodes, horizon + 1, 2), np.int64) if keep_cells else None
    last_action, last_reward = np.full(b, NO_ACTION), np.zeros(b, np.float32)
    for e in range(episodes):
        cell = np.tile(np.array(start_cell(size), np.int64), (b, 1))
        if keep_cells:
            visited[:, e, 0] = cell
        for t in range(horizon):
            i = e * horizon + t
            cells[:, i] = torch.as_tensor(cell[:, 0] * size + cell[:, 1])
            prev_actions[:, i] = torch.as_tensor(last_action)
            prev_rewards[:, i] = torch.as_tensor(last_reward)
            lo = max(0, i + 1 - k)
            window = {"cells": cells[:, lo:i + 1], "prev_actions": prev_actions[:, lo:i + 1],
                      "prev_rewards": prev_rewards[:, lo:i + 1], "timesteps": timesteps[:, lo:i + 1],
                      "mask": torch.ones(b, i + 1 - lo, dtype=torch.bool)}
            action = model.sample(window, gen).numpy()
            cell = move(cell, action, size)
            r = reward(cell, goals)
            returns[:, e] += r
            last_action, last_reward = action, r
            if keep_cells:
                visited[:, e, t + 1] = cell
    return returns, visited


def write_first_and_last(cells: np.ndarray, goal, size: int, path) -> Path:
    """A GIF of an in-context run's first and last episode side by side, step by step (``cells``:
    (episodes, steps + 1, 2), the cells visited)."""
    gap = np.full((size * 16, 8, 3), 255, np.uint8)
    frames = [np.concatenate([frame(size, a, goal), gap, frame(size, b, goal)], axis=1)
              for a, b in zip(cells[0], cells[-1], strict=True)]
    return write_gif(frames, path, duration_ms=150)
