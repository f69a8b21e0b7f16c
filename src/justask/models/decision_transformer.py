"""Decision Transformer (Chen et al., 2021): a causal transformer over (return-to-go, state,
action) tokens that predicts each action from its state token.

Token order per timestep t is R_t, s_t, a_t, so the prediction read at s_t sees R_<=t, s_<=t and
a_<t, never a_t. Windows shorter than the context are left-padded; padded positions are masked
out of attention (a padded step cannot change the prediction at a real one) and out of the loss.

Built as the reference implementations are (CORL ``dt.py``, kzl/decision-transformer): GPT-2
initialisation (weights N(0, 0.02)), a learned timestep embedding added to every token, LayerNorm
and dropout on the interleaved embeddings. Two departures, both measured on development seeds
(``benchmarks/dt_ablation.py``): ``actions=False`` drops the past action tokens, since past actions
of deterministic controllers identify the controller and let the model ignore the return
("copycat"); and the sizes are smaller (see the README, "Decision Transformer").
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from justask.models.common import Normalizer, action_loss, greedy


class Block(nn.Module):
    """Pre-norm transformer block with masked self-attention."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                             dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(att.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.ln2(x))


def init_gpt2(module: nn.Module) -> None:
    """GPT-2 / CORL initialisation: Linear and Embedding weights N(0, 0.02), biases 0."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class DecisionTransformer(nn.Module):
    condition = "return"

    def __init__(self, spec, hidden: int = 64, layers: int = 2, heads: int = 2, context: int = 20,
                 dropout: float = 0.1, actions: bool = True):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.spec, self.context, self.actions = spec, context, actions
        self.tokens_per_step = 3 if actions else 2
        self.norm = Normalizer(spec)
        self.embed_rtg = nn.Linear(1, hidden)
        self.embed_obs = nn.Linear(spec.obs_dim, hidden)
        if actions:
            self.embed_act = (nn.Embedding(spec.act_dim, hidden) if spec.discrete
                              else nn.Linear(spec.act_dim, hidden))
        self.embed_t = nn.Embedding(spec.max_timestep + 1, hidden)
        self.ln_in = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(hidden, heads, dropout) for _ in range(layers))
        self.ln_out = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, spec.act_dim)
        self.apply(init_gpt2)

    def embed(self, obs, actions, rtg, timesteps) -> torch.Tensor:
        """Interleaved tokens (B, tokens_per_step * K, hidden): R_t, s_t[, a_t] per step."""
        b, k = rtg.shape
        t = self.embed_t(timesteps.clamp(0, self.spec.max_timestep))
        tokens = [self.embed_rtg(self.norm.rtg(rtg)) + t, self.embed_obs(self.norm.obs(obs)) + t]
        if self.actions:
            act = actions.long().clamp_min(0) if self.spec.discrete else actions.float()
            tokens.append(self.embed_act(act) + t)
        return torch.stack(tokens, dim=2).reshape(b, self.tokens_per_step * k, -1)

    def attention_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, 1, N, N) boolean, True where a query token may attend a key token: causal, never to a
        padded step, and always to itself (so a padded query has a well-defined, unused output)."""
        valid = mask.repeat_interleave(self.tokens_per_step, dim=1)
        n = valid.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=mask.device).tril()
        eye = torch.eye(n, dtype=torch.bool, device=mask.device)
        return ((causal & valid[:, None, :]) | eye).unsqueeze(1)

    def forward(self, obs, actions, rtg, timesteps, mask) -> torch.Tensor:
        """Action predictions (B, K, act_dim) for windows of K timesteps."""
        b, k = rtg.shape
        x = self.drop(self.ln_in(self.embed(obs, actions, rtg, timesteps)))
        allowed = self.attention_mask(mask)
        for block in self.blocks:
            x = block(x, allowed)
        x = self.ln_out(x).reshape(b, k, self.tokens_per_step, -1)
        return self.head(x[:, :, 1])  # read out at the state tokens

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pred = self(batch["obs"], batch["actions"], batch["rtg"], batch["timesteps"], batch["mask"])
        return action_loss(pred, batch["actions"], batch["mask"], self.spec.discrete)

    @torch.no_grad()
    def act(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pred = self(batch["obs"], batch["actions"], batch["rtg"], batch["timesteps"], batch["mask"])
        return greedy(pred[:, -1], self.spec.discrete)
