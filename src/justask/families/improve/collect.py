"""collect (improve): the source learner's whole learning history on every training goal.

``histories_per_goal`` histories per training goal (every cell but the start and the held-out
goals), each ``episodes`` consecutive episodes of tabular Q-learning from scratch, written in order
as one Minari dataset ``artifacts/improve/collect/histories/``: one episode per row, history by
history. The metadata lists, per episode, its ``goals`` (the task), ``history`` and
``learner_episode`` (its index in the learner's run). Held-out goals are never run here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from justask.config import Params
from justask.datasets import write_dataset
from justask.io import write_json
from justask.paths import family_paths
from justask.rollout import Episode

from .env import make_env
from .goals import best_return, training_goals
from .histories import history_tasks
from .learner import History, learn_all


def history_episodes(h: History, first_index: int) -> list[Episode]:
    """One history as consecutive episodes (time-limit endings, no terminations)."""
    n, horizon = h.actions.shape
    truncations = np.zeros(horizon, bool)
    truncations[-1] = True
    return [Episode(first_index + e, h.seed, h.cells[e].astype(np.float32), h.actions[e], h.rewards[e],
                    np.zeros(horizon, bool), truncations) for e in range(n)]


def collect(params: Params, root: Path = Path(".")) -> dict:
    fam = params.family("improve")
    env_cfg, cfg = fam.env, fam.collect
    paths = family_paths("improve", root)
    t0 = time.perf_counter()
    goals = training_goals(env_cfg)
    histories = learn_all(history_tasks(params), env_cfg.size, env_cfg.max_episode_steps, cfg.episodes, cfg.learner,
                          params.scale.workers, params.scale)
    episodes = [ep for i, h in enumerate(histories) for ep in history_episodes(h, i * cfg.episodes)]
    write_dataset(paths.dataset("histories"), episodes, make_env(env_cfg), {
        "dataset_id": "justask/darkroom/learning-histories-v0",
        "algorithm_name": "tabular Q-learning from scratch, optimistic init, epsilon-greedy",
        "goals": json.dumps([list(h.goal) for h in histories for _ in range(cfg.episodes)]),
        "history": json.dumps([i for i in range(len(histories)) for _ in range(cfg.episodes)]),
        "learner_episode": json.dumps([e for _ in histories for e in range(cfg.episodes)])})
    curve = np.mean([h.returns for h in histories], axis=0)
    optimal = float(np.mean([best_return(g, env_cfg.size, env_cfg.max_episode_steps) for g in goals]))
    k = max(1, cfg.episodes // 10)
    summary = {"histories": len(histories), "episodes": len(episodes), "training_goals": len(goals),
               "held_out_goals": len(env_cfg.held_out_goals), "optimal_return": round(optimal, 4),
               "learner_first_return": round(float(curve[:k].mean()), 4),
               "learner_final_return": round(float(curve[-k:].mean()), 4)}
    write_json(paths.collect_summary, summary)
    print(f"collect (improve): {len(histories)} histories x {cfg.episodes} episodes on {len(goals)} training goals; "
          f"the learner's return {summary['learner_first_return']:.1f} (first {k} episodes) -> "
          f"{summary['learner_final_return']:.1f} (last {k}); optimal {optimal:.1f} "
          f"({time.perf_counter() - t0:.0f}s)")
    return summary
