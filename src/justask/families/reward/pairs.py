"""Ranked snippet pairs for the ``reward`` family (D-REX): the labels come from noise levels.

The noise-injection rollouts are stored as a :class:`RankingTable` (observations per step, the
noise level of each episode, a train/validation split by episode). No environment reward enters
it: the only supervision is "less injected noise ranks higher". :func:`make_pairs` draws snippet
pairs from episodes of different noise levels with T-REX's rule (the better snippet starts no
earlier than the worse one, so progress is not mistaken for quality), and :class:`SnippetPairs`
serves them to the one training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from justask.io import load_arrays, save_arrays


@dataclass
class RankingTable:
    observations: np.ndarray  # (N, obs_dim) float32: every step of every episode, final state excluded
    starts: np.ndarray  # (E + 1,) int64: episode e is rows starts[e]:starts[e+1]
    noise: np.ndarray  # (E,) float64: epsilon the episode was rolled out with
    split: np.ndarray  # (E,) int8: 0 train, 1 validation

    ARRAYS = ("observations", "starts", "noise", "split")

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def save(self, path: Path, meta: dict) -> Path:
        return save_arrays(path, {n: getattr(self, n) for n in self.ARRAYS}, meta)

    @classmethod
    def load(cls, path: Path) -> tuple[RankingTable, dict]:
        arrays, meta = load_arrays(path, cls.ARRAYS, "dvc repro relabel@reward")
        return cls(**arrays), meta


@dataclass
class Pairs:
    """Snippet pairs: snippet ``a`` is rows start_a[i]:start_a[i]+length[i] of the table (same for
    ``b``); ``label[i]`` is 1 when ``b`` was ranked higher (less noise), else 0."""

    start_a: np.ndarray
    start_b: np.ndarray
    length: np.ndarray
    label: np.ndarray

    ARRAYS = ("start_a", "start_b", "length", "label")

    def __len__(self) -> int:
        return len(self.label)


def make_pairs(table: RankingTable, episodes: np.ndarray, n: int, snippet: int, seed: int) -> Pairs:
    """``n`` pairs of snippets from ``episodes`` (of different noise levels), deterministic in ``seed``.

    For each pair: draw two episodes of different noise; the snippet length is ``snippet`` or the
    shorter episode's length; the worse (noisier) episode's snippet starts uniformly, and the
    better one's starts at or after it where the episode allows (T-REX). Which snippet is ``a``
    is a coin flip, so labels are balanced.
    """
    episodes = np.asarray(episodes)
    if len(np.unique(table.noise[episodes])) < 2:
        raise ValueError("ranking needs episodes of at least two noise levels in every split; "
                         "collect more episodes per noise level or lower relabel.val_fraction")
    rng = np.random.default_rng([seed, 23])
    lengths, noise = table.lengths, table.noise
    out = {k: np.empty(n, np.int64) for k in Pairs.ARRAYS}
    i = 0
    while i < n:
        e1, e2 = rng.choice(episodes, 2, replace=False)
        if noise[e1] == noise[e2]:
            continue
        worse, better = (e1, e2) if noise[e1] > noise[e2] else (e2, e1)
        length = int(min(snippet, lengths[worse], lengths[better]))
        s_worse = int(rng.integers(lengths[worse] - length + 1))
        last_better = int(lengths[better] - length)
        s_better = int(rng.integers(min(s_worse, last_better), last_better + 1))
        rows = (table.starts[worse] + s_worse, table.starts[better] + s_better)
        flip = int(rng.integers(2))  # 1: a is the worse snippet, so b (the better) wins
        out["start_a"][i], out["start_b"][i] = rows if flip else rows[::-1]
        out["length"][i], out["label"][i] = length, flip
        i += 1
    return Pairs(**out)


def save_pairs(path: Path, pairs: Pairs, meta: dict) -> Path:
    return save_arrays(path, {n: getattr(pairs, n) for n in Pairs.ARRAYS}, meta)


def load_pairs(path: Path) -> tuple[Pairs, dict]:
    arrays, meta = load_arrays(path, Pairs.ARRAYS, "dvc repro relabel@reward")
    return Pairs(**arrays), meta


class SnippetPairs:
    """Ranked pairs on the device, served to :func:`justask.training.loop.fit` as batches of
    ``obs`` (B, 2, L, obs_dim), ``mask`` (B, 2, L) and ``label`` (B,), L the longest snippet."""

    def __init__(self, table: RankingTable, pairs: Pairs, device: torch.device, max_rows: int | None = None):
        if len(pairs) == 0:
            raise ValueError("no snippet pairs; raise relabel.pairs")
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=device)  # noqa: E731
        keep = np.arange(len(pairs))
        if max_rows is not None and len(keep) > max_rows:
            keep = np.linspace(0, len(pairs) - 1, max_rows).astype(np.int64)
        self.obs = t(table.observations)
        self.starts = t(np.stack([pairs.start_a[keep], pairs.start_b[keep]], 1))  # (P, 2)
        self.length, self.label = t(pairs.length[keep]), t(pairs.label[keep])
        self.span = int(pairs.length.max())
        self.rows = torch.arange(len(keep), device=device)
        self.device = device

    def __len__(self) -> int:
        return len(self.rows)

    def windows(self, rows: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        offset = torch.arange(self.span, device=self.device)
        mask = offset < self.length[rows][:, None, None]  # (B, 1, L) -> broadcast over the pair
        idx = self.starts[rows][..., None] + torch.where(mask, offset, 0)  # (B, 2, L)
        return {"obs": self.obs[idx], "mask": mask.expand(-1, 2, -1), "label": self.label[rows]}

    def sample(self, gen: torch.Generator, batch: int, k: int) -> dict[str, torch.Tensor]:
        pick = torch.randint(len(self.rows), (batch,), generator=gen, device="cpu").to(self.device)
        return self.windows(pick, k)
