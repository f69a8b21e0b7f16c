"""Development ablation: why does the word-token reader, which composes on the toy, not compose in
BabyAI's rooms?

On the recorded run's held-out colour x object asks, ``relabeled-word-tokens`` engages no object
at all in 35-47% of asks, while the target is in its view most of the time: it sees the red ball
and does not approach it. Two routes could let a policy learn "red ball" as a whole instead of
"red" and "ball", both changed here without touching the family's code:

* ``position``: the instruction's token vectors are word embeddings plus a learned position
  embedding, instead of embeddings plus a GRU's state at each word. With the GRU, "ball" after
  "red" is a vector the policy never met when "red ball" is held out; without it, a word's vector
  is the same whatever its neighbours (the position still tells a put-next's first object).
* ``uncoloured``: the convolutions see each cell's object and state, not its colour; colour
  reaches them only through the cell's attention read-out. With the colour there, the
  convolutions can learn (red, ball) as a conjunction that, in training, is never a target.

A third route keeps the GRU but not what it reads (``roles``, :class:`RoleTokens`): it runs over
the sentence with each colour word replaced by one ``<colour>`` and each object word by one
``<object>``, so a word's vector says where it stands (a put-next's object or destination, which
clause) without what stands beside it. ``split`` separates the two jobs: the cells attend over
position tokens (which object), FiLM reads a GRU over the roles alone (what to do with it).

Four more (2026-12-05): ``gated`` (:class:`GatedCellAttention`), ``ctxfilm`` (``split`` with FiLM
over the words), ``slots`` (:class:`SlotPolicy`: attention keys are words, values their slots) and
``factored`` (a cell's colour and its object match the words separately, the convolutions see no
colour; since 2026-12-07 the family's own ``reader: factored``,
:class:`~justask.families.language.policy.FactoredPolicy`). The per-verb breakdown (``by_verb``:
asks, success) shows where a ``seen`` group's put-nexts fail:
:func:`~justask.families.language.asking.first_contact` reads only the first clause's object.

Each variant (and ``base``, the recorded ``reader: tokens``) fits on the default profile's
relabeled table (``dvc repro relabel@language`` first) with the default's settings, training seed
``--seed``, for ``--steps``; then asks on **development** env seeds (the asks ``relabel`` would
draw for ``params.seed = 1000``, minus every collect and evaluation seed of the default run, checked),
in GoToLocal and PutNextLocal: trained instructions (``seen``) and the held-out colour x object
pairs. Prints one JSON line per variant: best validation loss, success and the contact shares of
:func:`justask.families.language.asking.first_contact`.

    .venv/bin/python benchmarks/language_composition.py [variant ...] [--steps N] [--seed S] [--asks N] \
        >> benchmarks/results/language_composition.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time
from collections import Counter
from dataclasses import replace
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn

from justask.config import load_params
from justask.families.language import asking
from justask.families.language.asking import CONTACTS, rollout_asks
from justask.families.language.encoders import WordTokens
from justask.families.language.env import collect_env_seeds
from justask.families.language.grammar import Vocabulary, load_paraphrases, parse
from justask.families.language.policy import (
    CELL_DIM,
    CellAttention,
    FactoredPolicy,
    FiLMConv,
    GridSpec,
    InstructionPolicy,
    build_policy,
    instruction_features,
)
from justask.families.language.relabel import evaluation_asks
from justask.families.language.table import InstructionSteps, InstructionTable
from justask.seeding import seed_everything
from justask.training.loop import Loop, Optimisation, fit

DEV_SEED = 1000
LEVELS = ("BabyAI-GoToLocal-v0", "BabyAI-PutNextLocal-v0")
GROUPS = ("seen", "colour_object")
MAX_WORDS = 32  # longer than any instruction of the grammar ("A then B" put-nexts: 19 words)


class PositionTokens(WordTokens):
    """Word embeddings plus a learned position embedding: no word's vector depends on its neighbours."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__(vocab_size, dim)
        del self.gru
        self.position = nn.Embedding(MAX_WORDS, dim)

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = tokens.long()
        return self.embed(tokens) + self.position.weight[: tokens.shape[1]], tokens != Vocabulary.PAD


def with_roles(encoder: str, texts: list[str], vocab: Vocabulary, reader: str = "tokens") -> dict[str, np.ndarray]:
    """The family's instruction features plus their roles, for the asks of the roles variant."""
    features = instruction_features(encoder, texts, vocab, reader)
    return features | {"roles": vocab.roles(features["tokens"])}


