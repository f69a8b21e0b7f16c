"""Development sweep (issue 16): what should the improvement rounds ask for?

Runs the whole reward family (collect, relabel, train with its rounds, evaluate) with the active
profile's settings but the development seed (``--seed``, default 1000) and development evaluation
env seeds (``DEV_EVAL_SEEDS``, disjoint from ``data/reward/eval_seeds.json``), once per rounds ask
(a quantile of the data's learned returns, :func:`justask.families.reward.asks.quantile_target`),
and prints each round's true score at that ask (IQM [95% CI]) and what the round added.

    .venv/bin/python benchmarks/rounds_ask.py [--seed 1000] [ask ...] > benchmarks/results/rounds_ask.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from ranking_objective import dev_params, merge

from justask.config import load_params

DEV_EVAL_SEEDS = list(range(900_000_000, 900_000_100))


def ask_params(source: Path, root: Path, seed: int, ask: float, override: dict | None = None):
    def edit(reward: dict) -> None:
        reward["train"]["rounds"]["ask"] = ask
        reward["evaluate"].update(target_quantiles=[ask], gif=False)
        merge(reward, override or {})

    return dev_params(source, root, seed, edit)



def main() -> None:
    from justask.families.reward.collect import collect
    from justask.families.reward.evaluate import evaluate
    from justask.families.reward.relabel import relabel
    from justask.families.reward.train import train

    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--override", type=json.loads, default={},
                    help='changes to the reward family\'s params, e.g. \'{"train": {"ppo": null}}\'')
    ap.add_argument("asks", nargs="*", type=float, default=[1.1, 0.99, 0.9])
    args = ap.parse_args()
    if args.seed == load_params(args.params).seed:
        raise SystemExit(f"--seed {args.seed} is the evaluation seed of {args.params}; use a development seed")
    frozen = set(json.loads(Path("data/reward/eval_seeds.json").read_text())["seeds"])
    assert not frozen & set(DEV_EVAL_SEEDS), "development evaluation seeds overlap the frozen ones"
    with tempfile.TemporaryDirectory() as tmp:
        for ask in args.asks:
            root = Path(tmp) / f"ask{ask:g}"
            shutil.copytree("data", root / "data")
            (root / "data" / "reward" / "eval_seeds.json").write_text(json.dumps({"seeds": DEV_EVAL_SEEDS}))
            params = ask_params(args.params, root, args.seed, ask, args.override)
            t0 = time.perf_counter()
            torch.set_grad_enabled(True)  # evaluate turns gradients off for its process
            for stage in (collect, relabel, train):
                stage(params, root)
            metrics = evaluate(params, root)
            key, kind = f"t{ask:g}", next(iter(params.family("reward").train.models))
            print(json.dumps({
                "ask": ask, "seed": args.seed, "eval_seeds": "DEV_EVAL_SEEDS", "override": args.override,
                "demonstrator_score": metrics["policies"]["models"]["demonstrator"]["any"]["score_iqm"],
                "ranking": {k: metrics["ranking"][k] for k in ("spearman", "pearson", "form")}
                | {"better_spearman": metrics["ranking"]["better_than_demonstrator"]["spearman"]},
                "references": {m: metrics["policies"]["models"][m]["any"]["score_iqm"]
                               for m in ("bc", "oracle-filter", "ppo") if m in metrics["policies"]["models"]},
                "rounds": [{"round": r["round"], "score_iqm": r[kind][key]["score_iqm"],
                            "ci": [r[kind][key]["score_iqm_lo"], r[kind][key]["score_iqm_hi"]],
                            "vs_demonstrator": r[kind][key]["vs_demonstrator"],
                            **{k: r[k] for k in ("asked_learned_return", "added_learned_return_mean",
                                                 "added_true_return_mean") if k in r}}
                           for r in metrics["rounds"]],
                "wall_s": round(time.perf_counter() - t0, 1), "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
