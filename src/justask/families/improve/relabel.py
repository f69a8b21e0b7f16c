"""relabel (improve): the learning histories as across-episode contexts.

Three folders under ``artifacts/improve/relabel/``, each one sequence per history (a seeded
``val_fraction`` of the histories held out for the validation loss, the same ones in all):

* ``histories/``: Algorithm Distillation's data, every ``skip``-th episode of each history in the
  learner's order (``skip: 1`` keeps them all), so a window shows attempts getting better;
* ``hindsight/``: the same contexts as ``histories/``, each action label relabeled in hindsight
  once its sequence has earned a reward: from then on an optimal action for the history's goal
  (:func:`justask.families.improve.contexts.hindsight_labels`; before, the learner's own);
* ``experts/``: expert distillation's, only each history's last ``expert_episodes`` episodes,
  where the learner has converged: the same kind of context with no improvement in it.

Before writing, the goals of every sequence are checked against the held-out goals: a held-out goal
never reaches training (:func:`justask.families.improve.goals.check_goal_split`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from justask.config import Params
from justask.datasets import split_mask
from justask.errors import DatasetError, StageFailed
from justask.paths import family_paths
from justask.seeding import stream_seeds

from .contexts import build_contexts, hindsight_labels, kept_episodes
from .goals import check_goal_split
from .histories import read_histories


def relabel(params: Params, root: Path = Path(".")) -> dict:
    fam = params.family("improve")
    cfg, env_cfg = fam.relabel, fam.env
    paths = family_paths("improve", root)
    try:
        h = read_histories(paths.dataset("histories"), env_cfg, fam.collect.episodes, params.scale.workers,
                           params.scale)
    except DatasetError as e:
        raise StageFailed(str(e)) from None
    episodes = fam.collect.episodes
    held = [tuple(g) for g in env_cfg.held_out_goals]
    check_goal_split(sorted({tuple(g) for g in h.goals.tolist()}), held, env_cfg.size)
    split = split_mask(len(h), cfg.val_fraction, params.seed).astype(np.int8)
    if split.all() or not split.any():
        raise StageFailed(f"families.improve.relabel.val_fraction ({cfg.val_fraction}) leaves no "
                          f"{'training' if split.all() else 'validation'} history among {len(h)}; "
                          "change it or collect more histories")
    meta = {"size": env_cfg.size, "horizon": env_cfg.max_episode_steps, "histories": len(h),
            "validation_histories": int(split.sum())}
    kept = kept_episodes(episodes, cfg.skip)
    final = np.arange(episodes - cfg.expert_episodes, episodes)
    for name, which in (("histories", kept), ("hindsight", kept), ("experts", final)):
        ctx = build_contexts(h, which, split, env_cfg.size)
        if name == "hindsight":
            rng = np.random.default_rng(stream_seeds(params.seed, "improve/hindsight-labels", 1)[0])
            ctx.actions = hindsight_labels(ctx, env_cfg.size, rng)
        ctx.save(paths.relabeled(name), {**meta, "episodes_per_sequence": len(which), "steps": len(ctx)})
    summary = {**meta, "kept_episodes": len(kept), "expert_episodes": len(final)}
    print(f"relabel (improve): {len(h)} histories ({summary['validation_histories']} for validation); AD contexts of "
          f"{len(kept)} episodes per history (skip {cfg.skip}; also with hindsight labels), expert distillation's "
          f"of the last {len(final)}")
    return summary
