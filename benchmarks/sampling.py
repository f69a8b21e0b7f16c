"""Development ablation: does drawing training batches per episode or per return bin, rather than
per step, make return-conditioned models obey their condition where the good data are rare?

On ``rare-expert`` the hoverer's 1000-step episodes are 80% of the steps and the expert's 2.9%
(``rare_expert.py``); on ``mixed`` the DT asked for low returns overshoots them. Each variant fits
one model (training seed 0) with the default profile's settings and one sampling rule of
:func:`justask.steps.row_weights`, then is asked on the development seeds of
``conditioning_sweep.py`` (disjoint from data/return/eval_seeds.json).

    .venv/bin/python benchmarks/sampling.py [dataset ...] > benchmarks/results/sampling.jsonl
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from conditioning_sweep import check_dev_seeds, probe

from justask.config import load_params


def main(datasets: list[str]) -> None:
    root = Path(".")
    check_dev_seeds(root)
    models = load_params(root / "params.yaml").family("return").train.models
    only = [a for a in datasets if a.startswith("--")]
    for dataset in [a for a in datasets if not a.startswith("--")] or ["rare-expert", "mixed"]:
        for kind in ("rvs", "dt", "skill"):
            mcfg = models[kind]
            for sampling in ("step", "episode", "return"):
                if kind == "skill" and sampling == "return":
                    continue  # the skill model does not read a return
                if only and f"--{kind}-{sampling}" not in only:
                    continue
                t0 = time.perf_counter()
                row = probe(root, dataset, kind, mcfg.steps, {**mcfg.hp, "sampling": sampling}, sampling=sampling)
                print(json.dumps({"dataset": dataset, "model": kind, "sampling": sampling, "steps": mcfg.steps, **row,
                                  "fit_s": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
