"""The in-context model of Algorithm Distillation (Laskin et al., 2022): a causal transformer with
one token per step, the sum of embeddings of the step's cell, the previous action, the previous
reward, its time within the episode and its position in the window, predicting the step's action.
Windows span several episodes, so the prediction at a step sees the earlier attempts and their
rewards; nothing tells the model the goal.

Built like the project's Decision Transformer (GPT-2 initialisation, pre-norm blocks, padded steps
masked out of attention and loss), with AD's single token per step (DT interleaves three). Expert
distillation is the same model trained on converged episodes only."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from justask.models.common import action_loss
from justask.models.decision_transformer import Block, init_gpt2
from justask.paths import family_paths
from justask.training.checkpoints import (
    check_provenance,
    provenance,
    read_payload,
    rebuild,
    save_checkpoint,
    trained_on,
)
from justask.training.loop import Optimisation

from .env import ACTIONS

KIND = "in-context"

def model_provenance(params, model: str, root: Path) -> dict:
    """What ``model``'s checkpoints must have been trained for and on."""
    data = params.family("improve").train.models[model]
    where = family_paths("improve", root).relabeled(data)
    return provenance("improve", data, model, **trained_on(params, "improve", where))


@dataclass(frozen=True)
class RoomSpec:
    size: int  # the room is size x size
    horizon: int  # steps per episode


class InContextTransformer(nn.Module):
    def __init__(self, spec: RoomSpec, hidden: int = 64, layers: int = 4, heads: int = 4,
                 context_episodes: int = 4, dropout: float = 0.1):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.spec, self.context = spec, context_episodes * spec.horizon
        self.embed_row, self.embed_col = nn.Embedding(spec.size, hidden), nn.Embedding(spec.size, hidden)
        self.embed_prev_action = nn.Embedding(ACTIONS + 1, hidden)  # + "no previous action"
        self.embed_prev_reward = nn.Linear(1, hidden)
        self.embed_t = nn.Embedding(spec.horizon, hidden)
        self.embed_pos = nn.Embedding(self.context, hidden)
        self.ln_in = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(hidden, heads, dropout) for _ in range(layers))
        self.ln_out = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, ACTIONS)
        self.apply(init_gpt2)

    def forward(self, cells, prev_actions, prev_rewards, timesteps, mask) -> torch.Tensor:
        """Action logits (B, K, ACTIONS) for windows of K steps (K at most the context)."""
        k = cells.shape[1]
        pos = torch.arange(self.context - k, self.context, device=cells.device)  # the window's right end is last
        size = self.spec.size
        x = (self.embed_row(cells // size) + self.embed_col(cells % size) + self.embed_prev_action(prev_actions)
             + self.embed_prev_reward(prev_rewards.unsqueeze(-1).float()) + self.embed_t(timesteps)
             + self.embed_pos(pos)[None])
        x = self.drop(self.ln_in(x))
        n = mask.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=mask.device).tril()
        eye = torch.eye(n, dtype=torch.bool, device=mask.device)
        allowed = ((causal & mask[:, None, :]) | eye).unsqueeze(1)
        for block in self.blocks:
            x = block(x, allowed)
        return self.head(self.ln_out(x))

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self(batch["cells"], batch["prev_actions"], batch["prev_rewards"], batch["timesteps"], batch["mask"])
        return action_loss(logits, batch["actions"], batch["mask"], discrete=True)

    @torch.no_grad()
    def sample(self, batch: dict[str, torch.Tensor], gen: torch.Generator) -> torch.Tensor:
        """An action per window, drawn from the predicted distribution at its last step."""
        logits = self(batch["cells"], batch["prev_actions"], batch["prev_rewards"], batch["timesteps"], batch["mask"])
        return torch.multinomial(F.softmax(logits[:, -1].float(), dim=-1), 1, generator=gen).squeeze(-1)


BUILD = ("hidden", "layers", "heads", "context_episodes", "dropout")  # what of the hp builds the model


def build_model(spec: RoomSpec, hp: dict) -> InContextTransformer:
    return InContextTransformer(spec, **{k: hp[k] for k in BUILD})


def candidate(spec: RoomSpec, hp: dict, steps: int):
    """(model factory, optimisation) of ``hp`` fitted for ``steps`` (a :data:`justask.training.tune.Candidate`)."""
    return (partial(build_model, spec, hp),
            Optimisation(lr=hp["lr"], weight_decay=hp["weight_decay"], batch_size=hp["batch_size"], steps=steps))


def save_model(hp: dict, spec: RoomSpec, prov: dict, path: Path, model: nn.Module, meta: dict) -> None:
    """Write ``model.pt``: weights, what rebuilds them, where they come from (``prov``)."""
    save_checkpoint(path, KIND, hp, spec, model, meta, prov)


def weights_hash(model: nn.Module) -> str:
    """SHA-256 of every weight, by name: what evaluation compares before and after its rollouts."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def load_model(path: Path, expect: dict | None = None, rerun: str = "dvc repro train@improve"):
    """Rebuild a trained in-context model from ``model.pt`` (``weights_only=True``), in eval mode;
    with ``expect``, refuse one trained for another model, configuration or data
    (:class:`justask.errors.CheckpointError` naming the file)."""
    payload = read_payload(path, "cpu", (KIND,), "improve")
    if expect is not None:
        check_provenance(path, payload, expect, rerun)
    model = rebuild(path, payload, lambda p: build_model(RoomSpec(**p["spec"]), p["hp"]),
                    "an in-context transformer")
    return model.eval(), payload