class RoleTokens(WordTokens):
    """A word's embedding plus a GRU's state at that word over the sentence's roles (:meth:`Vocabulary.roles`):
    "ball" is the same vector after "red" as after "blue"; its place in the sentence still shows."""

    input_keys = ("tokens", "roles")

    def __init__(self, vocab_size: int, dim: int):
        super().__init__(vocab_size, dim)
        self.role = nn.Embedding(vocab_size + 2, dim, padding_idx=Vocabulary.PAD)

    def encode(self, tokens: torch.Tensor, roles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = tokens.long()
        return self.embed(tokens) + self.gru(self.role(roles.long()))[0], tokens != Vocabulary.PAD


class UncolouredPolicy(InstructionPolicy):
    """The convolutions see a cell's object and state embeddings; its colour only through attention."""

    def frame_features(self, images: torch.Tensor, cond: tuple[torch.Tensor, ...]) -> torch.Tensor:
        parts = self.cell(images.long() + self.offsets)  # (N, 7, 7, 3, CELL_DIM): object, colour, state
        read = self.attend(parts.sum(-2).flatten(1, 2), cond[1], cond[2]).view(*parts.shape[:3], -1)
        x = torch.cat([parts[..., 0, :] + parts[..., 2, :], read], -1).permute(0, 3, 1, 2)
        x = self.conv2(self.conv1(x, cond[0]), cond[0])
        return self.frame(x.flatten(1))


class GatedCellAttention(CellAttention):
    """Each cell adds up the values of every token it matches, each gated by a sigmoid of its own
    score, instead of a softmax that splits one unit of attention among them: a red ball's read-out
    is "red" plus "ball", twice a red key's, so a conjunction the convolutions never met as a
    target is still the cell that matches most."""

    def forward(self, cells: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.query(cells) @ self.key(tokens).transpose(1, 2) * self.scale  # (N, 49, L)
        return (scores.sigmoid() * mask[:, None].float()) @ self.value(tokens)


class SplitPolicy(InstructionPolicy):
    """Two pathways: *which* object through the cells' attention over partner-free word vectors
    (:class:`PositionTokens`), *what to do* through FiLM from a GRU's last state over the sentence's
    roles (:meth:`Vocabulary.roles`, which never sees a colour or an object word; ``reads="roles"``) or over
    its words (``reads="tokens"``: FiLM may know "red ball" as a whole, the cells still match words)."""

    def __init__(self, spec: GridSpec, reads: str = "roles", **kw):
        super().__init__(spec, **kw)
        hidden = self.direction.embedding_dim
        self.instruction = PositionTokens(spec.vocab_size, hidden)
        self.reads = reads
        self.role = nn.Embedding(spec.vocab_size + 2, hidden, padding_idx=Vocabulary.PAD)
        self.role_gru = nn.GRU(hidden, hidden, batch_first=True)

    def condition(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        tokens, mask = self.instruction(batch)
        states, _ = self.role_gru(self.role(batch[self.reads].long()))
        last = (mask * torch.arange(mask.shape[1], device=mask.device)).amax(1)
        return states[torch.arange(len(states), device=states.device), last], tokens, mask


class SlotPolicy(FactoredPolicy):
    """The family's ``reader: factored`` with the match not factored: a cell's whole embedding
    attends over the words' embeddings and reads out the slot it matched (values: slots, never
    words), and the convolutions see the cell's raw colour beside its object. The attention cannot
    know a pair as a whole; the convolutions can."""

    def __init__(self, spec: GridSpec, **kw):
        super().__init__(spec, **kw)
        del self.attend_colour
        self.conv1 = FiLMConv(2 * CELL_DIM, self.conv1.conv.out_channels, self.direction.embedding_dim)

    def frame_features(self, images: torch.Tensor, cond: tuple[torch.Tensor, ...]) -> torch.Tensor:
        film, keys, mask, slots = cond
        x = self.cell(images.long() + self.offsets).sum(-2)  # (N, 7, 7, CELL_DIM)
        read = self.attend(x.flatten(1, 2), keys, mask, slots).view_as(x)
        x = torch.cat([x, read], -1).permute(0, 3, 1, 2)
        x = self.conv2(self.conv1(x, film), film)
        return self.frame(x.flatten(1))


def build(variant: str, hp: dict, spec: GridSpec) -> InstructionPolicy:
    torch_model = build_policy(hp, spec)  # first for every variant: the same random draws as recorded
    if variant in ("split", "ctxfilm"):
        return SplitPolicy(spec, "roles" if variant == "split" else "tokens", hidden=hp["hidden"],
                           context=hp["context"], dropout=hp["dropout"], channels=hp["channels"])
    if variant == "factored":  # the family's reader: factored
        return build_policy(hp, replace(spec, reader="factored"))
    if variant == "slots":
        return SlotPolicy(replace(spec, reader="factored"), hidden=hp["hidden"], context=hp["context"],
                          dropout=hp["dropout"], channels=hp["channels"])
    if "uncoloured" in variant:
        state = torch_model.state_dict()
        torch_model = UncolouredPolicy(spec, hidden=hp["hidden"], context=hp["context"], dropout=hp["dropout"],
                                       channels=hp["channels"])
        torch_model.load_state_dict(state)  # same parameters, so the same initialisation as base
    if "position" in variant:
        torch_model.instruction = PositionTokens(spec.vocab_size, hp["hidden"])
    if "roles" in variant:
        torch_model.instruction = RoleTokens(spec.vocab_size, hp["hidden"])
    if "gated" in variant:
        torch_model.instruction = PositionTokens(spec.vocab_size, hp["hidden"])
        torch_model.attend = GatedCellAttention(hp["hidden"])
    return torch_model


def verb_of(instruction: str) -> str:
    """An ask's kind for the per-verb breakdown: its first clause's verb, ``+`` for a compound."""
    parts = parse(instruction).parts
    return parts[0].verb + ("+" if len(parts) > 1 else "")


def development_asks(params, seen: set[str], n: int) -> list[dict]:
    """``n`` asks per (level, group) on development env seeds, disjoint from every seed the
    default run collects on or evaluates on (checked); ``seen``: the trained instructions."""
    cfg = params.family("language")
    language = cfg.model_copy(update={"relabel": cfg.relabel.model_copy(update={"asks_per_group": n})})
    dev = params.model_copy(update={"seed": DEV_SEED, "families": {**params.families, "language": language}})
    with contextlib.redirect_stdout(sys.stderr):  # its notes on short groups: stdout carries only JSON lines
        drawn = evaluation_asks(dev, seen, load_paraphrases(Path(cfg.relabel.held_out.paraphrases)))
    asks = [a for a in drawn if a["level"] in LEVELS and a["group"] in GROUPS]
    recorded = json.loads(Path("artifacts/language/relabel/conditions.json").read_text())["asks"]
    forbidden = collect_env_seeds(params) | {a["env_seed"] for a in recorded}
    clash = [a["env_seed"] for a in asks if a["env_seed"] in forbidden]
    if clash:
        raise SystemExit(f"development env seeds {clash[:5]} are also used by the default run")
    return asks


def main(variants: list[str], steps: int, n_asks: int, seed: int) -> None:
    torch.set_num_threads(2)
    params = load_params(Path("params.yaml"))
    fam = params.family("language")
    cfg, mcfg = fam.train, fam.train.models["relabeled-word-factored"]  # its settings (hp) are the token reader's
    table, meta = InstructionTable.load(Path("artifacts/language/relabel/relabeled"))
    vocab = Vocabulary(tuple(meta["vocabulary"]))
    features = instruction_features("word", meta["instructions"], vocab, "tokens")
    features["roles"] = vocab.roles(features["tokens"])  # read by the role and slot variants only
    cpu = torch.device("cpu")
    train = InstructionSteps(table, 0, features, cpu, mirror=cfg.mirror)
    val = InstructionSteps(table, 1, features, cpu, max_rows=cfg.val_rows)
    asks = development_asks(params, set(meta["instructions"]), n_asks)
    spec = GridSpec(act_dim=7, encoder="word", vocab_size=len(vocab.words), reader="tokens")
    for variant in variants:
        seed_everything(seed)
        t0 = time.perf_counter()
        hp = mcfg.hp
        result = fit(partial(build, variant, hp, spec), train, val,
                     Optimisation(lr=hp["lr"], weight_decay=hp["weight_decay"], batch_size=hp["batch_size"],
                                  steps=steps),
                     Loop(cfg.eval_every, 100, seed, cpu, cfg.val_batch))
        model = result.model.eval()
        with torch.no_grad(), mock.patch.object(asking, "instruction_features", with_roles):
            outcomes = rollout_asks(model, vocab, asks, cpu, fam.evaluate.num_envs)
        cells = {}
        for level in LEVELS:
            for group in GROUPS:
                rows = [o for a, o in zip(asks, outcomes, strict=True) if a["level"] == level and a["group"] == group]
                counts = Counter(o["contact"] for o in rows)
                verbs = [verb_of(a["instruction"]) for a in asks if a["level"] == level and a["group"] == group]
                cells[f"{level.removeprefix('BabyAI-')}/{group}"] = {
                    "asks": len(rows), "success": round(float(np.mean([o["success"] for o in rows])), 3),
                    "contact": {c: round(counts[c] / len(rows), 3) for c in CONTACTS},
                    "by_verb": {v: [verbs.count(v), round(float(np.mean(
                        [o["success"] for o, w in zip(rows, verbs, strict=True) if w == v])), 3)]
                        for v in sorted(set(verbs))}}
        print(json.dumps({"variant": variant, "steps": steps, "training_seed": seed, "dev_seed": DEV_SEED,
                          "best_val_loss": round(result.best_val_loss, 4), "best_step": result.best_step,
                          "fit_s": round(result.seconds, 1), "total_s": round(time.perf_counter() - t0, 1),
                          "cells": cells, "machine": platform.processor() or platform.machine(),
                          "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="*",
                        default=["base", "position", "uncoloured", "position+uncoloured", "roles", "split",
                                 "ctxfilm", "gated", "slots", "factored"])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--asks", type=int, default=40, help="asks per level and group")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    args = parser.parse_args()
    main(args.variants, args.steps, args.asks, args.seed)
