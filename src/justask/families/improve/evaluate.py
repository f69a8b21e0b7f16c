"""evaluate (improve): do the frozen models get better across episodes on goals they never saw?

Every training seed's ``ad`` and ``ed`` model runs on every held-out goal for ``episodes``
consecutive episodes, ``seeds_per_goal`` times (action sampling seeded from
``data/improve/eval_seeds.json``), keeping its own growing context; the weights are hashed before
and after, and must not change. The source learner runs from scratch on the same goals for
``learner_episodes`` episodes, on as many seeds. Reported (IQM over training seeds x (goal,
sampling seed), stratified-bootstrap 95% CIs):

* the return at each episode index, per model (``metrics/improve.csv``, ``curves.png``);
* the in-context improvement, mean of the last ``first_last`` episodes minus the first ones;
* the final return against the learner's final return, and the episodes each needs to reach 0.9x
  the learner's final return;
* a GIF of AD's first and last episode on a held-out goal.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from justask.config import Params
from justask.errors import StageFailed
from justask.io import rows_csv, write_json, write_text
from justask.metrics import iqm_with_ci
from justask.paths import family_paths
from justask.render import figure_to
from justask.seeding import held_out_seeds, seed_everything
from justask.tracking import setup_mlflow

from .goals import best_return, training_goals
from .histories import history_tasks
from .incontext import run_in_context, write_first_and_last
from .learner import learn
from .model import load_model, model_provenance, weights_hash

TARGET = 0.9  # of the learner's final return


def summarize(returns: np.ndarray, k: int, target: float | None, reps: int, seed: int) -> dict:
    """The curve, improvement and final return of ``returns`` (runs, units, episodes)."""
    episodes = returns.shape[2]
    curve = [iqm_with_ci(returns[:, :, e], reps, seed) for e in range(episodes)]
    first, last = returns[:, :, :k].mean(-1), returns[:, :, -k:].mean(-1)
    out = {"curve": [[round(v, 4) for v in c] for c in curve],
           "first": [round(v, 4) for v in iqm_with_ci(first, reps, seed)],
           "final": [round(v, 4) for v in iqm_with_ci(last, reps, seed)],
           "improvement": [round(v, 4) for v in iqm_with_ci(last - first, reps, seed)],
           "improvement_mean": round(float((last - first).mean()), 4)}
    if target is not None:
        reached = [e + 1 for e, c in enumerate(curve) if c[0] >= target]
        out["episodes_to_target"] = reached[0] if reached else None
    return out


def evaluate(params: Params, root: Path = Path(".")) -> dict:
    fam = params.family("improve")
    env_cfg, cfg = fam.env, fam.evaluate
    paths = family_paths("improve", root)
    seed_everything(params.seed)
    torch.set_num_threads(1)  # small forward passes; and sampled actions must not depend on the core count
    t0 = time.perf_counter()
    size, horizon, k = env_cfg.size, env_cfg.max_episode_steps, cfg.first_last
    goals = np.asarray(env_cfg.held_out_goals, np.int64)
    train_seeds = list(fam.train.seeds)
    collected = {s for _, s in history_tasks(params)}
    seeds = np.asarray(held_out_seeds(paths.eval_seeds, len(train_seeds) * cfg.seeds_per_goal, collected))
    seeds = seeds.reshape(len(train_seeds), cfg.seeds_per_goal)  # row r: the sampling seeds of training seed r

    # The source learner from scratch on every held-out goal, grouped like the models' runs.
    learner = np.stack([np.stack([learn(tuple(g), size, horizon, cfg.learner_episodes, fam.collect.learner,
                                        int(s)).returns for s in row for g in goals]) for row in seeds])
    learner_final = float(np.mean(learner[:, :, -k:]))
    target = TARGET * learner_final
    results = {"learner": summarize(learner, k, target, cfg.bootstrap_reps, params.seed)}

    gif_cells = None
    for name in fam.train.models:
        expected = model_provenance(params, name, root)
        per_seed = []
        for r, train_seed in enumerate(train_seeds):
            model, _ = load_model(paths.train / name / f"seed{train_seed}" / "model.pt", expected)
            before = weights_hash(model)
            rows = []
            for s in seeds[r]:
                keep = cfg.gif and name == "ad" and r == 0 and s == seeds[0, 0]
                ret, cells = run_in_context(model, goals, cfg.episodes, size, horizon, int(s), keep_cells=keep)
                rows.append(ret)
                gif_cells = cells if cells is not None else gif_cells
            if weights_hash(model) != before:
                raise StageFailed(f"evaluate (improve): the weights of {name} seed {train_seed} changed during its "
                                  "in-context rollouts; the rollouts must not update the model")
            per_seed.append(np.concatenate(rows))  # (goals x sampling seeds, episodes)
        results[name] = summarize(np.stack(per_seed), k, target, cfg.bootstrap_reps, params.seed)

    optimal = float(np.mean([best_return(tuple(g), size, horizon) for g in goals]))
    metrics = {
        "held_out_goals": len(goals), "training_goals": len(training_goals(env_cfg)), "seeds": train_seeds,
        "seeds_per_goal": cfg.seeds_per_goal, "episodes": cfg.episodes, "learner_episodes": cfg.learner_episodes,
        "first_last": k, "optimal_return": round(optimal, 4), "learner_final_return": round(learner_final, 4),
        "target_return": round(target, 4), "weights_unchanged": True, "models": results}
    ad = results["ad"]
    metrics["claims"] = {
        "ad_improves": ad["improvement"][1] > 0,
        "ad_final_vs_learner": round(ad["final"][0] / learner_final, 4) if learner_final > 0 else None,
        "ad_faster_than_learner": (ad.get("episodes_to_target") is not None
                                   and (results["learner"].get("episodes_to_target") is None
                                        or ad["episodes_to_target"] < results["learner"]["episodes_to_target"]))}
    rows = [{"model": m, "episode": e + 1, "return": c[0], "lo": c[1], "hi": c[2]}
            for m, res in results.items() for e, c in enumerate(res["curve"])]
    write_text(paths.plot, rows_csv(rows))
    write_json(paths.metrics, metrics)
    paths.evaluate.mkdir(parents=True, exist_ok=True)
    _plot(results, learner_final, optimal, paths.evaluate / "curves.png")
    if cfg.gif and gif_cells is not None:
        write_first_and_last(gif_cells[0], tuple(goals[0]), size, paths.evaluate / "ad-first-vs-last.gif")
    _log_mlflow(params, root, metrics, paths)
    print(f"evaluate (improve): AD's return {ad['first'][0]:.1f} -> {ad['final'][0]:.1f} in context (improvement "
          f"{ad['improvement'][0]:+.1f} [{ad['improvement'][1]:+.1f}, {ad['improvement'][2]:+.1f}]); "
          "expert distillation "
          + (f"{results['ed']['improvement'][0]:+.1f}; " if "ed" in results else "not trained; ")
          + f"the learner {results['learner']['first'][0]:.1f} -> {learner_final:.1f} in {cfg.learner_episodes} "
          f"episodes ({time.perf_counter() - t0:.0f}s)")
    return metrics


def _plot(results: dict, learner_final: float, optimal: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = {"ad": "Algorithm Distillation (frozen)", "ed": "expert distillation (frozen)",
              "learner": "source learner (learning from scratch)"}
    for name, res in results.items():
        c = np.asarray(res["curve"])
        x = np.arange(1, len(c) + 1)
        ax.plot(x, c[:, 0], label=labels[name])
        ax.fill_between(x, c[:, 1], c[:, 2], alpha=0.2)
    ax.axhline(TARGET * learner_final, ls=":", c="grey", label=f"{TARGET:g}x the learner's final return")
    ax.axhline(optimal, ls="--", c="black", lw=0.8, label="optimal")
    ax.set_xlabel("episode on a held-out goal")
    ax.set_ylabel("return (IQM, 95% CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    figure_to(path, fig)
    plt.close(fig)


def _log_mlflow(params: Params, root: Path, metrics: dict, paths) -> None:
    mlflow = setup_mlflow(params.tracking, root)
    with mlflow.start_run(run_name="evaluate-improve"):
        mlflow.set_tags({"family": "improve", "stage": "evaluate", "profile": params.profile})
        flat = {"learner_final_return": metrics["learner_final_return"]}
        for name, res in metrics["models"].items():
            flat |= {f"{name}_first": res["first"][0], f"{name}_final": res["final"][0],
                     f"{name}_improvement": res["improvement"][0]}
        mlflow.log_metrics(flat)
        mlflow.log_artifact(str(paths.metrics))
        mlflow.log_artifact(str(paths.evaluate / "curves.png"))
