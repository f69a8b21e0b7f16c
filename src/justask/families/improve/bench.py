"""The improve family's workloads for ``justask bench``: the source learner writing its histories
(against Dark Room stepped at random), and the in-context model's training (see
:mod:`justask.bench`)."""

from __future__ import annotations

from functools import partial

import numpy as np

from justask.bench.collection import CollectionCase
from justask.bench.training import TrainingCase

RECORDED_DEFAULT_SECONDS = 25 * 60 + 40  # the recorded default run (README, "Improve results"), not alone


def _goals(settings) -> list[tuple[int, int]]:
    from .goals import training_goals

    goals = training_goals(settings.params.family("improve").env)
    return goals[:4] if settings.quick else goals


def collection_cases(settings, folder) -> list[CollectionCase]:
    """One history per training goal (four with ``--quick``), as collect runs them, against the
    same number of random steps of the gymnasium env."""
    from .env import make_env
    from .learner import learn

    fam = settings.params.family("improve")
    env_cfg, cfg = fam.env, fam.collect
    episodes = 10 if settings.quick else cfg.episodes
    goals = _goals(settings)

    def collect() -> int:
        return sum(learn(g, env_cfg.size, env_cfg.max_episode_steps, episodes, cfg.learner, i).actions.size
                   for i, g in enumerate(goals))

    def raw(steps: int) -> int:
        env = make_env(env_cfg, goals[0])
        rng = np.random.default_rng(0)
        env.reset(seed=0)
        for _ in range(steps):
            _, _, _, truncated, _ = env.step(int(rng.integers(5)))
            if truncated:
                env.reset()
        env.close()
        return steps

    what = f"the source learner (planning {cfg.learner.planning}): {len(goals)} histories x {episodes} episodes"
    return [CollectionCase("improve", "improve (Dark Room, learning histories)", collect, raw, what, 1)]


def training_cases(settings, device, val_rows: int = 64) -> list[TrainingCase]:
    """``ad``, ``hindsight`` and ``ed`` as train fits them, on contexts relabeled from freshly learned histories
    (every training goal; four with ``--quick``)."""
    from justask.datasets import split_mask

    from .contexts import Windows, build_contexts, hindsight_labels, kept_episodes
    from .histories import Histories
    from .learner import learn
    from .model import RoomSpec, candidate

    fam = settings.params.family("improve")
    env_cfg, cfg, rel = fam.env, fam.collect, fam.relabel
    episodes = 12 if settings.quick else cfg.episodes
    hs = [learn(g, env_cfg.size, env_cfg.max_episode_steps, episodes, cfg.learner, i)
          for i, g in enumerate(_goals(settings) * 2)]
    h = Histories.stack(hs)
    split = split_mask(len(h), 0.25, settings.params.seed).astype(np.int8)
    expert = min(rel.expert_episodes, episodes - 1)
    kept = kept_episodes(episodes, min(rel.skip, episodes))
    which = {"histories": kept, "hindsight": kept, "experts": np.arange(episodes - expert, episodes)}
    spec = RoomSpec(env_cfg.size, env_cfg.max_episode_steps)
    hp, tokens = fam.train.model.hp, fam.train.model.context_episodes * env_cfg.max_episode_steps
    out = []
    for name, data in fam.train.models.items():
        ctx = build_contexts(h, which[data], split, env_cfg.size)
        if data == "hindsight":
            ctx.actions = hindsight_labels(ctx, env_cfg.size, np.random.default_rng(settings.params.seed))
        out.append(TrainingCase(f"improve/{name}", hp, partial(candidate, spec), Windows(ctx, 0, device),
                                Windows(ctx, 1, device, max_rows=val_rows), tokens))
    return out
