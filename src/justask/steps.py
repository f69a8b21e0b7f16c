"""Step tables of vector-observation episodes, relabeled in hindsight with return-to-go, and the
window sampler the one training loop draws their batches from.

A relabeled table is a folder of ``.npy`` arrays (byte-stable, memory-mappable) plus
``meta.json``; :class:`StepTable` loads it back; :class:`Steps` puts (some episodes of) it on the
device and samples windows of K steps by index arithmetic; :func:`data_spec` derives what a
model needs to know about it. Shared by every family that trains return-conditioned policies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from justask.io import load_arrays, save_arrays


@dataclass(frozen=True)
class Spec:
    """What a model needs to know about the data it is trained on."""

    obs_dim: int
    act_dim: int  # number of discrete actions, or the continuous action size
    discrete: bool
    max_timestep: int
    obs_mean: tuple[float, ...]
    obs_std: tuple[float, ...]
    return_scale: float  # return-to-go is divided by this before entering a model



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
    skill: np.ndarray | None = None  # (E,) float32: the behaviour's skill rank in [0, 1], if labelled

    ARRAYS = ("observations", "actions", "rtg", "timesteps", "episode", "starts", "returns", "split")
    OPTIONAL = ("skill",)

    def __len__(self) -> int:
        return len(self.rtg)

    @property
    def n_episodes(self) -> int:
        return len(self.returns)

    def save(self, path: Path, meta: dict) -> Path:
        """Write all arrays and ``meta.json`` into ``path`` atomically (temp folder, rename)."""
        names = self.ARRAYS + tuple(n for n in self.OPTIONAL if getattr(self, n) is not None)
        return save_arrays(path, {n: getattr(self, n) for n in names}, meta)

    @classmethod
    def load(cls, path: Path, rerun: str = "dvc repro relabel@<family>") -> tuple[StepTable, dict]:
        """Load a relabeled table and its metadata (arrays are read without pickle); ``rerun`` is
        the command a missing piece's error names."""
        present = tuple(n for n in cls.OPTIONAL if (Path(path) / f"{n}.npy").exists())
        arrays, meta = load_arrays(path, cls.ARRAYS + present, rerun)
        return cls(**arrays), meta


def blank_rewards(episodes: list) -> list[dict]:
    """Episodes (Minari dicts or :class:`~justask.rollout.Episode`) as dicts with every reward
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


def data_spec(table: StepTable, meta: dict) -> Spec:
    """Model input spec from the training rows of a relabeled table."""
    train_rows = table.split[table.episode] == 0
    obs = table.observations[train_rows]
    discrete = table.actions.ndim == 1
    return Spec(
        obs_dim=obs.shape[1],
        act_dim=int(table.actions.max()) + 1 if discrete else table.actions.shape[1],
        discrete=discrete,
        max_timestep=int(meta["max_episode_steps"]),
        obs_mean=tuple(float(x) for x in obs.mean(0)),
        obs_std=tuple(float(x) for x in obs.std(0)),
        return_scale=float(max(1.0, meta["ref_max_score"] - meta["ref_min_score"])),
    )


SAMPLINGS = ("step", "episode", "return")


def row_weights(table: StepTable, rows: np.ndarray, sampling: str, bins: int = 10) -> np.ndarray | None:
    """Sampling probability of each of ``rows`` (None: uniform over steps, ``step``).

    ``episode``: every selected episode equally likely, then a step of it uniformly (long episodes
    stop dominating); ``return``: every occupied bin of ``bins`` equal-width bins of the selected
    episodes' returns equally likely, then an episode of that bin, then a step (a rare return gets
    the share of a common one)."""
    if sampling == "step":
        return None
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    episodes, row_ep, per_episode = np.unique(table.episode[rows], return_inverse=True, return_counts=True)
    weight = 1.0 / per_episode  # each episode sums to 1
    if sampling == "return":
        ret = table.returns[episodes]
        edges = np.linspace(ret.min(), ret.max(), bins + 1)[1:-1]
        _, bin_of, per_bin = np.unique(np.digitize(ret, edges), return_inverse=True, return_counts=True)
        weight = weight / per_bin[bin_of]  # each occupied bin sums to 1
    w = weight[row_ep]
    return w / w.sum()


class Steps:
    """A relabeled table on the device, restricted to some episodes, sampled as windows.

    ``condition`` is what the windows' ``rtg`` entry holds: the return-to-go (``return``) or the
    episode's skill label (``skill``, the same at every step). ``sampling`` is how a training batch
    picks its rows (:func:`row_weights`); validation passes go over every row, unweighted."""

    def __init__(self, table: StepTable, episodes: np.ndarray, device: torch.device,
                 max_rows: int | None = None, condition: str = "return", sampling: str = "step"):
        rows = np.flatnonzero(np.isin(table.episode, episodes))
        if len(rows) == 0:
            raise ValueError("no steps selected for training; check the split and top_fraction")
        if max_rows is not None and len(rows) > max_rows:  # evenly spaced, deterministic subset
            rows = rows[np.linspace(0, len(rows) - 1, max_rows).astype(np.int64)]
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=device)  # noqa: E731
        self.rows = t(rows)
        weights = row_weights(table, rows, sampling)
        # inverse-CDF draws: one searchsorted per batch, not a multinomial over every row
        self.cdf = None if weights is None else torch.as_tensor(np.cumsum(weights), dtype=torch.float64)
        self.obs, self.actions = t(table.observations), t(table.actions)
        if condition == "skill":
            if table.skill is None:
                raise ValueError("this relabeled table has no skill labels; rerun relabel (the return family "
                                 "labels each episode with its behaviour's skill rank)")
            self.rtg = t(table.skill[table.episode].astype(np.float32))
        else:
            self.rtg = t(table.rtg)
        self.timesteps = t(table.timesteps)
        self.ep_start = t(table.starts[table.episode])
        self.device = device

    def __len__(self) -> int:
        return len(self.rows)

    def windows(self, ends: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        """Windows of ``k`` steps ending at table rows ``ends``, left-padded at episode starts."""
        idx = ends[:, None] - torch.arange(k - 1, -1, -1, device=self.device)
        mask = idx >= self.ep_start[ends][:, None]
        idx = torch.where(mask, idx, ends[:, None])
        m = mask.unsqueeze(-1)
        act = self.actions[idx]
        return {
            "obs": self.obs[idx] * m,
            "actions": act * (mask if act.ndim == 2 else m),
            "rtg": self.rtg[idx] * mask,
            "timesteps": self.timesteps[idx] * mask,
            "mask": mask,
        }

    def sample(self, gen: torch.Generator, batch: int, k: int) -> dict[str, torch.Tensor]:
        if self.cdf is None:
            pick = torch.randint(len(self.rows), (batch,), generator=gen, device="cpu")
        else:
            u = torch.rand(batch, generator=gen, dtype=torch.float64) * self.cdf[-1]
            pick = torch.searchsorted(self.cdf, u, right=True).clamp_(max=len(self.rows) - 1)
        pick = pick.to(self.device)
        return self.windows(self.rows[pick], k)
