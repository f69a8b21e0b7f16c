"""Development ablation: why does no model asked for the expert's return recover the expert on
``rare-expert`` (4% expert episodes among consistent, flawed controllers)?

Candidate causes, each measured on the 20 development seeds of ``conditioning_sweep.py`` (training
seed 0; disjoint from data/return/eval_seeds.json):

- too few expert episodes to learn the expert at all: BC on the expert episodes alone (an oracle
  filter that knows the behaviour labels), for the BC and RvS step budgets;
- the return does not single the expert out: the flawed controllers' luckiest episodes reach the
  expert's return (printed: each behaviour's best episode score and its share of the top 10%);
- the expert's share of the training *steps* (samples are drawn per step), so that a fixed step
  budget trains the rare condition little: printed, and the skill and RvS models at 4000, 8000
  (the default profile) and 12000 steps.

    .venv/bin/python benchmarks/rare_expert.py [variant ...] > benchmarks/results/rare_expert.jsonl
"""

from __future__ import annotations

import collections
import json
import sys
import time
from pathlib import Path

import numpy as np
from conditioning_sweep import check_dev_seeds, probe

from justask.metrics import normalized_score
from justask.steps import StepTable

BC = {"hidden": 256, "layers": 2, "heads": 2, "context": 1, "dropout": 0.0, "lr": 1e-3, "weight_decay": 1e-4,
      "batch_size": 256, "actions": True}
MLP = {**BC, "layers": 3, "batch_size": 512}  # the default profile's RvS and skill models


def main() -> None:
    root = Path(".")
    check_dev_seeds(root)
    table, meta = StepTable.load(root / "artifacts/return/relabel/rare-expert")
    behaviours = np.array(meta["behaviours"])
    scores = normalized_score(table.returns, meta["ref_min_score"], meta["ref_max_score"])
    top = np.argsort(-table.returns, kind="stable")[: int(round(0.1 * len(scores)))]
    steps = np.diff(table.starts)
    print(json.dumps({"data": {
        b: {"episodes": int((behaviours == b).sum()),
            "step_share": round(float(steps[behaviours == b].sum() / steps.sum()), 4),
            "score_mean": round(float(scores[behaviours == b].mean()), 1),
            "score_best": round(float(scores[behaviours == b].max()), 1),
            "top10_share": round(collections.Counter(behaviours[top])[b] / len(top), 3)}
        for b in sorted(set(behaviours))}}), flush=True)
    only = sys.argv[1:]
    for name, kind, n_steps, hp in [("bc on expert episodes only (oracle)", "bc", 1000, BC),
                                    ("bc on expert episodes only (oracle), 4000 steps", "bc", 4000, BC),
                                    *((f"{kind}, {n} steps{' (default profile)' if n == 8000 else ''}", kind, n, MLP)
                                      for kind in ("skill", "rvs") for n in (4000, 8000, 12000))]:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        row = probe(root, "rare-expert", kind, n_steps, hp, behaviours=["expert"] if kind == "bc" else None)
        print(json.dumps({"variant": name, "steps": n_steps, **row, "fit_s": round(time.perf_counter() - t0, 1)}),
              flush=True)


if __name__ == "__main__":
    main()
