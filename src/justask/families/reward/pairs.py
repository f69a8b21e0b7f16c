"""Ranked pairs for the ``reward`` family (D-REX): the labels come from noise levels.

The noise-injection rollouts (and, optionally, the demonstrations themselves, ranked above every
noise level) are stored as a :class:`RankingTable`: observations per step, the noise level of each
episode, a train/validation split by episode. No environment reward enters it: the only
supervision is "less injected noise ranks higher". :func:`make_pairs` draws pairs of episodes
whose noise levels differ by at least a margin (D-REX), and compares either

* **snippets** of equal length, the better one starting no earlier than the worse (T-REX's rule,
  so progress is not mistaken for quality), or
* **whole episodes**: each side is a strided sample of at most ``snippet`` steps covering the
  whole episode and ending at its last step, its summed reward multiplied by the stride (an
  estimate of the episode's learned return). Only these pairs make episode length and endings
  learnable: two equal-length snippets cannot tell a per-step offset of the reward, so with
  snippets alone long hovering or time-out episodes pile up learned return.

:class:`SnippetPairs` serves them to the one training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from justask.io import load_arrays, save_arrays

DEMOS = -1.0  # the noise level recorded for a demonstration: ranked above every noise level


@dataclass
class RankingTable:
    observations: np.ndarray  # (N, obs_dim) float32: every step of every episode, final state excluded
    starts: np.ndarray  # (E + 1,) int64: episode e is rows starts[e]:starts[e+1]
    noise: np.ndarray  # (E,) float64: epsilon the episode was rolled out with (DEMOS for a demonstration)
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
    """Ranked pairs: side j (0 = a, 1 = b) of pair i is the rows ``start[i, j] + stride[i, j] * t``
    for ``t < count[i, j]``, its predicted return ``stride[i, j]`` times the summed reward over them;
    ``label[i]`` is 1 when ``b`` was ranked higher (less noise), else 0. A snippet has stride 1."""

    start: np.ndarray  # (P, 2) int64
    count: np.ndarray  # (P, 2) int64
    stride: np.ndarray  # (P, 2) int64
    whole: np.ndarray  # (P,) bool: the pair compares whole episodes
    label: np.ndarray  # (P,) int64

    ARRAYS = ("start", "count", "stride", "whole", "label")

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, rows: np.ndarray) -> Pairs:
        return Pairs(**{k: getattr(self, k)[rows] for k in self.ARRAYS})


def make_pairs(table: RankingTable, episodes: np.ndarray, n: int, snippet: int, seed: int, *,
               margin: float = 0.0, whole: float = 0.0) -> Pairs:
    """``n`` ranked pairs from ``episodes``, deterministic in ``seed``.

    For each pair: draw two episodes whose noise levels differ by at least ``margin`` (and by more
    than 0); with probability ``whole`` compare the whole episodes (strided samples, see the
    module docstring), otherwise equal-length snippets (``snippet`` steps or the shorter episode's
    length; the worse snippet starts uniformly, the better one at or after it where the episode
    allows). Which side is ``a`` is a coin flip, so labels are balanced.
    """
    episodes = np.asarray(episodes)
    levels = np.unique(table.noise[episodes])
    if len(levels) < 2 or levels[-1] - levels[0] < max(margin, 1e-12):
        raise ValueError(f"ranking needs episodes of two noise levels at least {margin:g} apart in every split "
                         f"(found levels {levels.tolist()}); collect more episodes per noise level, lower "
                         "relabel.val_fraction or relabel.noise_margin")
    rng = np.random.default_rng([seed, 23])
    lengths, noise = table.lengths, table.noise
    out = {k: np.empty((n, 2), np.int64) for k in ("start", "count", "stride")}
    label, whole_pair = np.empty(n, np.int64), np.zeros(n, bool)
    i = 0
    while i < n:
        e1, e2 = rng.choice(episodes, 2, replace=False)
        if abs(noise[e1] - noise[e2]) < max(margin, 1e-12):
            continue
        worse, better = (e1, e2) if noise[e1] > noise[e2] else (e2, e1)
        whole_pair[i] = rng.random() < whole
        if whole_pair[i]:
            sides = [_whole_episode(int(lengths[e]), snippet) for e in (worse, better)]
            starts = [table.starts[worse] + sides[0][0], table.starts[better] + sides[1][0]]
            counts, strides = [s[1] for s in sides], [s[2] for s in sides]
        else:
            length = int(min(snippet, lengths[worse], lengths[better]))
            s_worse = int(rng.integers(lengths[worse] - length + 1))
            last_better = int(lengths[better] - length)
            s_better = int(rng.integers(min(s_worse, last_better), last_better + 1))
            starts = [table.starts[worse] + s_worse, table.starts[better] + s_better]
            counts, strides = [length, length], [1, 1]
        flip = int(rng.integers(2))  # 1: a is the worse side, so b (the better) wins
        order = slice(None) if flip else slice(None, None, -1)
        out["start"][i], out["count"][i], out["stride"][i] = starts[order], counts[order], strides[order]
        label[i] = flip
        i += 1
    return Pairs(**out, whole=whole_pair, label=label)


def _whole_episode(length: int, snippet: int) -> tuple[int, int, int]:
    """(offset, count, stride) of a strided sample of at most ``snippet`` steps covering an
    episode of ``length`` steps and ending at its last step, so that every whole-episode side
    sees how its episode ended."""
    stride = -(-length // snippet)
    offset = (length - 1) % stride
    return offset, (length - 1 - offset) // stride + 1, stride


def member_shard(pairs: Pairs, member: int, members: int) -> Pairs:
    """The pairs ensemble member ``member`` of ``members`` trains on: every ``members``-th pair from
    its index, so members see disjoint pairs drawn alike."""
    if not 0 <= member < members or len(pairs) < members:
        raise ValueError(f"cannot give member {member} of {members} its own pairs out of {len(pairs)}; "
                         "raise relabel.pairs")
    return pairs.subset(np.arange(member, len(pairs), members))


def save_pairs(path: Path, pairs: Pairs, meta: dict) -> Path:
    return save_arrays(path, {n: getattr(pairs, n) for n in Pairs.ARRAYS}, meta)


def load_pairs(path: Path) -> tuple[Pairs, dict]:
    arrays, meta = load_arrays(path, Pairs.ARRAYS, "dvc repro relabel@reward")
    return Pairs(**arrays), meta


class SnippetPairs:
    """Ranked pairs on the device, served to :func:`justask.training.loop.fit` as batches of
    ``obs`` (B, 2, L, obs_dim), ``mask`` (B, 2, L), ``weight`` (B, 2) (each side's stride) and
    ``label`` (B,), L the longest side."""

    def __init__(self, table: RankingTable, pairs: Pairs, device: torch.device, max_rows: int | None = None):
        if len(pairs) == 0:
            raise ValueError("no snippet pairs; raise relabel.pairs")
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=device)  # noqa: E731
        if max_rows is not None and len(pairs) > max_rows:
            pairs = pairs.subset(np.linspace(0, len(pairs) - 1, max_rows).astype(np.int64))
        self.obs = t(table.observations)
        self.start, self.count, self.stride, self.label = (t(getattr(pairs, k)) for k in ("start", "count", "stride",
                                                                                          "label"))
        self.span = int(pairs.count.max())
        self.rows = torch.arange(len(pairs), device=device)
        self.device = device

    def __len__(self) -> int:
        return len(self.rows)

    def windows(self, rows: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        offset = torch.arange(self.span, device=self.device)
        mask = offset < self.count[rows][..., None]  # (B, 2, L)
        stride = self.stride[rows]
        idx = self.start[rows][..., None] + stride[..., None] * torch.where(mask, offset, 0)
        return {"obs": self.obs[idx], "mask": mask, "weight": stride.float(), "label": self.label[rows]}

    def sample(self, gen: torch.Generator, batch: int, k: int) -> dict[str, torch.Tensor]:
        pick = torch.randint(len(self.rows), (batch,), generator=gen, device="cpu").to(self.device)
        return self.windows(pick, k)
