"""The source learner: tabular Q-learning on one Dark Room task, from scratch, for a number of
consecutive episodes. Its whole learning history is the data Algorithm Distillation learns from.

Optimistic initial values make it sweep the room before it has seen a reward; an epsilon-greedy
choice (ties broken at random) with epsilon decaying linearly keeps it trying. Episodes end at the
time limit only, so each update bootstraps from the next cell's value. With ``planning > 0`` it is
Dyna-Q (Sutton, 1990): after each real step, that many Q-learning updates on transitions it has
already seen, replayed from its memory of the (deterministic) room, so what one step found spreads
through its values at once instead of one cell per episode."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from justask.executors import run_all

from .env import ACTIONS, move, reward
from .goals import start_cell


@dataclass(frozen=True)
class History:
    """``episodes`` consecutive episodes of one learner on one goal: ``cells`` (E, H + 1, 2) with the
    final cell of each episode, ``actions`` and ``rewards`` (E, H)."""

    goal: tuple[int, int]
    seed: int
    cells: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray

    @property
    def returns(self) -> np.ndarray:
        return self.rewards.sum(axis=1)


def epsilon_at(episode: int, cfg) -> float:
    """The exploration rate of ``episode`` (0-based) under the learner settings ``cfg``."""
    frac = min(episode / cfg.decay_episodes, 1.0)
    return cfg.epsilon + frac * (cfg.epsilon_final - cfg.epsilon)


def learn(goal: tuple[int, int], size: int, horizon: int, episodes: int, cfg, seed: int) -> History:
    """Run Q-learning (settings ``cfg``: a ``LearnerConfig``) on ``goal`` for ``episodes`` episodes."""
    rng = np.random.default_rng([seed, 11])
    q = np.full((size, size, ACTIONS), cfg.init, dtype=np.float64)
    goal_arr = np.asarray(goal, np.int64)
    cells = np.empty((episodes, horizon + 1, 2), np.int64)
    actions = np.empty((episodes, horizon), np.int64)
    rewards = np.empty((episodes, horizon), np.float32)
    seen: dict[tuple[int, int, int], tuple[int, int, float]] = {}  # Dyna-Q's model: (cell, action) -> (next, reward)
    keys: list[tuple[int, int, int]] = []  # the keys of ``seen`` in the order first seen (what planning draws from)
    for e in range(episodes):
        eps = epsilon_at(e, cfg)
        cell = np.array(start_cell(size), np.int64)
        cells[e, 0] = cell
        for t in range(horizon):
            values = q[cell[0], cell[1]]
            if rng.random() < eps:
                a = int(rng.integers(ACTIONS))
            else:
                a = int(rng.choice(np.flatnonzero(values == values.max())))
            nxt = move(cell, a, size)
            r = float(reward(nxt, goal_arr))
            target = r + cfg.gamma * q[nxt[0], nxt[1]].max()
            q[cell[0], cell[1], a] += cfg.lr * (target - q[cell[0], cell[1], a])
            if cfg.planning:
                key = (int(cell[0]), int(cell[1]), a)
                if key not in seen:
                    keys.append(key)
                seen[key] = (int(nxt[0]), int(nxt[1]), r)
                for j in rng.integers(len(keys), size=cfg.planning):
                    (pr, pc, pa), (nr, nc, rr) = keys[j], seen[keys[j]]
                    q[pr, pc, pa] += cfg.lr * (rr + cfg.gamma * q[nr, nc].max() - q[pr, pc, pa])
            actions[e, t], rewards[e, t] = a, r
            cells[e, t + 1] = cell = nxt
    return History(tuple(goal), seed, cells, actions, rewards)


def _learn_chunk(job: tuple) -> list[History]:
    tasks, size, horizon, episodes, cfg = job
    return [learn(goal, size, horizon, episodes, cfg, seed) for goal, seed in tasks]


def learn_all(tasks: list[tuple[tuple[int, int], int]], size: int, horizon: int, episodes: int, cfg,
              workers: int = 1, scale=None) -> list[History]:
    """:func:`learn` on every (goal, seed) of ``tasks``, in chunks over ``workers`` processes
    (:func:`justask.executors.run_all`); the histories in task order, each the same wherever it ran."""
    n = max(1, min(len(tasks), 4 * workers))  # a few chunks per worker: even loads
    bounds = np.linspace(0, len(tasks), n + 1).astype(int)
    jobs = [(tasks[lo:hi], size, horizon, episodes, cfg) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    return [h for chunk in run_all(_learn_chunk, jobs, workers, scale) for h in chunk]
