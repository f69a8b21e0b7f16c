"""evaluate (reward): does the learned reward extrapolate, and does asking for more of it help?

1. **Learned vs true return** on the held-out trajectories (policies the ranking never saw, from
   worse than to much better than the demonstrator): Spearman and Pearson correlation over all of
   them and over those better than the demonstrator alone; per-behaviour means; the scatter plot
   data ``metrics/reward.csv``.
2. **Asking for more.** Each return-conditioned policy (every training seed) is asked, on env
   seeds disjoint from collection, for learned returns at ``evaluate.target_fractions`` of the
   data's learned-return range (1 = the best episode in the data, above 1 = more than anything
   in it). The return-to-go counts down with the *learned* reward; the score is the env's true
   return, normalised (0 = random, 100 = expert) with IQM and bootstrap CIs. Baselines on the same
   seeds: the demonstrator itself and its BC clone.

Writes ``metrics/reward.json``, per-episode results and a GIF, and logs them to MLflow.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from justask.config import Params
from justask.datasets import read_episodes, read_metadata
from justask.device import pick_device
from justask.errors import StageFailed
from justask.io import atomic_write, rows_csv, write_json, write_text
from justask.lunar.asking import EpisodeResult, RolloutJob, load_for_env, record_gif, rollout_checkpoints
from justask.lunar.jobs import chunk_jobs, rollout_behaviours
from justask.metrics import correlation, round_metric, summarize, target_return
from justask.paths import family_paths
from justask.render import figure_to
from justask.seeding import held_out_seeds, seed_everything
from justask.steps import StepTable
from justask.tracking import setup_mlflow

from .ranking import load_learned_reward
from .streams import collect_env_seeds


def learned_reward_fn(root: Path, device: str):
    """The learned reward of the run at ``root`` (a picklable builder for rollout jobs)."""
    return load_learned_reward(root, device)[0]


def reward_correlation(true: np.ndarray, predicted: np.ndarray, demonstrator_return: float) -> dict:
    """Spearman and Pearson of predicted vs true returns, overall and on episodes whose true
    return beats the demonstrator's mean."""
    better = true > demonstrator_return
    return {
        "episodes": int(len(true)), "spearman": correlation("spearman", true, predicted),
        "pearson": correlation("pearson", true, predicted),
        "better_than_demonstrator": {
            "episodes": int(better.sum()), "spearman": correlation("spearman", true[better], predicted[better]),
            "pearson": correlation("pearson", true[better], predicted[better])},
    }


