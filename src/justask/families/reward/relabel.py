"""relabel (reward): rank the noise-injection rollouts by their noise level, as snippet pairs.

Outputs under ``artifacts/reward/relabel/``:

* ``ranking/``: every step's observation, each episode's noise level and its train/validation
  split (no reward: ranking is the only supervision); with ``rank_demos`` the demonstrations too,
  ranked above every noise level;
* ``steps/``: the same episodes as a return-family step table (observations, actions, split) whose
  return-to-go is left at 0: train fills it with the *learned* reward once that exists;
* ``oracle/``: the same step table with the env's rewards, read only by the oracle-filter
  reference (the best the data give without extrapolation), never by the ranking or a candidate;
* ``pairs_train/``, ``pairs_val/``: ranked pairs (equal-length snippets or whole episodes, noise
  levels at least ``noise_margin`` apart) drawn within each split (see
  :func:`justask.families.reward.pairs.make_pairs`), label = which side had less noise;
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

from .pairs import DEMOS, RankingTable, make_pairs, save_pairs


def ranking_table(path: Path, val_fraction: float, seed: int, demos: Path | None = None,
                  ) -> tuple[RankingTable, StepTable, StepTable, dict]:
    """The noise-injection dataset at ``path`` as a ranking table and a step table (no rewards
    kept in either), split alike by episode, and the same step table with the env's rewards (for
    the oracle-filter reference only). With ``demos`` (the demonstrations' dataset) the ranking
    table also holds the demonstrations, at noise level :data:`DEMOS` and split on their own; the
    step tables (the policies' data) hold the noise-injection episodes only."""
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
    steps = build_step_table(blank_rewards(episodes), split)
    oracle = build_step_table(episodes, split)
    ranked, ranked_noise, ranked_split = list(episodes), [noise], [split]
    if demos is not None:
        demo_episodes = read_episodes(demos)
        ranked += demo_episodes
        ranked_noise.append(np.full(len(demo_episodes), DEMOS))
        ranked_split.append(split_mask(len(demo_episodes), val_fraction, seed + 1))
    lengths = np.array([len(e["actions"]) for e in ranked], np.int64)
    table = RankingTable(
        observations=np.concatenate([e["observations"][:-1] for e in ranked]).astype(np.float32),
        starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        noise=np.concatenate(ranked_noise), split=np.concatenate(ranked_split))
    return table, steps, oracle, {"episodes": len(episodes), "steps": int(steps.observations.shape[0]),
                          "noise_levels": sorted(set(noise.tolist())),
                          "demos_ranked": len(ranked) - len(episodes)}


def relabel(params: Params, root: Path = Path(".")) -> dict:
    fam = params.family("reward")
    cfg = fam.relabel
    paths = family_paths("reward", root)
    try:
        table, steps, oracle, meta = ranking_table(paths.dataset("noise"), cfg.val_fraction, params.seed,
                                           paths.dataset("demos") if cfg.rank_demos else None)
    except FileNotFoundError as e:
        raise StageFailed(f"{e}; run `dvc repro collect@reward`") from None
    table.save(paths.relabeled("ranking"), meta)
    env_meta = {"continuous": fam.env.continuous, "max_episode_steps": fam.env.max_episode_steps}
    steps.save(paths.relabeled("steps"), {**meta, **env_meta, "rtg": "0 until train fills it with the learned reward"})
    oracle.save(paths.relabeled("oracle"), {**meta, **env_meta, "rtg": "the env's reward: only the oracle-filter "
                                            "reference reads it, never a candidate policy or the ranking",
                                            "ref_min_score": float(oracle.returns.min()),
                                            "ref_max_score": float(oracle.returns.max())})
    counts = {}
    for split, name, n in ((0, "pairs_train", cfg.pairs), (1, "pairs_val", cfg.val_pairs)):
        episodes = np.flatnonzero(table.split == split)
        try:
            pairs = make_pairs(table, episodes, n, cfg.snippet, params.seed + split, margin=cfg.noise_margin,
                               whole=cfg.whole_episodes)
        except ValueError as e:
            raise StageFailed(f"reward.relabel: {e}") from None
        save_pairs(paths.relabeled(name), pairs, {"split": split, "pairs": n, "snippet": cfg.snippet,
                                                  "episodes": len(episodes), "noise_margin": cfg.noise_margin,
                                                  "whole_episodes": cfg.whole_episodes})
        counts[name] = {"pairs": n, "episodes": len(episodes), "mean_count": float(pairs.count.mean()),
                        "whole_episode_pairs": int(pairs.whole.sum())}
    conditions = {"held_out": [b.name for b in fam.collect.held_out], "ranking": meta, **counts}
    write_json(paths.conditions, conditions)
    print(f"relabel (reward): {meta['episodes']} episodes at noise {meta['noise_levels']} and "
          f"{meta['demos_ranked']} demonstrations ranked; {cfg.pairs} training and {cfg.val_pairs} validation pairs "
          f"(margin {cfg.noise_margin:g}, {counts['pairs_train']['whole_episode_pairs']} whole-episode)")
    return conditions
