"""evaluate (improve): do the frozen models get better across episodes on goals they never saw?

Every training seed's ``ad``, ``hindsight`` and ``ed`` model runs on every held-out goal for ``episodes``
consecutive episodes, ``seeds_per_goal`` times (action sampling seeded from
``data/improve/eval_seeds.json``), keeping its own growing context; the weights are hashed before
and after, and must not change. The source learner runs from scratch on the same goals for
``learner_episodes`` episodes, on as many seeds. Reported (IQM over training seeds x (goal,
sampling seed), stratified-bootstrap 95% CIs):

* the return at each episode index, per model (``metrics/improve.csv``, ``curves.png``);
* the in-context improvement, mean of the last ``first_last`` episodes minus the first ones;
* the final return against the learner's final return, and the episodes each needs to reach 0.9x
  the learner's final return;
* a GIF of each in-context model's first and last episode on a held-out goal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from justask.config import Params
from justask.errors import StageFailed
from justask.executors import run_all
from justask.io import rows_csv, write_json, write_text
from justask.metrics import iqm_with_ci
from justask.paths import family_paths
from justask.render import figure_to
from justask.seeding import held_out_seeds, seed_everything
from justask.tracking import setup_mlflow

from .goals import best_return, training_goals
from .histories import history_tasks
from .incontext import run_in_context, write_first_and_last
from .learner import learn_all
from .model import load_model, model_provenance, weights_hash

TARGET = 0.9  # of the learner's final return
IN_CONTEXT = ("ad", "hindsight")  # the models the claims are about (ed is the control)


def claims(model: dict, learner: dict, learner_final: float) -> dict:
    """What the family set out to show, for one in-context model: it improves (the improvement's CI
    excludes zero), its final return against the learner's, and whether it reaches 0.9x the
    learner's final return in fewer episodes than the learner."""
    ours, theirs = model.get("episodes_to_target"), learner.get("episodes_to_target")
    return {"improves": model["improvement"][1] > 0,
            "final_vs_learner": round(model["final"][0] / learner_final, 4) if learner_final > 0 else None,
            "faster_than_learner": ours is not None and (theirs is None or ours < theirs)}


def _ci(job: tuple[np.ndarray, int, int]) -> list[float]:
    scores, reps, seed = job
    return [round(v, 4) for v in iqm_with_ci(scores, reps, seed)]


def summarize(runs: dict[str, np.ndarray], k: int, target: float, reps: int, seed: int, workers: int = 1,
              scale=None) -> dict[str, dict]:
    """Per model of ``runs`` (name -> returns (training seeds, units, episodes)): the curve,
    first and final return, improvement and the episode the curve first reaches ``target``. Each
    figure's bootstrap CI (a second or so at 2000 repetitions) is one job for ``workers``."""
    parts, gains = [], {}  # (model, figure, scores); model -> last-k minus first-k, per unit
    for name, returns in runs.items():
        first, last = returns[:, :, :k].mean(-1), returns[:, :, -k:].mean(-1)
        gains[name] = last - first
        parts += [(name, "curve", returns[:, :, e]) for e in range(returns.shape[2])]
        parts += [(name, "first", first), (name, "final", last), (name, "improvement", gains[name])]
    cis = run_all(_ci, [(scores, reps, seed) for _, _, scores in parts], workers, scale)
    out: dict[str, dict] = {name: {"curve": []} for name in runs}
    for (name, figure, _), ci in zip(parts, cis, strict=True):
        if figure == "curve":
            out[name]["curve"].append(ci)
        else:
            out[name][figure] = ci
    for name in runs:
        out[name]["improvement_mean"] = round(float(gains[name].mean()), 4)
        reached = [e + 1 for e, c in enumerate(out[name]["curve"]) if c[0] >= target]
        out[name]["episodes_to_target"] = reached[0] if reached else None
    return out


@dataclass(frozen=True)
class RolloutJob:
    """One trained model on every held-out goal, once per sampling seed (picklable, for a pool)."""

    params: Params
    checkpoint: Path
    provenance: dict
    sampling_seeds: tuple[int, ...]
    keep_cells: bool  # also return the cells of the first seed's runs (for the GIF)


