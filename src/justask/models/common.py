"""Pieces shared by the models: input normalisation and the action head/loss."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# CPU matrix products take another kernel path below 4 rows, whose last float digits differ. From 4
# rows up, the shipped (discrete-action) models give each row the same greedy action whatever the
# other rows hold, so evaluation may act on the live slots only (padded to 4 rows) and encode each
# view once; tests/engine/test_inference.py and tests/families/language/test_inference.py check it.
# Continuous actions can differ in the last digits.
MIN_ROWS = 4


class Normalizer(nn.Module):
    """Fixed observation standardisation and return-to-go scaling, saved with the model."""

    def __init__(self, spec):
        super().__init__()
        self.register_buffer("mean", torch.tensor(spec.obs_mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(spec.obs_std, dtype=torch.float32).clamp_min(1e-3))
        self.return_scale = float(spec.return_scale)

    def obs(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def rtg(self, r: torch.Tensor) -> torch.Tensor:
        return (r / self.return_scale).unsqueeze(-1)


def action_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, discrete: bool) -> torch.Tensor:
    """Cross-entropy (discrete) or squared error (continuous), averaged over ``mask``-ed positions."""
    if discrete:
        per = F.cross_entropy(pred.flatten(0, -2).float(), target.flatten().long(), reduction="none")
    else:
        per = ((pred.float() - target.float()) ** 2).mean(-1).flatten()
    m = mask.flatten().float()
    return (per * m).sum() / m.sum().clamp_min(1.0)


def greedy(pred: torch.Tensor, discrete: bool) -> torch.Tensor:
    return pred.argmax(-1) if discrete else pred.clamp(-1, 1)
