"""relabel: add return-to-go and timesteps, split episodes, write the evaluation conditions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from justask.config import Params
from justask.datasets import read_episodes, read_metadata, split_episodes
from justask.io import write_json
from justask.metrics import target_return
from justask.paths import family_paths
from justask.steps import build_step_table


def relabel(params: Params, root: Path = Path(".")) -> dict:
    """Relabel every dataset of the ``return`` family; returns the conditions it writes."""
    fam = params.family("return")
    paths = family_paths("return", root)
    conditions: dict = {"target_fractions": fam.relabel.target_fractions, "datasets": {}}
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
        table.save(paths.relabeled(name), {
            "dataset": name, "ref_min_score": ref_min, "ref_max_score": ref_max,
            "episodes": len(episodes), "train_episodes": len(train_idx), "val_episodes": len(val_idx),
            "behaviours": behaviours, "continuous": fam.env.continuous,
            "max_episode_steps": fam.env.max_episode_steps,
        })
        targets = {f"{f:g}": target_return(f, ref_min, ref_max) for f in fam.relabel.target_fractions}
        conditions["datasets"][name] = {
            "ref_min_score": ref_min, "ref_max_score": ref_max,
            "data_return_min": float(table.returns.min()), "data_return_max": float(table.returns.max()),
            "target_returns": targets,
            "above_data_max": [k for k, v in targets.items() if v > table.returns.max()],
        }
    write_json(paths.conditions, conditions)
    return conditions
