"""Development ablation (issue 16): which part of the ranking objective lets the learned reward
rank single episodes?

The reward family's data are collected with the active profile's settings but a development seed
(``--seed``, default 1000; the recorded run uses ``seed: 0``), so neither the noise-injection data
nor the held-out trajectories judged here are the evaluation's. Each variant relabels with its
pair settings and fits the ranking ensemble (the profile's ranking settings, no tuning), then
reports learned vs true return on the development held-out trajectories: Spearman and Pearson
overall and on better-than-demonstrator episodes, the Spearman of behaviour means, the spread of
learned returns of the noise data, and the validation pair accuracy. Variants change one thing at
a time from the first recorded objective, then combine them:

* ``trex``: equal-length snippets only, any two noise levels, no demonstrations, every member on
  the same 6000 pairs (the objective of the first recorded run);
* ``+pairs``: 15000 pairs, each member on its own third; ``+margin``: noise gap >= 0.3;
  ``+demos``: the demonstrations ranked on top; ``+whole``: half the pairs whole episodes;
* ``drex``: all of them (the first D-REX default);
* ``potential``: ``drex`` with the net read as a potential Phi(s) whose change is the reward
  (``train.ranking.form: potential``): an episode's learned return is Phi(last) - Phi(first).

``--override`` changes the reward section for every variant, e.g. more demonstrations:
``--override '{"collect": {"demos": 50}}'``.

    .venv/bin/python benchmarks/ranking_objective.py [--seed 1000] [--override JSON] [variant ...] \\
        > benchmarks/results/ranking_objective.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from justask.config import load_params
from justask.datasets import read_episodes, read_metadata
from justask.device import pick_device
from justask.paths import family_paths
from justask.seeding import seed_everything
from justask.steps import StepTable
from justask.tracking import setup_mlflow

BASE = {"whole_episodes": 0.0, "noise_margin": 0.0, "rank_demos": False, "pairs": 6000, "distinct_pairs": False,
        "form": "state"}
DREX = {"pairs": 15000, "distinct_pairs": True, "noise_margin": 0.3, "rank_demos": True, "whole_episodes": 0.5}
VARIANTS = {
    "trex": {},
    "+pairs": {"pairs": 15000, "distinct_pairs": True},
    "+margin": {"noise_margin": 0.3},
    "+demos": {"rank_demos": True},
    "+whole": {"whole_episodes": 0.5},
    "drex": DREX,
    "potential": {**DREX, "form": "potential"},
}


def dev_params(source: Path, folder: Path, seed: int, edit) -> object:
    """``source``'s params at the development ``seed``, the reward section changed in place by
    ``edit(reward_dict)``, written to ``folder/params.yaml`` and loaded (so they are validated)."""
    cfg = yaml.safe_load(source.read_text())
    cfg["seed"] = seed
    edit(cfg["families"]["reward"])
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_params(path)


def merge(into: dict, change: dict) -> None:
    """``change`` written into ``into`` key by key, nested dicts merged (``None`` replaces)."""
    for k, v in change.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = v


def variant_params(source: Path, folder: Path, seed: int, change: dict, override: dict | None = None):
    settings = {**BASE, **change}

    def edit(reward: dict) -> None:
        merge(reward, override or {})
        reward["relabel"].update({k: settings[k] for k in ("whole_episodes", "noise_margin", "rank_demos", "pairs")})
        reward["train"]["ranking"].update(distinct_pairs=settings["distinct_pairs"], form=settings["form"], tune=False)

    return dev_params(source, folder, seed, edit)


def main() -> None:
    from justask.families.reward.collect import collect
    from justask.families.reward.evaluate import judge_reward
    from justask.families.reward.ranking import learned_table
    from justask.families.reward.relabel import relabel
    from justask.families.reward.train import fit_ranking

    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--override", type=json.loads, default={}, help="changes to the reward section (JSON)")
    ap.add_argument("variants", nargs="*", default=list(VARIANTS))
    args = ap.parse_args()
    if args.seed == load_params(args.params).seed:
        raise SystemExit(f"--seed {args.seed} is the evaluation seed of {args.params}; use a development seed")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        shutil.copytree("data", base / "data")
        t0 = time.perf_counter()
        collect(variant_params(args.params, base, args.seed, {}, args.override), base)
        collect_s = time.perf_counter() - t0
        paths = family_paths("reward", base)
        held = read_episodes(paths.dataset("held_out"))
        behaviours = json.loads(read_metadata(paths.dataset("held_out"))["behaviours"])
        demo_return = json.loads(paths.collect_summary.read_text())["groups"]["demos"]["mean_return"]
        for name in args.variants:
            root = Path(tmp) / name.replace("+", "plus-")
            shutil.copytree(base, root)
            params = variant_params(args.params, root, args.seed, VARIANTS[name], args.override)
            t0 = time.perf_counter()
            relabel(params, root)
            seed_everything(params.seed)
            device = pick_device(params.family("reward").train.device)
            reward, _ = fit_ranking(params, root, device, setup_mlflow(params.tracking, root))
            ranking, _ = judge_reward(reward, held, behaviours, demo_return)
            steps, _ = StepTable.load(family_paths("reward", root).relabeled("steps"))
            returns = learned_table(steps, reward).returns
            spread = {k: round(float(getattr(returns, k)()), 1) for k in ("min", "mean", "std", "max")}
            info = json.loads((family_paths("reward", root).train / "ranking" / "ensemble.json").read_text())
            print(json.dumps({
                "variant": name, "settings": {**BASE, **VARIANTS[name]}, "override": args.override, "seed": args.seed,
                "spearman": ranking["spearman"], "pearson": ranking["pearson"],
                "better_spearman": ranking["better_than_demonstrator"]["spearman"],
                "better_pearson": ranking["better_than_demonstrator"]["pearson"],
                "behaviour_means_spearman": ranking["spearman_behaviour_means"],
                "val_pair_accuracy": round(info["val_pair_accuracy"], 4),
                "noise_data_learned_return": spread,
                "per_behaviour": {k: v["predicted_return_mean"] for k, v in ranking["per_behaviour"].items()},
                "fit_s": round(time.perf_counter() - t0, 1), "collect_s": round(collect_s, 1),
                "whole_episode_sampling": "end-aligned: every whole-episode side holds its last step",
                "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
