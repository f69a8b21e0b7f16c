"""RvS-style policy: an MLP on (state, condition); without the condition it is plain BC.

Emmons et al., "RvS: What is Essential for Offline RL via Supervised Learning?" (2021). The
condition is the return-to-go (RvS-R) or, with ``condition="skill"``, the skill rank of the
behaviour that produced the episode (the essay's AlphaStar example: a player's rating, known before
the game, rather than this game's outcome).
"""

from __future__ import annotations

import torch
from torch import nn

from justask.models.common import Normalizer, action_loss, greedy


class ConditionedMLP(nn.Module):
    context = 1

    def __init__(self, spec, hidden: int = 256, layers: int = 2, dropout: float = 0.1, condition: str = "return"):
        """``condition``: ``return``, ``skill`` or ``none`` (plain BC)."""
        super().__init__()
        self.spec, self.condition = spec, condition
        self.conditioned = condition != "none"
        self.norm = Normalizer(spec)
        dims = [spec.obs_dim + int(self.conditioned)] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            blocks += [nn.Linear(a, b), nn.GELU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(hidden, spec.act_dim)

    def forward(self, obs: torch.Tensor, rtg: torch.Tensor) -> torch.Tensor:
        x = self.norm.obs(obs)
        if self.conditioned:
            x = torch.cat([x, self.norm.rtg(rtg)], dim=-1)
        return self.head(self.body(x))

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pred = self(batch["obs"][:, -1], batch["rtg"][:, -1])
        return action_loss(pred, batch["actions"][:, -1], batch["mask"][:, -1], self.spec.discrete)

    @torch.no_grad()
    def act(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return greedy(self(batch["obs"][:, -1], batch["rtg"][:, -1]), self.spec.discrete)
