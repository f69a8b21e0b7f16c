"""evaluate: roll every trained model out on held-out env seeds at every target return.

Conditioned models (rvs, dt) are asked for each target in ``relabel.target_fractions``; BC and
%BC ignore the condition and are rolled out once per seed. The model of each seed is the one
selected on validation loss at training time; no evaluation result feeds back into selection.
Writes ``metrics/return.json`` (git-tracked, for ``dvc metrics diff``), achieved-vs-target plot
data, per-episode results, a GIF of the best conditioned model at the highest target, and logs
everything to MLflow.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from justask.config import Params
from justask.device import pick_device
from justask.errors import StageFailed
from justask.io import atomic_write, rows_csv, write_json, write_text
from justask.lunar.asking import RolloutJob, load_for_env, record_gif, rollout_checkpoints
from justask.metrics import achieved_vs_target_rows, normalized_score, summarize
from justask.models import CONDITIONED
from justask.paths import family_paths
from justask.seeding import held_out_seeds, seed_everything, stream_seeds
from justask.steps import StepTable
from justask.tracking import setup_mlflow


def evaluate(params: Params, root: Path = Path(".")) -> dict:
    fam = params.family("return")
    ecfg = fam.evaluate
    paths = family_paths("return", root)
    device = pick_device(fam.train.device)
    seed_everything(params.seed)
    torch.set_grad_enabled(False)
    conditions = json.loads(paths.conditions.read_text())
    summary = json.loads(paths.collect_summary.read_text())
    collect_seeds = set()
    for b in summary["behaviours"]:
        collect_seeds |= set(stream_seeds(params.seed, f"collect/{b}", summary["behaviours"][b]["episodes"]))
    seeds = held_out_seeds(paths.eval_seeds, ecfg.episodes, collect_seeds)
    fractions = conditions["target_fractions"]
    t0 = time.perf_counter()

    rows = rollout_rows(params, paths, conditions, seeds, device, params.scale.workers)
    print(f"evaluate: {len(rows)} episodes rolled out ({time.perf_counter() - t0:.0f}s)")
    episodes = pd.DataFrame(rows)

    metrics: dict = {"ref_min_score": summary["ref_min_score"], "ref_max_score": summary["ref_max_score"],
                     "seeds": list(fam.train.seeds), "episodes_per_target": ecfg.episodes,
                     "target_fractions": fractions, "datasets": {}, "behaviours": {}}
    data_returns = {}
    for dataset in conditions["datasets"]:
        table, _ = StepTable.load(paths.relabeled(dataset), "dvc repro relabel@return")
        data_returns[dataset] = table.returns
        metrics["datasets"][dataset] = summarize(
            episodes[episodes.dataset == dataset], summary["ref_min_score"], summary["ref_max_score"],
            table.returns, ecfg.bootstrap_reps, params.seed)
    for name, b in summary["behaviours"].items():
        metrics["behaviours"][name] = {
            "mean_return": round(b["mean_return"], 4),
            "score": round(float(normalized_score(b["mean_return"], summary["ref_min_score"],
                                                  summary["ref_max_score"])), 4)}

    out = paths.evaluate
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "episodes.csv", lambda p: episodes.to_csv(p, index=False, float_format="%.6g"))
    plot_rows = achieved_vs_target_rows(episodes, data_returns)
    write_text(paths.plot, rows_csv(plot_rows))
    write_json(paths.metrics, metrics)
    gif = _gif(params, paths, metrics, conditions, seeds[0], device) if ecfg.gif else None
    _log_mlflow(params, root, metrics, paths, gif)
    print(f"evaluate: {len(episodes)} episodes in {time.perf_counter() - t0:.1f}s")
    return metrics


def rollout_rows(params: Params, paths, conditions: dict, seeds: list[int], device, workers: int) -> list[dict]:
    """One row per episode: every (dataset, model, training seed) asked for every target on
    ``seeds``. Each checkpoint is checked here, then rolled out by a job that loads it from its
    file, ``workers`` jobs at a time on the ``scale`` executor; rows are identical for any count."""
    fam = params.family("return")
    ecfg = fam.evaluate
    fractions = conditions["target_fractions"]
    keys, jobs = [], []
    for dataset, cond in conditions["datasets"].items():
        targets = [cond["target_returns"][f"{f:g}"] for f in fractions]
        for model_name in fam.train.models:
            for tseed in fam.train.seeds:
                ckpt = paths.run_dir(dataset, model_name, tseed) / "model.pt"
                try:
                    load_for_env(ckpt, fam.env, device)
                except FileNotFoundError:
                    raise StageFailed(f"{ckpt}: missing; run `dvc repro train@return`") from None
                except ValueError as e:
                    raise StageFailed(str(e)) from None
                asks = list(zip(fractions, targets, strict=True)) if model_name in CONDITIONED else [(None, 0.0)]
                keys.append((dataset, model_name, tseed, asks))
                jobs.append(RolloutJob(ckpt.absolute(), fam.env, tuple(s for _ in asks for s in seeds),
                                       tuple(t for _, t in asks for _ in seeds), ecfg.num_envs, str(device)))
    rows: list[dict] = []
    for (dataset, model_name, tseed, asks), results in zip(keys, rollout_checkpoints(jobs, workers, params.scale),
                                                          strict=True):
        for i, r in enumerate(results):
            f, t = asks[i // len(seeds)]
            rows.append({"dataset": dataset, "model": model_name, "seed": tseed,
                         "target_fraction": np.nan if f is None else f,
                         "target_return": np.nan if f is None else t, "episode": i % len(seeds),
                         "env_seed": r.env_seed, "ret": r.ret, "length": r.length})
    return rows


def _gif(params: Params, paths, metrics: dict, conditions: dict, env_seed: int, device) -> Path | None:
    """Render the best conditioned model (by IQM at the highest target) asked for that target."""
    top = f"t{conditions['target_fractions'][-1]:g}"
    best = None
    for dataset, d in metrics["datasets"].items():
        for model, cells in d["models"].items():
            if model in CONDITIONED and top in cells:
                score = cells[top]["score_iqm"]
                if best is None or score > best[0]:
                    best = (score, dataset, model)
    if best is None:
        return None
    _, dataset, model_name = best
    fam = params.family("return")
    model, _ = load_for_env(paths.run_dir(dataset, model_name, fam.train.seeds[0]) / "model.pt", fam.env, device)
    target = conditions["datasets"][dataset]["target_returns"][top[1:]]
    path = paths.evaluate / f"{dataset}-{model_name}-{top}.gif"
    record_gif(model, fam.env, target, env_seed, path, device, max_steps=fam.evaluate.gif_max_steps)
    return path


def _log_mlflow(params: Params, root: Path, metrics: dict, paths, gif: Path | None) -> None:
    mlflow = setup_mlflow(params.tracking, root)
    with mlflow.start_run(run_name="evaluate-return"):
        mlflow.set_tags({"family": "return", "stage": "evaluate", "profile": params.profile})
        mlflow.log_params({"episodes": params.family("return").evaluate.episodes,
                           "target_fractions": str(metrics["target_fractions"])})
        flat = {}
        for dataset, d in metrics["datasets"].items():
            for model, cells in d["models"].items():
                for key, cell in cells.items():
                    flat[f"{dataset}.{model}.{key}.score_iqm"] = cell["score_iqm"]
                    flat[f"{dataset}.{model}.{key}.return_mean"] = cell["return_mean"]
        mlflow.log_metrics({k: v for k, v in flat.items() if v is not None})
        mlflow.log_artifact(str(paths.metrics))
        mlflow.log_artifact(str(paths.plot))
        if gif is not None:
            mlflow.log_artifact(str(gif))
