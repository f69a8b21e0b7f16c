"""Train / validation splits of episodes, shared by every family's relabel stage."""

from __future__ import annotations

import numpy as np


def split_episodes(n_episodes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of episode indices into (train, validation), both sorted and non-empty
    when ``n_episodes >= 2``."""
    if n_episodes < 2:
        raise ValueError(f"need at least 2 episodes to split, got {n_episodes}")
    perm = np.random.default_rng([seed, 11]).permutation(n_episodes)
    n_val = min(n_episodes - 1, max(1, round(val_fraction * n_episodes)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
