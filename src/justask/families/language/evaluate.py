"""evaluate (language): ask every trained policy, in words, for the evaluation asks of relabel.

Each ask (``conditions.json``) is a level, an env seed disjoint from collection, the instruction
minigrid's verifier checks, and the text the policy is told (a paraphrase for that group). The
env's own mission is replaced by the asked instruction, so the episode ends with success exactly
when the verifier says the instruction was carried out. The asks of a model and seed run level by
level through the rollout engine, one batched forward pass per step across the live envs.

Writes ``metrics/language.json`` (success rate and episode length per model and group, mean over
seeds x asks with a stratified-bootstrap CI, and which object each ask engaged first),
``metrics/language.csv`` (success per colour x object, held-out cells marked), per-episode results, and logs to MLflow.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from justask.config import Params
from justask.device import pick_device
from justask.errors import StageFailed
from justask.executors import run_all
from justask.io import atomic_write, files_digest, write_json, write_text
from justask.metrics import iqm_with_ci
from justask.paths import family_paths
from justask.render import figure_to
from justask.seeding import seed_everything
from justask.tracking import setup_mlflow

from .asking import CONTACTS, GROUPS, rollout_asks
from .grammar import parse
from .policy import load_policy, policy_provenance


def ask_job(job: tuple[Path, list[dict], str, int]) -> list[dict]:
    """:func:`rollout_asks` of the checkpoint at ``job[0]`` on asks ``job[1]`` (device ``job[2]``,
    ``job[3]`` envs at a time), loading the policy in whichever process runs it."""
    ckpt, asks, device, num_envs = job
    model, vocab, _ = load_policy(ckpt, device)
    with torch.no_grad():
        return rollout_asks(model, vocab, asks, torch.device(device), num_envs)


def evaluate(params: Params, root: Path = Path(".")) -> dict:
    cfg = params.family("language")
    paths = family_paths("language", root)
    device = pick_device(cfg.train.device)
    seed_everything(params.seed)
    torch.set_grad_enabled(False)
    try:
        conditions = json.loads(paths.conditions.read_text())
    except FileNotFoundError:
        raise StageFailed(f"{paths.conditions}: missing; run `dvc repro relabel@language`") from None
    asks = conditions["asks"]
    held = cfg.relabel.held_out
    t0 = time.perf_counter()
    rows = []
    gifs_done = False
    paths.evaluate.mkdir(parents=True, exist_ok=True)
    keys, jobs = [], []
    data_digests: dict[str, str] = {}
    for name in cfg.train.models:
        data = cfg.train.models[name].data
        try:
            if data not in data_digests:  # several models read one table: hash it once
                data_digests[data] = files_digest(paths.relabel / data)
        except FileNotFoundError:
            raise StageFailed(f"{paths.relabel / data}: missing; run `dvc repro relabel@language`") from None
        expect = policy_provenance(params, name, data_digests[data])
        for seed in cfg.train.seeds:
            ckpt = paths.train / name / f"seed{seed}" / "model.pt"
            try:
                model, vocab, _ = load_policy(ckpt, device, expect)
            except FileNotFoundError:
                raise StageFailed(f"{ckpt}: missing; run `dvc repro train@language`") from None
            except ValueError as e:
                raise StageFailed(str(e)) from None
            if cfg.evaluate.gif and not gifs_done:
                _write_gifs(model, vocab, asks, device, paths.evaluate / "gifs")
                gifs_done = True
            keys.append((name, seed, vocab))
            jobs.append((ckpt.absolute(), asks, str(device), cfg.evaluate.num_envs))
    # Each (model, seed) is one job that loads its checkpoint wherever it runs (see justask.executors).
    for (name, seed, vocab), results in zip(keys, run_all(ask_job, jobs, params.scale.workers, params.scale),
                                            strict=True):
        for ask, r in zip(asks, results, strict=True):
            instr = parse(ask["instruction"])
            rows.append({"model": name, "seed": seed, **ask, **r,
                         "unknown_words": len(vocab.unknown_words(ask["text"])),
                         "verb": instr.verb, "colour": instr.obj[0], "type": instr.obj[1]})
    print(f"evaluate (language): {len(keys)} model runs done ({time.perf_counter() - t0:.0f}s)")
    episodes = pd.DataFrame(rows)
    metrics = {"seeds": list(cfg.train.seeds), "asks_per_group": cfg.relabel.asks_per_group,
               "levels": list(cfg.env.levels), "models": {}}
    metrics["by_level"] = {}
    for name, g in episodes.groupby("model", sort=False):
        metrics["models"][name] = group_cells(g, cfg.evaluate.bootstrap_reps, params.seed)
        # held-out against seen within the same level: composition is judged where its words were trained
        metrics["by_level"][name] = {level: group_cells(sub, cfg.evaluate.bootstrap_reps, params.seed)
                                     for level, sub in g.groupby("level", sort=False)}
    heat = (episodes[episodes.group.isin(["seen", "colour_object", "cross_level"])]
            .groupby(["model", "colour", "type"]).success.agg(["mean", "count"]).reset_index())
    heat = heat.rename(columns={"mean": "success", "count": "episodes"})
    withheld = {tuple(p) for p in held.colour_object} | {tuple(p) for p in held.cross_level}
    heat["held_out"] = [(c, t) in withheld for c, t in zip(heat.colour, heat.type, strict=True)]
    atomic_write(paths.evaluate / "episodes.csv", lambda p: episodes.to_csv(p, index=False))
    buf = io.StringIO()
    heat.to_csv(buf, index=False, float_format="%.4f")
    write_text(paths.plot, buf.getvalue())
    success_heatmap(heat, paths.evaluate / "heatmap.png")
    write_json(paths.metrics, metrics)
    _log_mlflow(params, root, metrics, paths)
    print(f"evaluate (language): {len(episodes)} episodes in {time.perf_counter() - t0:.1f}s")
    return metrics


def group_cells(episodes: pd.DataFrame, reps: int, seed: int) -> dict[str, dict]:
    """Per condition group of ``episodes`` (one model's): success mean over seeds x asks with a 95%
    stratified-bootstrap CI, mean length, ask count, the share of asks with unknown words, and
    ``contact``: the share of asks whose first engaged object was the target, shared only its colour
    or only its type, neither, or none (where the policy goes when it fails)."""
    cells = {}
    for group in GROUPS:
        sub = episodes[episodes.group == group]
        if sub.empty:
            continue
        matrix = sub.pivot_table(index="seed", columns=["level", "env_seed"], values="success").to_numpy(float)
        mean, lo, hi = iqm_with_ci(matrix, reps, seed, statistic="mean")
        cells[group] = {"success": round(mean, 4), "ci": [round(lo, 4), round(hi, 4)],
                        "length": round(float(sub.length.mean()), 2), "asks": int(len(sub)),
                        "unknown_word_rate": round(float((sub.unknown_words > 0).mean()), 4),
                        "contact": {k: round(float((sub.contact == k).mean()), 4) for k in CONTACTS}}
    return cells


def _write_gifs(model, vocab, asks: list[dict], device, folder: Path) -> None:
    """One GIF per condition group: the group's first ask, with the asked text as the caption."""
    from justask.render import write_gif

    firsts = {}
    for ask in asks:
        firsts.setdefault(ask["group"], ask)
    picked = list(firsts.values())
    for ask, r in zip(picked, rollout_asks(model, vocab, picked, device, frames=True), strict=True):
        outcome = "success" if r["success"] else "fail"
        write_gif(r["frames"], folder / f"{ask['group']}-{outcome}.gif", duration_ms=200)


def _log_mlflow(params: Params, root: Path, metrics: dict, paths) -> None:
    mlflow = setup_mlflow(params.tracking, root)
    with mlflow.start_run(run_name="evaluate-language"):
        mlflow.set_tags({"family": "language", "stage": "evaluate", "profile": params.profile})
        mlflow.log_metrics({f"{m}.{g}.success": c["success"] for m, cells in metrics["models"].items()
                            for g, c in cells.items()})
        mlflow.log_artifact(str(paths.metrics))
        mlflow.log_artifact(str(paths.evaluate / "heatmap.png"))


def success_heatmap(heat, path: Path) -> Path:
    """One panel per model: success rate per colour x object, held-out cells outlined in red.
    ``heat`` has columns model, colour, type, success, held_out (``metrics/language.csv``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(heat["model"]))
    colours, types = sorted(set(heat["colour"])), sorted(set(heat["type"]))
    fig, axes = plt.subplots(1, len(models), figsize=(1.0 + 0.75 * len(types) * len(models), 0.5 + 0.5 * len(colours)),
                             squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        grid = np.full((len(colours), len(types)), np.nan)
        sub = heat[heat["model"] == model]
        for _, r in sub.iterrows():
            grid[colours.index(r["colour"]), types.index(r["type"])] = r["success"]
        ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        for _, r in sub.iterrows():
            i, j = colours.index(r["colour"]), types.index(r["type"])
            ax.text(j, i, f"{100 * r['success']:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if r["success"] < 0.5 else "black")
            if r["held_out"]:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        ax.set_xticks(range(len(types)), types)
        ax.set_yticks(range(len(colours)), colours)
        ax.set_title(model, fontsize=9)
    fig.suptitle("success % when asked (red: colour x object never trained on)", fontsize=9, y=1.06)
    return figure_to(path, fig)
