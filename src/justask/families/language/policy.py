"""Instruction-conditioned policy for BabyAI: p(action | last K partial views, instruction).

Each 7x7 view is a grid of (object, colour, state) indices; every index gets a learned embedding
and the three are summed per cell, then two 3x3 convolutions, each modulated by the instruction
with FiLM (Perez et al., 2018, as in the BabyAI baselines). A GRU runs over the K frames of the
window (the short history: what the agent saw a few steps ago, e.g. before it turned), and a
linear head predicts the action at every position. The instruction comes from a learned word
encoder or a frozen sentence encoder (:mod:`.encoders`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from justask.training.checkpoints import read_payload, rebuild, save_checkpoint
from justask.training.loop import Optimisation

from .encoders import build_instruction_encoder
from .grammar import Vocabulary, tokenize

KIND = "instruction"  # the model kind in its checkpoints

# minigrid's encoding: object index < 11, colour index < 6, state < 3 (see minigrid.core.constants)
CELL_VALUES = (11, 6, 3)


@dataclass(frozen=True)
class GridSpec:
    """What an instruction policy needs to know about its data."""

    act_dim: int
    encoder: str  # "word" or "minilm"
    vocab_size: int  # word encoder only (0 for minilm)
    sentence_dim: int = 384  # minilm only


class FiLMConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm = nn.BatchNorm2d(c_out)
        self.film = nn.Linear(cond_dim, 2 * c_out)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(cond)[..., None, None].chunk(2, dim=1)
        return F.relu(self.norm(self.conv(x)) * (1 + gamma) + beta)


class InstructionPolicy(nn.Module):
    def __init__(self, spec: GridSpec, hidden: int = 128, context: int = 4, dropout: float = 0.0):
        super().__init__()
        self.spec, self.context = spec, context
        self.register_buffer("offsets", torch.tensor([0, CELL_VALUES[0], CELL_VALUES[0] + CELL_VALUES[1]]))
        self.cell = nn.Embedding(sum(CELL_VALUES), 32)
        self.instruction = build_instruction_encoder(spec.encoder, hidden, spec.vocab_size, spec.sentence_dim)
        self.conv1 = FiLMConv(32, 64, hidden)
        self.conv2 = FiLMConv(64, 64, hidden)
        self.frame = nn.Sequential(nn.Linear(64 * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.direction = nn.Embedding(4, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, spec.act_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Action logits (B, K, act_dim) for windows of K frames."""
        images = batch["images"]  # (B, K, 7, 7, 3)
        b, k = images.shape[:2]
        cond = self.instruction(batch)  # (B, hidden)
        x = self.frame_features(images.flatten(0, 1), cond.repeat_interleave(k, dim=0)).view(b, k, -1)
        return self.window_logits(x, batch["directions"])

    def frame_features(self, images: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Features (N, hidden) of N single views (N, 7, 7, 3), each under its instruction ``cond``."""
        x = self.cell(images.long() + self.offsets).sum(-2).permute(0, 3, 1, 2)  # (N, 32, 7, 7)
        x = self.conv2(self.conv1(x, cond), cond)
        return self.frame(x.flatten(1))

    def window_logits(self, features: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """Action logits (B, K, act_dim) from per-frame features (B, K, hidden) and directions (B, K)."""
        out, _ = self.gru(features + self.direction(directions.long()))
        return self.head(out)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self(batch)
        per = F.cross_entropy(logits.flatten(0, 1).float(), batch["actions"].flatten().long(), reduction="none")
        m = batch["mask"].flatten().float()
        return (per * m).sum() / m.sum().clamp_min(1.0)

    @torch.no_grad()
    def act(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(batch)[:, -1].argmax(-1)


def build_policy(hp: dict, spec: GridSpec) -> InstructionPolicy:
    return InstructionPolicy(spec, hidden=hp["hidden"], context=hp["context"], dropout=hp["dropout"])


def candidate(spec: GridSpec, hp: dict, steps: int) -> tuple[partial, Optimisation]:
    """A policy with ``hp`` fitted for ``steps`` (see :data:`justask.training.tune.Candidate`)."""
    return (partial(build_policy, hp, spec),
            Optimisation(lr=hp["lr"], weight_decay=hp["weight_decay"], batch_size=hp["batch_size"], steps=steps))


def instruction_features(encoder: str, texts: list[str], vocab: Vocabulary) -> dict[str, np.ndarray]:
    """What a policy reads for each instruction text: token ids (word; padded to the longest text,
    which the word encoder ignores) or a frozen embedding (minilm)."""
    if encoder == "word":
        return {"tokens": vocab.encode(texts, max([len(tokenize(t)) for t in texts], default=1))}
    from .encoders import SentenceEmbedder

    return {"sentence": SentenceEmbedder().embed(texts)}


def save_policy(path: Path, hp: dict, spec: GridSpec, model: torch.nn.Module, vocab: Vocabulary, meta: dict) -> None:
    """Write what :func:`load_policy` needs to act on new instructions: weights, settings, vocabulary."""
    save_checkpoint(path, KIND, hp, spec, model, meta, vocabulary=list(vocab.words))


def load_policy(path: Path, device: torch.device | str = "cpu"):
    """Rebuild an instruction policy and its vocabulary from ``model.pt`` (``weights_only=True``);
    returns ``(model, vocabulary, payload)``. Raises :class:`CheckpointError` naming the file when it
    is damaged, holds another family's model or weights of another shape than its settings."""
    payload = read_payload(path, device, (KIND,), "language")
    vocab: list[Vocabulary] = []

    def build(p: dict) -> InstructionPolicy:
        vocab.append(Vocabulary(tuple(p["vocabulary"])))
        return build_policy(p["hp"], GridSpec(**p["spec"]))

    model = rebuild(path, payload, build, "an instruction policy")
    return model.to(device).eval(), vocab[0], payload
