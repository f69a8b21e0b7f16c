"""relabel: add return-to-go, timesteps and skill labels, split episodes, write the evaluation
conditions.

An episode's skill label is the rank of the behaviour that produced it among the dataset's
behaviours, by the skill rating collect measured on episodes outside every dataset (0 = the lowest
rated, 1 = the highest): known before the episode is played, as a player's MMR is, so it carries
nothing of the episode's own return."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from justask.config import Params
from justask.datasets import read_episodes, read_metadata, split_episodes
from justask.io import write_json
from justask.metrics import target_return
from justask.paths import family_paths
from justask.steps import build_step_table

from .summary import collect_summary


def skill_labels(behaviours: list[str], ratings: dict[str, float]) -> tuple[np.ndarray, dict[str, float]]:
    """Per-episode skill labels (float32, in [0, 1]) for episodes produced by ``behaviours`` (one name
    per episode), and the label of each behaviour: its rank by ``ratings`` among the distinct
    behaviours present, scaled so that the lowest rated is 0 and the highest 1 (ties share the
    mean rank; a single behaviour is 1)."""
    names = sorted(set(behaviours))
    missing = [n for n in names if n not in ratings]
    if missing:
        raise ValueError(f"no skill rating for behaviour(s) {missing}; rerun `dvc repro collect@return`")
    rank = rankdata([ratings[n] for n in names], method="average") - 1
    label = {n: float(r / (len(names) - 1)) if len(names) > 1 else 1.0 for n, r in zip(names, rank, strict=True)}
    return np.array([label[b] for b in behaviours], dtype=np.float32), label


def relabel(params: Params, root: Path = Path(".")) -> dict:
    """Relabel every dataset of the ``return`` family; returns the conditions it writes."""
    fam = params.family("return")
    paths = family_paths("return", root)
    conditions: dict = {"target_fractions": fam.relabel.target_fractions, "datasets": {}}
    ratings = None
    for name in fam.collect.datasets:
        src = paths.dataset(name)
        meta = read_metadata(src)
        episodes = read_episodes(src)
        train_idx, val_idx = split_episodes(len(episodes), fam.relabel.val_fraction, params.seed)
        split = np.zeros(len(episodes), dtype=np.int8)
        split[val_idx] = 1
        table = build_step_table(episodes, split)
        ref_min, ref_max = float(meta["ref_min_score"]), float(meta["ref_max_score"])
        behaviours = json.loads(meta["behaviours"])
        if ratings is None:  # read after the first dataset: a damaged dataset is named first
            ratings = {name: b["rating"] for name, b in collect_summary(paths)["behaviours"].items()}
        table.skill, labels = skill_labels(behaviours, ratings)
        table.save(paths.relabeled(name), {
            "dataset": name, "ref_min_score": ref_min, "ref_max_score": ref_max,
            "episodes": len(episodes), "train_episodes": len(train_idx), "val_episodes": len(val_idx),
            "behaviours": behaviours, "skill_labels": labels, "continuous": fam.env.continuous,
            "max_episode_steps": fam.env.max_episode_steps,
        })
        targets = {f"{f:g}": target_return(f, ref_min, ref_max) for f in fam.relabel.target_fractions}
        conditions["datasets"][name] = {
            "ref_min_score": ref_min, "ref_max_score": ref_max,
            "data_return_min": float(table.returns.min()), "data_return_max": float(table.returns.max()),
            "target_returns": targets,
            "above_data_max": [k for k, v in targets.items() if v > table.returns.max()],
            "skill_labels": labels, "top_skill": max(labels.values()),
        }
    write_json(paths.conditions, conditions)
    return conditions