def run_frozen(job: RolloutJob) -> tuple[np.ndarray, np.ndarray | None]:
    """Returns (sampling seeds x goals, episodes) and, with ``keep_cells``, the first seed's cells;
    refuses a model whose weights changed during its rollouts."""
    torch.set_num_threads(1)  # small forward passes; and sampled actions must not depend on the core count
    env_cfg, cfg = job.params.family("improve").env, job.params.family("improve").evaluate
    goals = np.asarray(env_cfg.held_out_goals, np.int64)
    model, _ = load_model(job.checkpoint, job.provenance)
    before = weights_hash(model)
    rows, kept = [], None
    for i, s in enumerate(job.sampling_seeds):
        ret, cells = run_in_context(model, goals, cfg.episodes, env_cfg.size, env_cfg.max_episode_steps, s,
                                    keep_cells=job.keep_cells and i == 0)
        rows.append(ret)
        kept = cells if cells is not None else kept
    if weights_hash(model) != before:
        raise StageFailed(f"evaluate (improve): the weights of {job.checkpoint} changed during its in-context "
                          "rollouts; the rollouts must not update the model")
    return np.concatenate(rows), kept


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
    tasks = [(tuple(g), int(s)) for row in seeds for s in row for g in goals]
    runs = learn_all(tasks, size, horizon, cfg.learner_episodes, fam.collect.learner, params.scale.workers,
                     params.scale)
    learner = np.stack([h.returns for h in runs]).reshape(len(train_seeds), -1, cfg.learner_episodes)
    learner_final = float(np.mean(learner[:, :, -k:]))
    target = TARGET * learner_final
    runs = {"learner": learner}

    # Every (model, training seed) frozen on every held-out goal, fanned out over the workers.
    jobs = [RolloutJob(params, paths.train / name / f"seed{t}" / "model.pt", model_provenance(params, name, root),
                       tuple(int(s) for s in seeds[r]), cfg.gif and name in IN_CONTEXT and r == 0)
            for name in fam.train.models for r, t in enumerate(train_seeds)]
    done = iter(run_all(run_frozen, jobs, params.scale.workers, params.scale))
    gif_cells: dict[str, np.ndarray] = {}  # model -> the cells of its first run, for the GIF
    for name in fam.train.models:
        per_seed = []
        for _ in train_seeds:
            returns, cells = next(done)
            per_seed.append(returns)  # (sampling seeds x goals, episodes)
            if cells is not None:
                gif_cells[name] = cells
        runs[name] = np.stack(per_seed)
    results = summarize(runs, k, target, cfg.bootstrap_reps, params.seed, params.scale.workers, params.scale)

    optimal = float(np.mean([best_return(tuple(g), size, horizon) for g in goals]))
    metrics = {
        "held_out_goals": len(goals), "training_goals": len(training_goals(env_cfg)), "seeds": train_seeds,
        "seeds_per_goal": cfg.seeds_per_goal, "episodes": cfg.episodes, "learner_episodes": cfg.learner_episodes,
        "first_last": k, "optimal_return": round(optimal, 4), "learner_final_return": round(learner_final, 4),
        "target_return": round(target, 4), "weights_unchanged": True, "models": results}
    metrics["claims"] = {name: claims(res, results["learner"], learner_final)
                         for name, res in results.items() if name in IN_CONTEXT}
    rows = [{"model": m, "episode": e + 1, "return": c[0], "lo": c[1], "hi": c[2]}
            for m, res in results.items() for e, c in enumerate(res["curve"])]
    write_text(paths.plot, rows_csv(rows))
    write_json(paths.metrics, metrics)
    paths.evaluate.mkdir(parents=True, exist_ok=True)
    _plot(results, learner_final, optimal, paths.evaluate / "curves.png")
    for name, cells in gif_cells.items():
        write_first_and_last(cells[0], tuple(goals[0]), size, paths.evaluate / f"{name}-first-vs-last.gif")
    _log_mlflow(params, root, metrics, paths)
    said = [f"{name} {res['first'][0]:.1f} -> {res['final'][0]:.1f} (improvement {res['improvement'][0]:+.1f} "
            f"[{res['improvement'][1]:+.1f}, {res['improvement'][2]:+.1f}], 0.9x at "
            f"{res.get('episodes_to_target') or 'never'})" for name, res in results.items()]
    print(f"evaluate (improve): in context, frozen: {'; '.join(said)}; the learner's final return "
          f"{learner_final:.1f} ({time.perf_counter() - t0:.0f}s)")
    return metrics


def _plot(results: dict, learner_final: float, optimal: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = {"ad": "Algorithm Distillation (frozen)", "hindsight": "AD, hindsight labels (frozen)",
              "ed": "expert distillation (frozen)", "learner": "source learner (learning from scratch)"}
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
