"""evaluate: roll every trained model out on held-out env seeds at every target return.

Return-conditioned models (rvs, dt) are asked for each target in ``relabel.target_fractions``; the
skill-conditioned model for the top skill of the dataset; BC and %BC ignore the condition and are
rolled out once per seed. The table's model of each seed is the one selected on validation loss at
training time; no evaluation result feeds back into selection. The last weights of every seed are
rolled out too, at the headline ask, so the gap between "best" and "last" is reported (CORL
reports the last). The conditioning gap each conditioned model had at training time is copied in.
Writes ``metrics/return.json`` (git-tracked, for ``dvc metrics diff``), achieved-vs-target plot
data and its picture (``asked.png``), per-episode results, a GIF of the best conditioned model at
the highest target, and logs everything to MLflow.
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
from justask.metrics import achieved_vs_target_rows, best_and_last, normalized_score, summarize
from justask.models import CONDITIONED, SKILL_CONDITIONED
from justask.paths import family_paths
from justask.render import figure_to
from justask.seeding import held_out_seeds, seed_everything, stream_seeds
from justask.steps import StepTable
from justask.tracking import setup_mlflow
from justask.training.checkpoints import provenance, trained_on

from .summary import collect_summary


def evaluate(params: Params, root: Path = Path(".")) -> dict:
    fam = params.family("return")
    ecfg = fam.evaluate
    paths = family_paths("return", root)
    device = pick_device(fam.train.device)
    seed_everything(params.seed)
    torch.set_grad_enabled(False)
    conditions = json.loads(paths.conditions.read_text())
    summary = collect_summary(paths)
    collect_seeds = set()
    for b, info in summary["behaviours"].items():
        collect_seeds |= set(stream_seeds(params.seed, f"collect/{b}", info["episodes"]))
        collect_seeds |= set(stream_seeds(params.seed, f"rating/{b}", info["rating_episodes"]))
    seeds = held_out_seeds(paths.eval_seeds, ecfg.episodes, collect_seeds)
    fractions = conditions["target_fractions"]
    t0 = time.perf_counter()

    rows = rollout_rows(params, paths, conditions, seeds, device, params.scale.workers)
    print(f"evaluate: {len(rows)} episodes rolled out ({time.perf_counter() - t0:.0f}s)")
    episodes = pd.DataFrame(rows)
    best, last = episodes[episodes.weights == "best"], episodes[episodes.weights == "last"]

    metrics: dict = {"ref_min_score": summary["ref_min_score"], "ref_max_score": summary["ref_max_score"],
                     "seeds": list(fam.train.seeds), "episodes_per_target": ecfg.episodes,
                     "target_fractions": fractions, "datasets": {}, "behaviours": {}}
    data_returns = {}
    for dataset, cond in conditions["datasets"].items():
        table, _ = StepTable.load(paths.relabeled(dataset), "dvc repro relabel@return")
        data_returns[dataset] = table.returns
        mine = best[best.dataset == dataset]
        # A brought dataset may carry reference scores of its own: its targets were set by them.
        refs = (cond["ref_min_score"], cond["ref_max_score"])
        own = {} if refs == (summary["ref_min_score"], summary["ref_max_score"]) else {
            "ref_min_score": refs[0], "ref_max_score": refs[1]}
        metrics["datasets"][dataset] = {**own,
            **summarize(mine, *refs, table.returns, ecfg.bootstrap_reps, params.seed),
            "last": best_and_last(mine, last[last.dataset == dataset], *refs, ecfg.bootstrap_reps, params.seed),
            "conditioning_gap": conditioning_gaps(params, paths, dataset),
            "skill_labels": conditions["datasets"][dataset]["skill_labels"]}
    for name, b in summary["behaviours"].items():
        metrics["behaviours"][name] = {
            "mean_return": round(b["mean_return"], 4),
            "score": round(float(normalized_score(b["mean_return"], summary["ref_min_score"],
                                                  summary["ref_max_score"])), 4),
            "rating_score": round(float(normalized_score(b["rating"], summary["ref_min_score"],
                                                         summary["ref_max_score"])), 4)}

    out = paths.evaluate
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "episodes.csv", lambda p: episodes.to_csv(p, index=False, float_format="%.6g"))
    plot_rows = achieved_vs_target_rows(best, data_returns)
    write_text(paths.plot, rows_csv(plot_rows))
    asked_plot(plot_rows, summary["ref_max_score"], out / "asked.png")
    write_json(paths.metrics, metrics)
    gif = _gif(params, paths, metrics, conditions, seeds[0], device) if ecfg.gif else None
    _log_mlflow(params, root, metrics, paths, gif)
    print(f"evaluate: {len(episodes)} episodes in {time.perf_counter() - t0:.1f}s")
    return metrics


def headline_fraction(fractions: list[float]) -> float:
    """The ask every "best vs last" comparison is made at: the expert's return (1.0), or the
    configured fraction closest to it."""
    return min(fractions, key=lambda f: (abs(f - 1.0), -f))


def asks_of(model_name: str, weights: str, fractions: list[float], targets: list[float],
            top_skill: float) -> list[tuple[float | None, float, float | None]]:
    """(target fraction, target, asked skill) of each ask of a model: a return-conditioned model
    at every target (its last weights at the headline target only), a skill-conditioned one for
    the top skill, a baseline once with no target."""
    if model_name in CONDITIONED:
        asks = list(zip(fractions, targets, strict=True))
        if weights == "last":
            asks = [a for a in asks if a[0] == headline_fraction(fractions)]
        return [(f, t, None) for f, t in asks]
    if model_name in SKILL_CONDITIONED:
        return [(None, top_skill, top_skill)]
    return [(None, 0.0, None)]


def rollout_rows(params: Params, paths, conditions: dict, seeds: list[int], device, workers: int) -> list[dict]:
    """One row per episode: every (dataset, model, training seed) asked for every target on
    ``seeds`` with its selected weights (``model.pt``), and once more at the headline ask with its
    last weights (``last.pt``). Each checkpoint is checked here, then rolled out by a job that
    loads it from its file, ``workers`` jobs at a time on the ``scale`` executor; rows are
    identical for any count."""
    fam = params.family("return")
    ecfg = fam.evaluate
    fractions = conditions["target_fractions"]
    keys, jobs = [], []
    for dataset, cond in conditions["datasets"].items():
        targets = [cond["target_returns"][f"{f:g}"] for f in fractions]
        try:
            source = trained_on(params, "return", paths.relabeled(dataset))
        except FileNotFoundError:
            raise StageFailed(f"{paths.relabeled(dataset)}: missing; run `dvc repro relabel@return`") from None
        for model_name in fam.train.models:
            expect = provenance("return", dataset, model_name, **source)
            for tseed in fam.train.seeds:
                for weights, file in (("best", "model.pt"), ("last", "last.pt")):
                    ckpt = paths.run_dir(dataset, model_name, tseed) / file
                    try:
                        load_for_env(ckpt, fam.env, device, expect, "dvc repro train@return")
                    except FileNotFoundError:
                        raise StageFailed(f"{ckpt}: missing; run `dvc repro train@return`") from None
                    except ValueError as e:
                        raise StageFailed(str(e)) from None
                    asks = asks_of(model_name, weights, fractions, targets, cond["top_skill"])
                    keys.append((dataset, model_name, tseed, weights, asks))
                    jobs.append(RolloutJob(ckpt.absolute(), fam.env, tuple(s for _ in asks for s in seeds),
                                           tuple(t for _, t, _ in asks for _ in seeds), ecfg.num_envs, str(device)))
    rows: list[dict] = []
    for (dataset, model_name, tseed, weights, asks), results in zip(
            keys, rollout_checkpoints(jobs, workers, params.scale), strict=True):
        for i, r in enumerate(results):
            f, t, skill = asks[i // len(seeds)]
            rows.append({"dataset": dataset, "model": model_name, "seed": tseed, "weights": weights,
                         "target_fraction": np.nan if f is None else f,
                         "target_return": np.nan if f is None else t,
                         "asked_skill": np.nan if skill is None else skill, "episode": i % len(seeds),
                         "env_seed": r.env_seed, "ret": r.ret, "length": r.length})
    return rows


def conditioning_gaps(params: Params, paths, dataset: str) -> dict:
    """Each conditioned model's conditioning gap per training seed (measured at training time on
    validation data, read from its checkpoint) and their mean."""
    fam, out = params.family("return"), {}
    for model_name in fam.train.models:
        if model_name not in CONDITIONED + SKILL_CONDITIONED:
            continue
        gaps = [load_for_env(paths.run_dir(dataset, model_name, s) / "model.pt", fam.env)[1]["meta"]
                ["conditioning_gap"] for s in fam.train.seeds]
        out[model_name] = {"seeds": gaps, "mean": round(float(np.mean(gaps)), 4)}
    return out


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
            for model, cmp in d["last"].items():
                flat[f"{dataset}.{model}.last.{cmp['ask']}.score_iqm"] = cmp["last"]["score_iqm"]
            for model, gap in d["conditioning_gap"].items():
                flat[f"{dataset}.{model}.conditioning_gap"] = gap["mean"]
        mlflow.log_metrics({k: v for k, v in flat.items() if v is not None})
        mlflow.log_artifact(str(paths.metrics))
        mlflow.log_artifact(str(paths.plot))
        mlflow.log_artifact(str(paths.evaluate / "asked.png"))
        if gif is not None:
            mlflow.log_artifact(str(gif))


def asked_plot(rows: list[dict], expert_return: float, path: Path) -> Path:
    """Achieved vs asked return, one panel per dataset, one line per conditioned model (mean over
    seeds, band: min to max of the seeds' means); hollow markers: asks outside the data's range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(rows)
    datasets = list(dict.fromkeys(frame["dataset"]))
    cols = min(2, len(datasets))  # two abreast: the report shows figures 640 px wide
    rows_ = -(-len(datasets) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(3.3 * cols, 2.9 * rows_), squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat[len(datasets):]:
        ax.set_visible(False)
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        for model, g in frame[frame["dataset"] == dataset].groupby("model", sort=True):
            g = g.sort_values("target")
            line, = ax.plot(g["target"], g["achieved"], label=model)
            ax.fill_between(g["target"], g["achieved_lo"], g["achieved_hi"], color=line.get_color(), alpha=0.2)
            inside = g["in_data_range"].astype(bool)
            ax.scatter(g["target"][inside], g["achieved"][inside], color=line.get_color(), s=14)
            ax.scatter(g["target"][~inside], g["achieved"][~inside], facecolors="none", edgecolors=line.get_color(),
                       s=18)
        lims = [frame["target"].min(), frame["target"].max()]
        ax.plot(lims, lims, ls=":", color="grey", label="achieved = asked")
        ax.axhline(expert_return, ls="--", lw=0.8, color="grey", label="expert")
        ax.set_title(dataset, fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("asked return")
    for ax in axes[:, 0]:
        ax.set_ylabel("achieved return")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("achieved vs asked return (mean over seeds; band: the seeds' means)", fontsize=9)
    fig.tight_layout()
    return figure_to(path, fig)
