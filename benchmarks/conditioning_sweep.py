"""Development sweep: which training settings make a return-conditioned policy obey its condition?

This is how the default profile's settings and the Optuna search space (src/justask/training/tune.py)
were chosen. It rolls policies out on *development* env seeds, a fixed range checked disjoint from
the frozen evaluation seeds in data/return/eval_seeds.json. No number in metrics/return.json comes
from these seeds.

    make run                                   # builds artifacts/return/relabel/*
    .venv/bin/python benchmarks/conditioning_sweep.py [dataset ...]

For each dataset and config it prints one JSON line with:
- the best validation loss;
- the conditioning gap: validation loss with return-to-go shuffled across rows, minus the true
  validation loss (how much the model uses its condition);
- the normalized score when asked for 50 / 100 / 120 (mean over 20 dev seeds, training seed 0); a
  target-free model's score is under "ask 100", the skill-conditioned model's (asked for the top
  skill) too;
- the fit time.
Results from one run are recorded in benchmarks/README.md.
"""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from justask.config import load_params
from justask.lunar.asking import rollout
from justask.metrics import normalized_score
from justask.models import CONDITIONED, candidate, condition_of
from justask.policies import conditioning_gap, policy_data
from justask.steps import StepTable, data_spec
from justask.training.loop import Loop, fit

DEV_SEEDS = list(range(500_000_000, 500_000_020))
ASK = [0.5, 1.0, 1.2]
BASE = {"hidden": 256, "layers": 2, "heads": 2, "context": 10, "dropout": 0.1, "lr": 1e-3,
        "weight_decay": 1e-4, "batch_size": 256, "actions": True}
CONFIGS = [  # (model, steps, overrides of BASE)
    ("bc", 1000, {}),
    ("rvs", 2000, {"batch_size": 512}),
    ("rvs", 2000, {"layers": 4, "dropout": 0.185, "lr": 6.9e-4}),  # what val-loss Optuna picked first
    ("rvs", 4000, {"layers": 3, "dropout": 0.0, "batch_size": 512}),  # default profile
    ("rvs", 4000, {"layers": 3, "dropout": 0.05, "batch_size": 512}),
    ("dt", 1000, {"hidden": 64, "dropout": 0.1, "lr": 6e-4, "batch_size": 64}),  # first default
    ("dt", 2500, {"hidden": 64, "dropout": 0.0, "lr": 1e-3, "batch_size": 64}),  # default profile
]


def check_dev_seeds(root: Path) -> None:
    eval_seeds = set(json.loads((root / "data" / "return" / "eval_seeds.json").read_text())["seeds"])
    if set(DEV_SEEDS) & eval_seeds:
        raise SystemExit("development seeds overlap data/return/eval_seeds.json; pick another range")


def probe(root: Path, dataset: str, kind: str, steps: int, hp: dict, factory=None, behaviours=None,
          sampling: str = "step") -> dict:
    """Fit ``kind`` on ``dataset`` (training seed 0), then measure its conditioning gap and its
    scores asked for ``ASK`` on the development seeds. ``factory(spec, hp)`` replaces justask's
    model (for ablations); the optimisation is always the one the training loop uses;
    ``behaviours`` keeps only the episodes of those behaviours (an oracle filter); ``sampling`` is
    how training batches are drawn (:func:`justask.steps.row_weights`)."""
    params = load_params(root / "params.yaml")
    conditions = json.loads((root / "artifacts/return/relabel/conditions.json").read_text())["datasets"]
    device = torch.device("cpu")
    table, meta = StepTable.load(root / "artifacts/return/relabel" / dataset)
    cond = conditions[dataset]
    only = None if behaviours is None else np.flatnonzero(np.isin(meta["behaviours"], behaviours))
    spec, train, val = policy_data(kind, table, data_spec(table, meta), device, 0.1, 2048, only, sampling)
    build, optimisation = candidate(kind, spec, hp, steps)
    if factory is not None:
        build = partial(factory, spec, hp)
    tcfg = params.family("return").train  # early stopping as the profile sets it
    result = fit(build, train, val, optimisation, Loop(tcfg.eval_every, tcfg.patience, seed=0, device=device))
    gap = conditioning_gap(result.model, val)
    asks = ASK if kind in CONDITIONED else [1.0]
    targets = [cond["top_skill"] if condition_of(kind) == "skill" else cond["target_returns"][f"{f:g}"] for f in asks]
    episodes = rollout(result.model, params.family("return").env, DEV_SEEDS * len(asks),
                       [t for t in targets for _ in DEV_SEEDS], 64, device)
    rets = np.array([e.ret for e in episodes]).reshape(len(asks), len(DEV_SEEDS))
    scores = normalized_score(rets, cond["ref_min_score"], cond["ref_max_score"]).mean(1)
    return {"val_loss": round(result.best_val_loss, 4), "best_step": result.best_step,
            "conditioning_gap": round(gap, 4),
            "score": {f"ask {100 * f:g}": round(float(s), 1) for f, s in zip(asks, scores, strict=True)}}


def main(datasets: list[str]) -> None:
    root = Path(".")
    check_dev_seeds(root)
    conditions = json.loads((root / "artifacts/return/relabel/conditions.json").read_text())["datasets"]
    for dataset in datasets or list(conditions):
        for kind, steps, overrides in CONFIGS:
            t0 = time.perf_counter()
            row = probe(root, dataset, kind, steps, {**BASE, **overrides})
            print(json.dumps({"dataset": dataset, "model": kind, "steps": steps, **overrides, **row,
                              "fit_s": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
