"""relabel (reward): rank the noise-injection rollouts by their noise level, as snippet pairs.

Outputs under ``artifacts/reward/relabel/``:

* ``ranking/``: every step's observation, each episode's noise level and its train/validation
  split (no reward: ranking is the only supervision);
* ``steps/``: the same episodes as a return-family step table (observations, actions, split) whose
  return-to-go is left at 0: train fills it with the *learned* reward once that exists;
* ``pairs_train/``, ``pairs_val/``: snippet pairs drawn within each split (see
  :func:`justask.families.reward.pairs.make_pairs`), label = which snippet had less noise;
* ``conditions.json``: the held-out behaviours the learned reward is judged on, and counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from justask.config import Params
from justask.datasets import read_episodes, read_metadata, split_mask
from justask.errors import StageFailed
from justask.io import write_json
from justask.paths import family_paths
from justask.steps import StepTable, blank_rewards, build_step_table

from .pairs import RankingTable, make_pairs, save_pairs


def ranking_table(path: Path, val_fraction: float, seed: int) -> tuple[RankingTable, StepTable, dict]:
    """The noise-injection dataset at ``path`` as a ranking table and a step table (no rewards
    kept in either), split alike by episode."""
    meta = read_metadata(path)
    episodes = read_episodes(path)
    try:
        noise = np.asarray(json.loads(meta["noise"]), dtype=np.float64)
    except (KeyError, ValueError) as e:
        raise StageFailed(f"{path}: metadata has no readable `noise` list ({e}); re-run `dvc repro collect@reward`") \
            from None
    if len(noise) != len(episodes):
        raise StageFailed(f"{path}: metadata lists {len(noise)} noise levels for {len(episodes)} episodes; "
                          "re-run `dvc repro collect@reward`")
    split = split_mask(len(episodes), val_fraction, seed)
    lengths = np.array([len(e["actions"]) for e in episodes], np.int64)
    table = RankingTable(
        observations=np.concatenate([e["observations"][:-1] for e in episodes]).astype(np.float32),
        starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        noise=noise, split=split)
    steps = build_step_table(blank_rewards(episodes), split)
    return table, steps, {"episodes": len(episodes), "steps": int(lengths.sum()),
                          "noise_levels": sorted(set(noise.tolist()))}


def relabel(params: Params, root: Path = Path(".")) -> dict:
    fam = params.family("reward")
    cfg = fam.relabel
    paths = family_paths("reward", root)
    try:
        table, steps, meta = ranking_table(paths.dataset("noise"), cfg.val_fraction, params.seed)
    except FileNotFoundError as e:
        raise StageFailed(f"{e}; run `dvc repro collect@reward`") from None
    table.save(paths.relabeled("ranking"), meta)
    steps.save(paths.relabeled("steps"), {**meta, "rtg": "0 until train fills it with the learned reward",
                                          "continuous": fam.env.continuous,
                                          "max_episode_steps": fam.env.max_episode_steps})
    counts = {}
    for split, name, n in ((0, "pairs_train", cfg.pairs), (1, "pairs_val", cfg.val_pairs)):
        episodes = np.flatnonzero(table.split == split)
        try:
            pairs = make_pairs(table, episodes, n, cfg.snippet, params.seed + split)
        except ValueError as e:
            raise StageFailed(f"reward.relabel: {e}") from None
        save_pairs(paths.relabeled(name), pairs, {"split": split, "pairs": n, "snippet": cfg.snippet,
                                                  "episodes": len(episodes)})
        counts[name] = {"pairs": n, "episodes": len(episodes), "mean_length": float(pairs.length.mean())}
    conditions = {"held_out": [b.name for b in fam.collect.held_out], "ranking": meta, **counts}
    write_json(paths.conditions, conditions)
    print(f"relabel (reward): {meta['episodes']} episodes at noise {meta['noise_levels']}; "
          f"{cfg.pairs} training and {cfg.val_pairs} validation snippet pairs")
    return conditions
