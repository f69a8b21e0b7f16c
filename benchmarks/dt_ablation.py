"""Development ablation: why did the Decision Transformer not read the return it is asked for?

Issue 14's hypotheses, each switched on its own, from the DT as recorded on 2026-12-02 (PyTorch's
default initialisation, no key-padding mask, past action tokens, 2500 steps) to the fixed model:

- ``legacy``: the recorded model (timestep embedding N(0, 1) added to a return embedding
  U(-1, 1) x return/412, so the return is a few times weaker than the timestep in the token);
- ``+mask``: padded steps masked out of attention;
- ``+init``: GPT-2 / CORL initialisation (every embedding N(0, 0.02));
- ``-actions``: no past action tokens (the "copycat" shortcut: past actions of a deterministic
  controller name the controller);
- then the fixed model's context, batch, steps and dropout, and the default profile's other models
  for comparison.

Each variant is trained on seed 0 and rolled out on the 20 *development* env seeds of
``conditioning_sweep.py`` (checked disjoint from data/return/eval_seeds.json), asked for 50, 100
and 120. Prints one JSON line per (dataset, variant); the run is recorded in benchmarks/README.md.

    make run            # or: justask stage collect return && justask stage relabel return
    .venv/bin/python benchmarks/dt_ablation.py [dataset ...] > benchmarks/results/dt_ablation.jsonl
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from conditioning_sweep import check_dev_seeds, probe

from justask.models.decision_transformer import DecisionTransformer

BASE = {"hidden": 64, "layers": 2, "heads": 2, "context": 10, "dropout": 0.0, "lr": 1e-3,
        "weight_decay": 1e-4, "batch_size": 64, "actions": True}


class Legacy(DecisionTransformer):
    """The DT as recorded before the fix: PyTorch's default initialisation and/or no padding mask."""

    def __init__(self, *args, init: bool, mask: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_mask = mask
        if not init:
            for m in self.modules():
                if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
                    m.reset_parameters()

    def attention_mask(self, mask: torch.Tensor) -> torch.Tensor:
        if self.use_mask:
            return super().attention_mask(mask)
        n = mask.shape[1] * self.tokens_per_step
        return torch.ones(n, n, dtype=torch.bool, device=mask.device).tril()


def legacy(init: bool, mask: bool):
    return lambda spec, hp: Legacy(spec, hidden=hp["hidden"], layers=hp["layers"], heads=hp["heads"],
                                   context=hp["context"], dropout=hp["dropout"], actions=hp["actions"],
                                   init=init, mask=mask)


VARIANTS = [  # (name, steps, overrides of BASE, model factory or None for justask's DT)
    ("legacy", 2500, {}, legacy(init=False, mask=False)),
    ("+mask", 2500, {}, legacy(init=False, mask=True)),
    ("+init", 2500, {}, legacy(init=True, mask=False)),
    ("+mask +init", 2500, {}, None),
    ("legacy -actions", 2500, {"actions": False}, legacy(init=False, mask=False)),
    ("+mask +init -actions", 2500, {"actions": False}, None),
    ("+mask +init K=3", 2500, {"context": 3}, None),
    ("+mask +init -actions K=3", 2500, {"context": 3, "actions": False}, None),
    ("+mask +init -actions K=1", 2500, {"context": 1, "actions": False}, None),
    ("+mask +init -actions K=3 batch 256", 2500, {"context": 3, "actions": False, "batch_size": 256}, None),
    # Settings of the fixed model (second round, on every dataset).
    ("fixed K=3 5000 steps (default profile)", 5000, {"context": 3, "actions": False}, None),
    ("fixed K=3 batch 128 4000 steps", 4000, {"context": 3, "actions": False, "batch_size": 128}, None),
    ("fixed K=5 batch 128 4000 steps", 4000, {"context": 5, "actions": False, "batch_size": 128}, None),
    ("fixed K=3 batch 128 4000 steps dropout 0.1", 4000,
     {"context": 3, "actions": False, "batch_size": 128, "dropout": 0.1}, None),
]


MLP = {"hidden": 256, "layers": 3, "heads": 2, "context": 1, "dropout": 0.0, "lr": 1e-3, "weight_decay": 1e-4,
       "batch_size": 512, "actions": True}
REFERENCE = [  # (name, kind, steps, settings): the default profile's other models, for comparison
    ("rvs (default profile)", "rvs", 8000, MLP),
    ("skill (default profile)", "skill", 8000, MLP),
    ("pct_bc (default profile)", "pct_bc", 1000, {**MLP, "layers": 2, "batch_size": 256}),
]


def main(args: list[str]) -> None:
    root = Path(".")
    check_dev_seeds(root)
    only = next((a.split("=", 1)[1].split(",") for a in args if a.startswith("--variants=")), None)
    datasets = [a for a in args if not a.startswith("--")]
    for dataset in datasets or ["mixed", "no-expert"]:
        for name, steps, overrides, factory in VARIANTS:
            if only is not None and name not in only:
                continue
            t0 = time.perf_counter()
            row = probe(root, dataset, "dt", steps, {**BASE, **overrides}, factory)
            print(json.dumps({"dataset": dataset, "variant": name, "steps": steps, **overrides, **row,
                              "fit_s": round(time.perf_counter() - t0, 1)}), flush=True)
        for name, kind, steps, hp in REFERENCE:
            if only is not None and name not in only:
                continue
            t0 = time.perf_counter()
            row = probe(root, dataset, kind, steps, hp)
            print(json.dumps({"dataset": dataset, "variant": name, "steps": steps, **row,
                              "fit_s": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
