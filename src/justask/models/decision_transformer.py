"""Decision Transformer (Chen et al., 2021): a causal transformer over (return-to-go, state,
action) tokens that predicts each action from its state token.

Token order per timestep t is R_t, s_t, a_t, so the prediction read at s_t sees R_<=t, s_<=t and
a_<t, never a_t. Windows shorter than the context are left-padded; padded positions are excluded
from the loss, and the same padding appears at training and at rollout time.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from justask.models.common import Normalizer, action_loss, greedy


class Block(nn.Module):
    """Pre-norm transformer block with causal self-attention."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                             dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(att.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.ln2(x))


class DecisionTransformer(nn.Module):
    def __init__(self, spec, hidden: int = 64, layers: int = 2, heads: int = 2, context: int = 20,
                 dropout: float = 0.1):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.spec, self.context = spec, context
        self.norm = Normalizer(spec)
        self.embed_rtg = nn.Linear(1, hidden)
        self.embed_obs = nn.Linear(spec.obs_dim, hidden)
        self.embed_act = nn.Embedding(spec.act_dim, hidden) if spec.discrete else nn.Linear(spec.act_dim, hidden)
        self.embed_t = nn.Embedding(spec.max_timestep + 1, hidden)
        self.ln_in = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(hidden, heads, dropout) for _ in range(layers))
        self.ln_out = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, spec.act_dim)

    def forward(self, obs, actions, rtg, timesteps) -> torch.Tensor:
        """Action predictions (B, K, act_dim) for windows of K timesteps."""
        b, k = rtg.shape
        t = self.embed_t(timesteps.clamp(0, self.spec.max_timestep))
        act = actions.long().clamp_min(0) if self.spec.discrete else actions.float()
        tokens = torch.stack([
            self.embed_rtg(self.norm.rtg(rtg)) + t,
            self.embed_obs(self.norm.obs(obs)) + t,
            self.embed_act(act) + t,
        ], dim=2).reshape(b, 3 * k, -1)
        x = self.drop(self.ln_in(tokens))
        for block in self.blocks:
            x = block(x)
        x = self.ln_out(x).reshape(b, k, 3, -1)
        return self.head(x[:, :, 1])  # read out at the state tokens

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pred = self(batch["obs"], batch["actions"], batch["rtg"], batch["timesteps"])
        return action_loss(pred, batch["actions"], batch["mask"], self.spec.discrete)

    @torch.no_grad()
    def act(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pred = self(batch["obs"], batch["actions"], batch["rtg"], batch["timesteps"])
        return greedy(pred[:, -1], self.spec.discrete)
