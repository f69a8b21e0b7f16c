"""Diagnosis (issue 16): does the reward family's recorded RvS read its condition?

Asks the recorded round-0 policies (`artifacts/reward/train/policies/rvs/seed<k>`, every training
seed) for learned returns from the lowest to past the highest quantile of their data's learned
returns, on 20 development env seeds (``DEV_EVAL_SEEDS``, disjoint from the evaluation's), counting
down as the evaluation does (a potential's ask is held), and prints the true score per ask
(0 random, 100 expert; mean and median over seeds x episodes). Needs a finished `train@reward`.

    .venv/bin/python benchmarks/reward_ask_range.py > benchmarks/results/reward_ask_range.jsonl
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from rounds_ask import DEV_EVAL_SEEDS

from justask.config import load_params
from justask.families.reward.asks import quantile_target
from justask.families.reward.ranking import load_learned_reward
from justask.lunar.asking import load_for_env, rollout
from justask.metrics import normalized_score
from justask.paths import family_paths
from justask.steps import StepTable

QUANTILES = (0.0, 0.1, 0.5, 0.9, 1.1)


def main() -> None:
    params = load_params(Path("params.yaml"))
    fam, paths, cpu = params.family("reward"), family_paths("reward", Path(".")), torch.device("cpu")
    frozen = set(json.loads(paths.eval_seeds.read_text())["seeds"])
    assert not frozen & set(DEV_EVAL_SEEDS), "development evaluation seeds overlap the frozen ones"
    reward, _ = load_learned_reward(Path("."), cpu)
    learned, _ = StepTable.load(paths.train / "learned", "dvc repro train@reward")
    summary = json.loads(paths.collect_summary.read_text())
    lo, hi = summary["ref_min_score"], summary["ref_max_score"]
    seeds = DEV_EVAL_SEEDS[:20]
    for q in QUANTILES:
        target = quantile_target(q, learned.returns)
        returns = []
        for s in fam.train.seeds:
            model, _ = load_for_env(paths.run_dir("policies", "rvs", s) / "model.pt", fam.env, cpu)
            returns += [r.ret for r in rollout(model, fam.env, seeds, [target] * len(seeds), 20, cpu,
                                               reward.countdown)]
        score = normalized_score(returns, lo, hi)
        print(json.dumps({"quantile": q, "target": round(target, 3), "form": reward.form,
                          "score_mean": round(float(score.mean()), 1),
                          "score_median": round(float(np.median(score)), 1),
                          "episodes": len(score), "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
