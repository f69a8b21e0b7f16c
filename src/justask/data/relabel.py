"""Hindsight relabeling for the ``return`` family: return-to-go, timesteps, episode splits.

The relabeled table is a folder of ``.npy`` arrays (byte-stable, memory-mappable) plus
``meta.json``; :class:`StepTable` loads it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from justask.data.atomic import atomic_dir


def returns_to_go(rewards: np.ndarray) -> np.ndarray:
    """Undiscounted return still to come at each step: ``rtg[t] = sum(rewards[t:])``."""
    rewards = np.asarray(rewards, dtype=np.float64)
    return np.cumsum(rewards[::-1])[::-1].copy()


def split_episodes(n_episodes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of episode indices into (train, validation), both sorted and non-empty
    when ``n_episodes >= 2``."""
    if n_episodes < 2:
        raise ValueError(f"need at least 2 episodes to split, got {n_episodes}")
    perm = np.random.default_rng([seed, 11]).permutation(n_episodes)
    n_val = min(n_episodes - 1, max(1, round(val_fraction * n_episodes)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


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
        with atomic_dir(path) as tmp:
            for name in self.ARRAYS:
                np.save(tmp / f"{name}.npy", getattr(self, name), allow_pickle=False)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> tuple[StepTable, dict]:
        """Load a relabeled table and its metadata (arrays are read without pickle)."""
        path = Path(path)
        missing = [n for n in cls.ARRAYS if not (path / f"{n}.npy").exists()]
        if missing or not (path / "meta.json").exists():
            raise FileNotFoundError(
                f"{path}: relabeled data incomplete (missing {missing or ['meta.json']}); "
                "run `dvc repro relabel@return`"
            )
        arrays = {n: np.load(path / f"{n}.npy", allow_pickle=False) for n in cls.ARRAYS}
        return cls(**arrays), json.loads((path / "meta.json").read_text())


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
