"""Hindsight relabeling for the ``return`` family: return-to-go and timesteps per step.

The relabeled table is a folder of ``.npy`` arrays (byte-stable, memory-mappable) plus
``meta.json``; :class:`StepTable` loads it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from justask.data.atomic import load_arrays, save_arrays


def returns_to_go(rewards: np.ndarray) -> np.ndarray:
    """Undiscounted return still to come at each step: ``rtg[t] = sum(rewards[t:])``."""
    rewards = np.asarray(rewards, dtype=np.float64)
    return np.cumsum(rewards[::-1])[::-1].copy()


@dataclass
class StepTable:
    """Flat per-step arrays of a set of episodes, with episode boundaries.

    ``starts[e]`` is the first row of episode ``e``; ``starts[-1] == len``. ``episode[i]`` maps a
    row to its episode.
    """

    observations: np.ndarray  # (N, obs_dim) float32
    actions: np.ndarray  # (N,) int64 or (N, act_dim) float32
    rtg: np.ndarray  # (N,) float32
    timesteps: np.ndarray  # (N,) int64
    episode: np.ndarray  # (N,) int64
    starts: np.ndarray  # (E + 1,) int64
    returns: np.ndarray  # (E,) float64
    split: np.ndarray  # (E,) int8: 0 train, 1 validation

    ARRAYS = ("observations", "actions", "rtg", "timesteps", "episode", "starts", "returns", "split")

    def __len__(self) -> int:
        return len(self.rtg)

    @property
    def n_episodes(self) -> int:
        return len(self.returns)

    def save(self, path: Path, meta: dict) -> Path:
        """Write all arrays and ``meta.json`` into ``path`` atomically (temp folder, rename)."""
        return save_arrays(path, {n: getattr(self, n) for n in self.ARRAYS}, meta)

    @classmethod
    def load(cls, path: Path) -> tuple[StepTable, dict]:
        """Load a relabeled table and its metadata (arrays are read without pickle)."""
        arrays, meta = load_arrays(path, cls.ARRAYS, "dvc repro relabel@return")
        return cls(**arrays), meta


def blank_rewards(episodes: list) -> list[dict]:
    """Episodes (Minari dicts or :class:`~justask.envs.runner.Episode`) as dicts with every reward
    set to 0: for models that must learn without the env's reward (the ``reward`` family)."""
    get = (lambda e, k: e[k]) if episodes and isinstance(episodes[0], dict) else getattr  # noqa: E731
    return [{"observations": get(e, "observations"), "actions": get(e, "actions"),
             "rewards": np.zeros(len(get(e, "actions")))} for e in episodes]


def build_step_table(episodes: list[dict], split: np.ndarray) -> StepTable:
    """Relabel raw episodes (dicts as read from Minari) with return-to-go and timesteps."""
    lengths = np.array([len(e["rewards"]) for e in episodes], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return StepTable(
        observations=np.concatenate([e["observations"][:-1] for e in episodes]).astype(np.float32),
        actions=np.concatenate([np.asarray(e["actions"]) for e in episodes]),
        rtg=np.concatenate([returns_to_go(e["rewards"]) for e in episodes]).astype(np.float32),
        timesteps=np.concatenate([np.arange(n) for n in lengths]).astype(np.int64),
        episode=np.repeat(np.arange(len(episodes)), lengths).astype(np.int64),
        starts=starts,
        returns=np.array([float(np.sum(e["rewards"])) for e in episodes]),
        split=split.astype(np.int8),
    )
