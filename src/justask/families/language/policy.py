"""Instruction-conditioned policy for BabyAI: p(action | last K partial views, instruction).

Each 7x7 view is a grid of (object, colour, state) indices; every index gets a learned embedding
and the three are summed per cell, then two 3x3 convolutions, each modulated by the instruction
with FiLM (Perez et al., 2018, as in the BabyAI baselines). A GRU runs over the K frames of the
window (the short history: what the agent saw a few steps ago, e.g. before it turned), and a
linear head predicts the action at every position. The instruction comes from a learned word
encoder or a frozen sentence encoder (:mod:`.encoders`).

With ``reader: tokens`` the instruction is a sequence of token vectors, not one point, and each
cell of the view also attends over them (a learned "nothing" token among them) before the
convolutions: a cell's attention score is a sum of what its object, colour and state embeddings
each say, so "red" and "ball" are matched separately, and a red ball scores as the sum of the two
even if "red ball" was never trained (the pooled tokens still drive FiLM, e.g. for the verb).

With ``reader: factored`` (:class:`FactoredPolicy`) nothing downstream of the match can know a
colour x object pair as a whole: a cell's colour and its object each attend over the words'
own embeddings (the same "ball" after "red" as after "blue"), each read-out is the *slot* it
matched (a GRU state over the sentence's roles, "<colour> <object>", never the words), and the
convolutions see the cell's object and state, not its colour. A held-out pair, which the rooms
show only as a distractor, cannot be learnt as "never the target". The price is a stated prior:
colour matters only as something named (right for BabyAI's grammar, wrong for "avoid red cells").
Why, measured: benchmarks/README.md, "Why the word-token reader does not compose in the rooms".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from justask.training.checkpoints import (
    check_provenance,
    provenance,
    read_payload,
    rebuild,
    save_checkpoint,
    settings_digest,
)
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
    reader: str = "sentence"  # "sentence" (one vector), "tokens" or "factored" (cells attend over the words)


CELL_DIM = 32  # per-cell embedding width
# What reaches the convolutions per cell, in CELL_DIM widths: its embedding; + its attention
# read-out (tokens); its object and state, what they matched, what its colour matched (factored).
CELL_READS = {"sentence": 1, "tokens": 2, "factored": 3}


class FiLMConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm = nn.BatchNorm2d(c_out)
        self.film = nn.Linear(cond_dim, 2 * c_out)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(cond)[..., None, None].chunk(2, dim=1)
        return F.relu(self.norm(self.conv(x)) * (1 + gamma) + beta)


class CellAttention(nn.Module):
    """Each cell of a view attends over the instruction's tokens and a learned null token (for a
    cell the instruction does not mention); returns the read-out per cell."""

    def __init__(self, token_dim: int, dim: int = CELL_DIM):
        super().__init__()
        self.query = nn.Linear(CELL_DIM, dim, bias=False)
        self.key, self.value = nn.Linear(token_dim, dim), nn.Linear(token_dim, dim)
        self.null = nn.Parameter(torch.zeros(2, dim))  # its key and its value
        self.scale = dim ** -0.5

    def forward(self, cells: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor,
                values: torch.Tensor | None = None) -> torch.Tensor:
        """``cells`` (N, 49, CELL_DIM), ``tokens`` (N, L, token_dim), ``mask`` (N, L) -> (N, 49, dim);
        the read-out is of ``values`` (N, L, token_dim) where given, else of the tokens themselves."""
        n = len(cells)
        keys = torch.cat([self.null[:1].expand(n, 1, -1), self.key(tokens)], 1)
        values = torch.cat([self.null[1:].expand(n, 1, -1), self.value(tokens if values is None else values)], 1)
        scores = self.query(cells) @ keys.transpose(1, 2) * self.scale  # (N, 49, 1 + L)
        live = torch.cat([mask.new_ones(n, 1), mask], 1)[:, None]
        return scores.masked_fill(~live, float("-inf")).softmax(-1) @ values


class InstructionPolicy(nn.Module):
    def __init__(self, spec: GridSpec, hidden: int = 128, context: int = 4, dropout: float = 0.0,
                 channels: int = 64):
        super().__init__()
        self.spec, self.context = spec, context
        self.register_buffer("offsets", torch.tensor([0, CELL_VALUES[0], CELL_VALUES[0] + CELL_VALUES[1]]))
        self.cell = nn.Embedding(sum(CELL_VALUES), CELL_DIM)
        self.instruction = build_instruction_encoder(spec.encoder, hidden, spec.vocab_size, spec.sentence_dim,
                                                     spec.reader)
        self.attend = CellAttention(hidden) if self.instruction.reads_tokens else None
        self.conv1 = FiLMConv(CELL_DIM * CELL_READS[spec.reader], channels, hidden)
        self.conv2 = FiLMConv(channels, channels, hidden)
        self.frame = nn.Sequential(nn.Linear(channels * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.direction = nn.Embedding(4, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, spec.act_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Action logits (B, K, act_dim) for windows of K frames."""
        images = batch["images"]  # (B, K, 7, 7, 3)
        b, k = images.shape[:2]
        cond = tuple(c.repeat_interleave(k, dim=0) for c in self.condition(batch))
        x = self.frame_features(images.flatten(0, 1), cond).view(b, k, -1)
        return self.window_logits(x, batch["directions"])

    def condition(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """What each frame is read under, as a tuple of per-row tensors: ``(vector,)`` for a
        sentence reader, ``(pooled, tokens, mask)`` for a token reader."""
        encoded = self.instruction(batch)
        if self.attend is None:
            return (encoded,)
        tokens, mask = encoded
        m = mask.unsqueeze(-1).float()
        return (tokens * m).sum(1) / m.sum(1).clamp_min(1.0), tokens, mask

    def frame_features(self, images: torch.Tensor, cond: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Features (N, hidden) of N single views (N, 7, 7, 3), each under its :meth:`condition`."""
        x = self.cell(images.long() + self.offsets).sum(-2)  # (N, 7, 7, CELL_DIM)
        if self.attend is not None:
            read = self.attend(x.flatten(1, 2), cond[1], cond[2]).view_as(x)
            x = torch.cat([x, read], -1)
        x = x.permute(0, 3, 1, 2)
        x = self.conv2(self.conv1(x, cond[0]), cond[0])
        return self.frame(x.flatten(1))

    def window_logits(self, features: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """Action logits (B, K, act_dim) from per-frame features (B, K, hidden) and directions (B, K)."""
        out, _ = self.gru(features + self.direction(directions.long()))
        return self.head(out)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self(batch)
        per = F.cross_entropy(logits.flatten(0, 1).float(), batch["actions"].flatten().long(), reduction="none")
        m = batch.get("supervised", batch["mask"]).flatten().float()  # steps inside the label's segment
        return (per * m).sum() / m.sum().clamp_min(1.0)

    @torch.no_grad()
    def act(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(batch)[:, -1].argmax(-1)


class FactoredPolicy(InstructionPolicy):
    """``reader: factored``: a cell's colour and its object (with its state) each attend over the
    words' embeddings with a query of their own, each reads out the slot it matched
    (:class:`.encoders.SlotTokens`), and the convolutions get the cell's object and state and the
    two read-outs, never its colour. FiLM reads the slots' last state: the sentence's shape and
    verbs, never a colour or an object word."""

    def __init__(self, spec: GridSpec, **kw):
        super().__init__(spec, **kw)
        self.attend_colour = CellAttention(self.direction.embedding_dim)

    def condition(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """``(last slot, word keys, mask, slots)`` per row."""
        keys, slots, mask = self.instruction(batch)
        last = (mask * torch.arange(mask.shape[1], device=mask.device)).amax(1)
        return slots[torch.arange(len(slots), device=slots.device), last], keys, mask, slots

    def frame_features(self, images: torch.Tensor, cond: tuple[torch.Tensor, ...]) -> torch.Tensor:
        film, keys, mask, slots = cond
        parts = self.cell(images.long() + self.offsets)  # (N, 7, 7, 3, CELL_DIM): object, colour, state
        kind = parts[..., 0, :] + parts[..., 2, :]
        by_kind = self.attend(kind.flatten(1, 2), keys, mask, slots).view_as(kind)
        by_colour = self.attend_colour(parts[..., 1, :].flatten(1, 2), keys, mask, slots).view_as(kind)
        x = torch.cat([kind, by_kind, by_colour], -1).permute(0, 3, 1, 2)
        x = self.conv2(self.conv1(x, film), film)
        return self.frame(x.flatten(1))


def build_policy(hp: dict, spec: GridSpec) -> InstructionPolicy:
    kind = FactoredPolicy if spec.reader == "factored" else InstructionPolicy
    return kind(spec, hidden=hp["hidden"], context=hp["context"], dropout=hp["dropout"],
                channels=hp.get("channels", 64))  # checkpoints from before the setting: 64


def candidate(spec: GridSpec, hp: dict, steps: int) -> tuple[partial, Optimisation]:
    """A policy with ``hp`` fitted for ``steps`` (see :data:`justask.training.tune.Candidate`)."""
    return (partial(build_policy, hp, spec),
            Optimisation(lr=hp["lr"], weight_decay=hp["weight_decay"], batch_size=hp["batch_size"], steps=steps))


def instruction_features(encoder: str, texts: list[str], vocab: Vocabulary,
                         reader: str = "sentence") -> dict[str, np.ndarray]:
    """What a policy reads for each instruction text: token ids (word; padded to the longest text,
    which the word encoder ignores) and, for ``reader="factored"``, their roles; a frozen embedding
    (minilm), or frozen per-piece outputs and their mask (minilm, ``reader="tokens"``)."""
    if encoder == "word":
        tokens = vocab.encode(texts, max([len(tokenize(t)) for t in texts], default=1))
        return {"tokens": tokens} | ({"roles": vocab.roles(tokens)} if reader == "factored" else {})
    from .encoders import SentenceEmbedder

    if reader == "tokens":
        states, mask = SentenceEmbedder().embed_tokens(texts)
        return {"token_states": states, "token_mask": mask}
    return {"sentence": SentenceEmbedder().embed(texts)}


def save_policy(path: Path, hp: dict, spec: GridSpec, model: torch.nn.Module, vocab: Vocabulary, meta: dict,
                prov: dict | None = None) -> None:
    """Write what :func:`load_policy` needs to act on new instructions: weights, settings, vocabulary
    (and where it comes from, :func:`policy_provenance`)."""
    save_checkpoint(path, KIND, hp, spec, model, meta, prov, vocabulary=list(vocab.words))


def policy_provenance(params, name: str, data_digest: str) -> dict:
    """What model ``name``'s checkpoints must have been trained for and on (``data_digest``: that of
    the relabeled table it reads, :func:`justask.io.files_digest`)."""
    data = params.family("language").train.models[name].data
    return provenance("language", data, name, settings_digest(params, "language"), data_digest)


def load_policy(path: Path, device: torch.device | str = "cpu", expect: dict | None = None):
    """Rebuild an instruction policy and its vocabulary from ``model.pt`` (``weights_only=True``);
    returns ``(model, vocabulary, payload)``. Raises :class:`CheckpointError` naming the file when it
    is damaged, holds another family's model or weights of another shape than its settings, or
    (with ``expect``) was trained for another model, configuration or data."""
    payload = read_payload(path, device, (KIND,), "language")
    if expect is not None:
        check_provenance(path, payload, expect, "dvc repro train@language")
    vocab: list[Vocabulary] = []

    def build(p: dict) -> InstructionPolicy:
        vocab.append(Vocabulary(tuple(p["vocabulary"])))
        return build_policy(p["hp"], GridSpec(**p["spec"]))

    model = rebuild(path, payload, build, "an instruction policy")
    return model.to(device).eval(), vocab[0], payload
