"""Development check: how narrow can the instruction policy's convolutions be at equal quality?

Fits ``relabeled-minilm`` (the default profile's settings, training seed 0) on the relabeled
BabyAI table (``dvc repro relabel@language`` first) with ``channels`` 64 (the old width), 32 and
16, for the profile's steps or for ``channels``x``steps`` given (e.g. 32x4000: equal wall time),
and prints each fit's best validation loss, its step and its samples/s. Validation loss only: no
evaluation ask is involved.

    .venv/bin/python benchmarks/language_width.py [channels[xsteps] ...] > benchmarks/results/language_width.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from justask.config import load_params
from justask.families.language.grammar import Vocabulary
from justask.families.language.policy import GridSpec, candidate, instruction_features
from justask.families.language.table import InstructionSteps, InstructionTable
from justask.training.loop import Loop, fit


def main(widths: list[tuple[int, int | None]]) -> None:
    fam = load_params(Path("params.yaml")).family("language")
    mcfg, cfg = fam.train.models["relabeled-minilm"], fam.train
    table, meta = InstructionTable.load(Path("artifacts/language/relabel/relabeled"))
    vocab = Vocabulary(tuple(meta["vocabulary"]))
    features = instruction_features("minilm", meta["instructions"], vocab)
    cpu = torch.device("cpu")
    train = InstructionSteps(table, 0, features, cpu, mirror=cfg.mirror)
    val = InstructionSteps(table, 1, features, cpu, max_rows=cfg.val_rows)
    spec = GridSpec(act_dim=7, encoder="minilm", vocab_size=len(vocab.words))
    for channels, steps in widths:
        hp = {**mcfg.hp, "channels": channels}
        build, optimisation = candidate(spec, hp, steps or mcfg.steps)
        result = fit(build, train, val, optimisation, Loop(cfg.eval_every, 100, 0, cpu, cfg.val_batch))
        print(json.dumps({"channels": channels, "steps": optimisation.steps,
                          "best_val_loss": round(result.best_val_loss, 4), "best_step": result.best_step,
                          "samples_per_s": round(result.samples_per_second), "seconds": round(result.seconds, 1),
                          "train_samples": len(train)}), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:] or ["64", "32", "16"]
    main([(int(a.split("x")[0]), int(a.split("x")[1]) if "x" in a else None) for a in args])