def evaluate(params: Params, root: Path = Path(".")) -> dict:
    fam = params.family("reward")
    ecfg = fam.evaluate
    paths = family_paths("reward", root)
    device = pick_device(fam.train.device)
    seed_everything(params.seed)
    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    try:
        summary = json.loads(paths.collect_summary.read_text())
        reward, ensemble = load_learned_reward(root, device)
        learned, learned_meta = StepTable.load(paths.train / "learned", "dvc repro train@reward")
        held = read_episodes(paths.dataset("held_out"))
        held_behaviours = json.loads(read_metadata(paths.dataset("held_out"))["behaviours"])
    except FileNotFoundError as e:
        raise StageFailed(f"{e}; run `dvc repro train@reward`") from None
    ref_min, ref_max = summary["ref_min_score"], summary["ref_max_score"]
    demo_return = summary["groups"]["demos"]["mean_return"]

    # 1. Learned vs true return on held-out trajectories.
    true = np.array([float(np.sum(e["rewards"])) for e in held])
    predicted = np.array([float(reward(e["observations"][:-1]).sum()) for e in held])
    scatter = pd.DataFrame({"behaviour": held_behaviours, "true_return": true, "predicted_return": predicted})
    ranking = reward_correlation(true, predicted, demo_return)
    ranking["per_behaviour"] = {
        name: {"episodes": len(g), "true_return_mean": round_metric(g.true_return.mean()),
               "predicted_return_mean": round_metric(g.predicted_return.mean())}
        for name, g in scatter.groupby("behaviour", sort=False)}
    means = scatter.groupby("behaviour", sort=False)[["true_return", "predicted_return"]].mean()
    ranking["spearman_behaviour_means"] = correlation("spearman", means.true_return, means.predicted_return)
    ranking["val_pair_accuracy"] = round_metric(ensemble["val_pair_accuracy"])

    # 2. Policies asked for learned returns, and the baselines, on held-out env seeds.
    seeds = held_out_seeds(paths.eval_seeds, ecfg.episodes, collect_env_seeds(params))
    lo, hi = learned_meta["learned_return_min"], learned_meta["learned_return_max"]
    asks = [(f, float(target_return(f, lo, hi))) for f in ecfg.target_fractions]
    rows: list[dict] = []

    def add(model: str, seed: int, results, fraction: float | None, target: float | None) -> None:
        rows.extend({"dataset": "noise", "model": model, "seed": seed,
                     "target_fraction": np.nan if fraction is None else fraction,
                     "target_return": np.nan if target is None else target, "episode": i, "env_seed": r.env_seed,
                     "ret": r.ret, "length": r.length} for i, r in enumerate(results))

    # One job per policy and seed, plus the clone; each loads its checkpoint (and the learned
    # reward) from file wherever it runs, so results match the in-process run.
    keys, jobs = [], []
    for kind in fam.train.models:
        for tseed in fam.train.seeds:
            ckpt = paths.run_dir("policies", kind, tseed) / "model.pt"
            try:
                load_for_env(ckpt, fam.env, device)
            except FileNotFoundError:
                raise StageFailed(f"{ckpt}: missing; run `dvc repro train@reward`") from None
            keys.append((kind, tseed))
            jobs.append(RolloutJob(ckpt.absolute(), fam.env, tuple(s for _ in asks for s in seeds),
                                   tuple(t for _, t in asks for _ in seeds), ecfg.num_envs, str(device),
                                   reward=partial(learned_reward_fn, root.absolute())))
    jobs.append(RolloutJob((paths.collect / "clone" / "model.pt").absolute(), fam.env, tuple(seeds),
                           (0.0,) * len(seeds), ecfg.num_envs, str(device)))
    *policy_results, clone_results = rollout_checkpoints(jobs, params.scale.workers, params.scale)
    for (kind, tseed), results in zip(keys, policy_results, strict=True):
        for j, (f, t) in enumerate(asks):
            add(kind, tseed, results[j * len(seeds):(j + 1) * len(seeds)], f, t)
    print(f"evaluate (reward): policies done ({time.perf_counter() - t0:.0f}s)")
    add("bc", 0, clone_results, None, None)
    demo = rollout_behaviours({"demonstrator": chunk_jobs(fam.collect.demonstrator, 0.0, seeds, fam.env,
                                                    fam.collect.workers, fam.collect.envs_per_worker)},
                        fam.collect.workers, "evaluate (reward): the demonstrator", params.scale)["demonstrator"]
    add("demonstrator", 0, [EpisodeResult(0.0, e.seed, e.ret, len(e)) for e in demo], None, None)
    episodes = pd.DataFrame(rows)
    policies = summarize(episodes, ref_min, ref_max, learned.returns, ecfg.bootstrap_reps, params.seed)
    demo_score = policies["models"]["demonstrator"]["any"]["score_iqm"]
    for kind in fam.train.models:
        for cell in policies["models"][kind].values():
            cell["vs_demonstrator"] = round_metric(cell["score_iqm"] / demo_score) if demo_score else None

    metrics = {
        "ref_min_score": ref_min, "ref_max_score": ref_max, "demonstrator": fam.collect.demonstrator,
        "demonstrator_return_mean": round_metric(demo_return), "seeds": list(fam.train.seeds),
        "episodes_per_target": ecfg.episodes, "target_fractions": ecfg.target_fractions,
        "learned_return_range": [round_metric(lo), round_metric(hi)],
        "ranking": ranking, "policies": policies,
    }
    out = paths.evaluate
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "episodes.csv", lambda p: episodes.to_csv(p, index=False, float_format="%.6g"))
    write_text(paths.plot, rows_csv(scatter.round(4).to_dict("records")))
    return_scatter(scatter, out / "scatter.png", demo_return)
    write_json(paths.metrics, metrics)
    gif = None
    if ecfg.gif:
        kind = next(iter(fam.train.models))
        model, _ = load_for_env(paths.run_dir("policies", kind, fam.train.seeds[0]) / "model.pt", fam.env, device)
        f, target = asks[-1]
        gif = record_gif(model, fam.env, target, seeds[0], out / f"{kind}-t{f:g}.gif", device,
                         max_steps=ecfg.gif_max_steps, reward_fn=reward)
    _log_mlflow(params, root, metrics, paths, gif)
    print(f"evaluate (reward): learned vs true return on held-out trajectories: Spearman {ranking['spearman']}, "
          f"better-than-demonstrator Spearman {ranking['better_than_demonstrator']['spearman']} "
          f"({time.perf_counter() - t0:.0f}s)")
    return metrics


def _log_mlflow(params: Params, root: Path, metrics: dict, paths, gif: Path | None) -> None:
    mlflow = setup_mlflow(params.tracking, root)
    with mlflow.start_run(run_name="evaluate-reward"):
        mlflow.set_tags({"family": "reward", "stage": "evaluate", "profile": params.profile})
        r = metrics["ranking"]
        flat = {"ranking.spearman": r["spearman"], "ranking.pearson": r["pearson"],
                "ranking.better.spearman": r["better_than_demonstrator"]["spearman"],
                "ranking.val_pair_accuracy": r["val_pair_accuracy"]}
        for model, cells in metrics["policies"]["models"].items():
            for key, cell in cells.items():
                flat[f"{model}.{key}.score_iqm"] = cell["score_iqm"]
        mlflow.log_metrics({k: v for k, v in flat.items() if v is not None})
        mlflow.log_artifact(str(paths.metrics))
        mlflow.log_artifact(str(paths.plot))
        mlflow.log_artifact(str(paths.evaluate / "scatter.png"))
        if gif is not None:
            mlflow.log_artifact(str(gif))


def return_scatter(points, path: Path, demonstrator_return: float) -> Path:
    """Learned vs true return per held-out trajectory, one colour per behaviour; the dashed line
    marks the demonstrator's mean true return. ``points``: behaviour, true_return, predicted_return."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, g in points.groupby("behaviour", sort=False):
        ax.scatter(g["true_return"], g["predicted_return"], s=12, label=name)
    ax.axvline(demonstrator_return, ls="--", color="grey", label="demonstrator (mean)")
    ax.set_xlabel("true return")
    ax.set_ylabel("learned return")
    ax.legend(fontsize=7)
    return figure_to(path, fig)
