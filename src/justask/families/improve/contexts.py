"""Across-episode contexts: each history (or its final episodes) flattened into one sequence of
steps in the learner's order, so a window of K steps spans several consecutive episodes and the
action at each step is conditioned on the earlier attempts and what they earned.

A step's token holds its cell, the previous action and the previous reward (carried across the
episode boundary: the first step of an episode sees how the last one ended; the first step of a
sequence sees ``NO_ACTION`` and 0) and its time within the episode. :class:`Contexts` is the
folder relabel writes; :class:`Windows` samples windows of it for the one training loop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from justask.io import load_arrays, save_arrays

from .env import ACTIONS
from .histories import Histories

NO_ACTION = ACTIONS  # the previous action of a sequence's first step


def optimal_actions(cells: np.ndarray, goals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An action on a shortest way from each cell (N, 2) to its goal (N, 2): stay (0) on the goal,
    otherwise up/down (1/2) or left/right (3/4), drawn evenly where both shorten the way: the
    label of the Decision-Pretrained Transformer (Lee et al., 2023), known in hindsight."""
    dr, dc = goals[:, 0] - cells[:, 0], goals[:, 1] - cells[:, 1]
    vertical, horizontal = np.where(dr < 0, 1, 2), np.where(dc < 0, 3, 4)
    pick_vertical = np.where(dc == 0, True, np.where(dr == 0, False, rng.random(len(cells)) < 0.5))
    return np.where((dr == 0) & (dc == 0), 0, np.where(pick_vertical, vertical, horizontal)).astype(np.int64)


