"""Development runs of the improve family's in-context model (Algorithm Distillation), on goals and
seeds disjoint from the evaluation's: ``DEV_GOALS`` are training goals taken out of the training
data here (never the held-out goals of params.yaml), and actions are sampled with ``DEV_SEEDS``.

Reads the collected histories of a default-profile run (``--root``), drops the dev goals' histories,
relabels with ``--skip``, fits AD (or, ``--data experts``, expert distillation; ``--target``
other labels: ``optimal``, DPT's; ``found``, the family's hindsight labels) with the one training
loop and prints one JSON line: settings, fit time, validation loss, the return per episode on the
dev goals (mean over goals x sampling seeds), the first-5 and last-5 means, and how the model
searched (first rewarded episode) and exploited (shortfall from the best return after it).
``--look MODEL.pt`` measures the last two for a model saved with ``--save``, fitting nothing.

    .venv/bin/python benchmarks/improve_dev.py --root . --hidden 32 --layers 4 --steps 2000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from justask.config import load_params
from justask.datasets import split_mask
from justask.families.improve.contexts import (
    Windows,
    build_contexts,
    hindsight_labels,
    kept_episodes,
    optimal_actions,
)
from justask.families.improve.goals import best_return, training_goals
from justask.families.improve.histories import Histories, read_histories
from justask.families.improve.incontext import run_in_context
from justask.families.improve.learner import learn
from justask.families.improve.model import RoomSpec, build_model
from justask.paths import family_paths
from justask.seeding import seed_everything, stream_seeds
from justask.training.loop import Loop, Optimisation, fit

DEV_GOALS = [(0, 3), (1, 1), (1, 6), (3, 0), (3, 5), (5, 1), (5, 6), (7, 4), (8, 2), (8, 7)]
DEV_SEEDS = [101, 202, 303]


def on_dev_goals(model, env, episodes: int) -> tuple[np.ndarray, dict]:
    """The frozen model's returns (goals x sampling seeds, episodes) on the dev goals, and how it
    searched and exploited: the first rewarded episode of each run (0-based; runs never rewarded
    counted apart), and the mean shortfall from the best return from the third episode after it."""
    goals = np.asarray(DEV_GOALS, np.int64)
    returns = np.concatenate([run_in_context(model, goals, episodes, env.size, env.max_episode_steps, s)[0]
                              for s in DEV_SEEDS])
    best = np.tile([best_return(tuple(g), env.size, env.max_episode_steps) for g in goals], len(DEV_SEEDS))
    rewarded = returns > 0
    found = np.where(rewarded.any(1), rewarded.argmax(1), -1)
    hit = found >= 0
    short = [float((best[i] - returns[i, f + 3:]).mean()) for i, f in enumerate(found) if 0 <= f < episodes - 3]
    return returns, {"first_rewarded_median": float(np.median(found[hit])) if hit.any() else None,
                     "never_rewarded": int((~hit).sum()), "runs": len(found),
                     "shortfall_after": round(float(np.mean(short)), 2) if short else None}


def look(path: Path, params_path: Path, episodes: int) -> None:
    """Print how a model saved with ``--save`` searches and exploits on the dev goals."""
    fam = load_params(params_path).family("improve")
    saved = torch.load(path, weights_only=True)
    model = build_model(RoomSpec(fam.env.size, fam.env.max_episode_steps), saved["hp"])
    model.load_state_dict(saved["state"])
    returns, searched = on_dev_goals(model.eval(), fam.env, episodes)
    print(json.dumps({"model": str(path), "last5": round(float(returns[:, -5:].mean()), 2), **searched}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", choices=("histories", "experts"), default="histories")
    for name, default in (("hidden", 32), ("layers", 4), ("heads", 4), ("context_episodes", 4), ("batch", 32),
                          ("steps", 2000), ("skip", 1), ("histories", 0), ("episodes", 40), ("seed", 0)):
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    ap.add_argument("--generate", type=int, default=0, help="histories per goal made here (not read from --root)")
    ap.add_argument("--planning", type=int, default=-1, help="the learner's Dyna-Q updates (with --generate)")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--target", choices=("learner", "optimal", "found"), default="learner",
                    help="the learner's actions (AD), the optimal action for the history's goal (DPT's label), or "
                         "the learner's until the sequence has earned a reward, the optimal one after")
    ap.add_argument("--save", type=Path, help="write the fitted model's weights here (for a closer look)")
    ap.add_argument("--look", type=Path, help="fit nothing: how a model saved with --save searches and exploits")
    a = ap.parse_args()
    if a.look:
        return look(a.look, a.params, a.episodes)
    params = load_params(a.params)
    fam = params.family("improve")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    seed_everything(a.seed)
    learner_cfg = fam.collect.learner
    if a.planning >= 0:
        learner_cfg = learner_cfg.model_copy(update={"planning": a.planning})
    if a.generate:
        learner = learner_cfg
        tasks = [g for g in training_goals(fam.env) for _ in range(a.generate)]
        seeds = stream_seeds(a.seed, "improve/dev-collect", len(tasks))
        hs = [learn(g, fam.env.size, fam.env.max_episode_steps, fam.collect.episodes, learner, s)
              for g, s in zip(tasks, seeds, strict=True)]
        h = Histories.stack(hs)
    else:
        h = read_histories(family_paths("improve", a.root).dataset("histories"), fam.env, fam.collect.episodes)
    dev = {tuple(g) for g in DEV_GOALS}
    assert not dev & {tuple(g) for g in fam.env.held_out_goals}, "dev goals must not be evaluation goals"
    keep = np.array([tuple(g) not in dev for g in h.goals.tolist()])
    if a.histories:  # at most this many histories per goal
        seen: dict = {}
        for i, g in enumerate(h.goals.tolist()):
            seen[tuple(g)] = seen.get(tuple(g), 0) + 1
            keep[i] &= seen[tuple(g)] <= a.histories
    h = Histories(h.cells[keep], h.actions[keep], h.rewards[keep], h.goals[keep])
    episodes = fam.collect.episodes
    which = kept_episodes(episodes, a.skip) if a.data == "histories" else np.arange(episodes - 10, episodes)
    ctx = build_contexts(h, which, split_mask(len(h), 0.1, 0).astype(np.int8), fam.env.size)
    if a.target == "optimal":
        seq = np.repeat(np.arange(len(ctx.split)), np.diff(ctx.starts))
        cells = np.stack([ctx.cells // fam.env.size, ctx.cells % fam.env.size], 1)
        ctx.actions = optimal_actions(cells, ctx.goals[seq], np.random.default_rng(a.seed))
    elif a.target == "found":
        ctx.actions = hindsight_labels(ctx, fam.env.size, np.random.default_rng(a.seed))
    spec = RoomSpec(fam.env.size, fam.env.max_episode_steps)
    hp = {"hidden": a.hidden, "layers": a.layers, "heads": a.heads, "context_episodes": a.context_episodes,
          "dropout": a.dropout}
    t0 = time.perf_counter()
    res = fit(lambda: build_model(spec, hp), Windows(ctx, 0, torch.device("cpu")),
              Windows(ctx, 1, torch.device("cpu"), max_rows=2048),
              Optimisation(a.lr, 1e-4, a.batch, a.steps), Loop(250, 100, a.seed, torch.device("cpu")))
    seconds = time.perf_counter() - t0
    model = res.model.eval()
    if a.save:
        torch.save({"hp": hp, "state": model.state_dict()}, a.save)
    returns, searched = on_dev_goals(model, fam.env, a.episodes)
    curve = returns.mean(0)
    src = np.array([learn(tuple(g), fam.env.size, fam.env.max_episode_steps, a.episodes, learner_cfg, s).returns
                    for s in DEV_SEEDS for g in DEV_GOALS]).mean(0)
    print(json.dumps({**vars(a), "root": str(a.root), "params": str(a.params), "save": str(a.save),
                      "histories_used": int(len(h)),
                      "fit_seconds": round(seconds, 1), "best_val_loss": round(res.best_val_loss, 4),
                      "best_step": res.best_step, "first5": round(float(curve[:5].mean()), 2),
                      "last5": round(float(curve[-5:].mean()), 2), **searched,
                      "curve": [round(float(c), 2) for c in curve],
                      "learner_curve": [round(float(c), 2) for c in src],
                      "val_curve": [round(p["val_loss"], 3) for p in res.curve]}), flush=True)


if __name__ == "__main__":
    main()
