"""A learned reward r(s) trained to rank trajectory snippets (T-REX / D-REX).

Brown et al., "Extrapolating Beyond Suboptimal Demonstrations via Inverse Reinforcement Learning
from Observations" (T-REX, 2019) and "Better-than-Demonstrator Imitation Learning via
Automatically-Ranked Demonstrations" (D-REX, 2019). The predicted return of a snippet is the sum
of r over its steps; the Bradley-Terry model says P(b preferred to a) = softmax(R_a, R_b)[b], and
the loss is the cross-entropy against which snippet was ranked higher.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from justask.models.common import Normalizer


class RewardNet(nn.Module):
    context = 1  # the trainer's window length; a pair batch carries its own snippet length

    def __init__(self, spec, hidden: int = 128, layers: int = 2, dropout: float = 0.0):
        super().__init__()
        self.spec = spec
        self.norm = Normalizer(spec)
        dims = [spec.obs_dim] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            blocks += [nn.Linear(a, b), nn.GELU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*blocks, nn.Linear(hidden, 1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Reward of each state: (..., obs_dim) -> (...)."""
        return self.body(self.norm.obs(obs)).squeeze(-1)

    def snippet_returns(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 2) predicted returns of the two snippets of each pair (padding masked out)."""
        return (self(batch["obs"]) * batch["mask"]).sum(-1)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(self.snippet_returns(batch).float(), batch["label"].long())


class LearnedReward:
    """An ensemble of reward nets as a NumPy function of observations.

    Each member's output is divided by its own scale (the standard deviation of its per-step
    rewards on the training data) before averaging, so no member dominates because the ranking
    loss happened to leave it with larger outputs. Rewards are not centred: shifting r by a
    constant would reward or punish episode length, which the ranking taught nothing about.
    """

    def __init__(self, members: list[RewardNet], scales: list[float], device: torch.device | str = "cpu"):
        if len(members) != len(scales) or not members:
            raise ValueError("need one scale per ensemble member, and at least one member")
        self.members = [m.to(device).eval() for m in members]
        self.scales = [float(s) for s in scales]
        self.device = device

    @torch.no_grad()
    def per_member(self, obs: np.ndarray, batch: int = 65536) -> np.ndarray:
        """(members, N) raw rewards of ``obs`` (N, obs_dim)."""
        out = np.empty((len(self.members), len(obs)), np.float64)
        for i in range(0, len(obs), batch):
            x = torch.as_tensor(np.asarray(obs[i:i + batch], np.float32), device=self.device)
            for k, m in enumerate(self.members):
                out[k, i:i + batch] = m(x).double().cpu().numpy()
        return out

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """(N,) ensemble reward of ``obs`` (N, obs_dim)."""
        raw = self.per_member(obs)
        return (raw / np.asarray(self.scales)[:, None]).mean(0)