def hindsight_labels(ctx: Contexts, size: int, rng: np.random.Generator) -> np.ndarray:
    """``ctx``'s targets relabeled in hindsight: the learner's action until its sequence has earned a
    reward (the goal is not yet in the context: the learner's search is what to imitate), an optimal
    action for the sequence's goal from then on (the context shows where the goal is, so the label
    drops the learner's leftover exploration and slow value propagation)."""
    seq = np.repeat(np.arange(len(ctx.split)), np.diff(ctx.starts))
    found = np.zeros(len(ctx), bool)
    for lo, hi in zip(ctx.starts[:-1], ctx.starts[1:], strict=True):
        found[lo:hi] = np.maximum.accumulate(ctx.prev_rewards[lo:hi] > 0)
    best = optimal_actions(np.stack([ctx.cells // size, ctx.cells % size], 1), ctx.goals[seq], rng)
    return np.where(found, best, ctx.actions)


def kept_episodes(episodes: int, skip: int) -> np.ndarray:
    """Indices of the episodes AD's subsampling keeps: every ``skip``-th, counted back from the last."""
    return np.arange(episodes - 1, -1, -skip)[::-1].copy()


@dataclass
class Contexts:
    """Flat per-step arrays of several sequences: ``starts[s]`` is the first row of sequence ``s``
    (``starts[-1] == len``), ``split[s]`` 0 for training and 1 for validation, ``goals[s]`` its task,
    ``episode[i]`` the learner's episode index of row ``i``."""

    cells: np.ndarray  # (N,) int64: row * size + column
    actions: np.ndarray  # (N,) int64: the action taken (the target)
    prev_actions: np.ndarray  # (N,) int64
    prev_rewards: np.ndarray  # (N,) float32
    timesteps: np.ndarray  # (N,) int64: step within the episode
    episode: np.ndarray  # (N,) int64
    starts: np.ndarray  # (S + 1,) int64
    split: np.ndarray  # (S,) int8
    goals: np.ndarray  # (S, 2) int64

    ARRAYS = ("cells", "actions", "prev_actions", "prev_rewards", "timesteps", "episode", "starts", "split", "goals")

    def __len__(self) -> int:
        return len(self.actions)

    def save(self, path: Path, meta: dict) -> Path:
        return save_arrays(path, {n: getattr(self, n) for n in self.ARRAYS}, meta)

    @classmethod
    def load(cls, path: Path) -> tuple[Contexts, dict]:
        arrays, meta = load_arrays(path, cls.ARRAYS, "dvc repro relabel@improve")
        return cls(**arrays), meta


def build_contexts(h: Histories, episodes: np.ndarray, split: np.ndarray, size: int) -> Contexts:
    """One sequence per history of ``h``: its ``episodes`` (learner indices, in order), flattened."""
    n, horizon = len(h), h.actions.shape[2]
    e = len(episodes)
    cells = h.cells[:, episodes, :-1]  # (n, e, H, 2): the cell each action was taken in
    actions = h.actions[:, episodes].reshape(n, e * horizon)
    rewards = h.rewards[:, episodes].reshape(n, e * horizon)
    prev_actions = np.concatenate([np.full((n, 1), NO_ACTION), actions[:, :-1]], axis=1)
    prev_rewards = np.concatenate([np.zeros((n, 1), np.float32), rewards[:, :-1]], axis=1)
    return Contexts(
        cells=(cells[..., 0] * size + cells[..., 1]).reshape(-1).astype(np.int64),
        actions=actions.reshape(-1), prev_actions=prev_actions.reshape(-1).astype(np.int64),
        prev_rewards=prev_rewards.reshape(-1).astype(np.float32),
        timesteps=np.tile(np.arange(horizon), n * e).astype(np.int64),
        episode=np.tile(np.repeat(episodes, horizon), n).astype(np.int64),
        starts=np.arange(n + 1, dtype=np.int64) * e * horizon, split=split.astype(np.int8),
        goals=h.goals.astype(np.int64))


def windows_ending_at(data: dict[str, torch.Tensor], first: torch.Tensor, ends: torch.Tensor,
                      k: int) -> dict[str, torch.Tensor]:
    """The windows of ``k`` rows of ``data`` ending at rows ``ends``, each left-padded (``mask``
    False) where it would reach back before its sequence's first row ``first``."""
    idx = ends[:, None] - torch.arange(k - 1, -1, -1, device=ends.device)[None, :]
    mask = idx >= first[:, None]
    idx = torch.where(mask, idx, ends[:, None])
    return {**{f: v[idx] for f, v in data.items()}, "mask": mask}


class Windows:
    """Windows of K consecutive steps of one sequence (the :class:`justask.training.loop.Batches` of
    the in-context model), ending at a row of the sequences in ``split``; left-padded where a window
    would reach back before its sequence's start. ``max_rows`` keeps an evenly spaced subset."""

    FIELDS = ("cells", "prev_actions", "prev_rewards", "timesteps", "actions")

    def __init__(self, ctx: Contexts, split: int, device: torch.device, max_rows: int | None = None):
        seq = np.repeat(np.arange(len(ctx.split)), np.diff(ctx.starts))
        rows = np.flatnonzero(ctx.split[seq] == split)
        if len(rows) == 0:
            raise ValueError(f"no {'validation' if split else 'training'} histories (check relabel.val_fraction "
                             "and collect.histories_per_goal)")
        if max_rows is not None and len(rows) > max_rows:
            rows = rows[np.linspace(0, len(rows) - 1, max_rows).astype(np.int64)]
        self.rows = torch.as_tensor(rows, device=device)
        self.first = torch.as_tensor(ctx.starts[seq], device=device)
        self.data = {f: torch.as_tensor(getattr(ctx, f), device=device) for f in self.FIELDS}

    def __len__(self) -> int:
        return len(self.rows)

    def windows(self, ends: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        return windows_ending_at(self.data, self.first[ends], ends, k)

    def sample(self, gen: torch.Generator, batch: int, k: int) -> dict[str, torch.Tensor]:
        pick = torch.randint(len(self.rows), (batch,), generator=gen, device="cpu").to(self.rows.device)
        return self.windows(self.rows[pick], k)
