"""The learning histories as arrays, read from collect's Minari dataset and checked: every episode
belongs to one history of one training goal, histories are whole and in the learner's order, and
every reward is the one the goal gives. What validate checks besides the shared suite, and what
relabel builds its contexts from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from justask.datasets import iter_episodes, load_storage, read_metadata
from justask.errors import DatasetError
from justask.executors import run_all
from justask.seeding import stream_seeds

from .env import reward
from .goals import training_goals
from .learner import History

FIX = "re-collect with `dvc repro collect@improve`"


@dataclass(frozen=True)
class Histories:
    """``cells`` (N, E, H + 1, 2), ``actions`` and ``rewards`` (N, E, H), ``goals`` (N, 2): N
    histories of E consecutive episodes of H steps."""

    cells: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    goals: np.ndarray

    def __len__(self) -> int:
        return len(self.goals)

    @classmethod
    def stack(cls, histories: list[History]) -> Histories:
        """The learner's runs (:func:`.learner.learn`), all of the same length, as one set."""
        return cls(np.stack([h.cells for h in histories]), np.stack([h.actions for h in histories]),
                   np.stack([h.rewards for h in histories]), np.asarray([h.goal for h in histories], np.int64))


def history_tasks(params) -> list[tuple[tuple[int, int], int]]:
    """(goal, seed) of every history collect runs: ``histories_per_goal`` per training goal, seeded
    from the ``improve/collect`` stream (evaluation checks its seeds against these)."""
    fam = params.family("improve")
    goals = [g for g in training_goals(fam.env) for _ in range(fam.collect.histories_per_goal)]
    return list(zip(goals, stream_seeds(params.seed, "improve/collect", len(goals)), strict=True))


def _listed(meta: dict, key: str, n: int, where: str) -> list:
    try:
        values = json.loads(meta[key])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise DatasetError(f"{where}: metadata key {key!r} missing or not a JSON list; {FIX}") from None
    if not isinstance(values, list) or len(values) != n:
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise DatasetError(f"{where}: metadata {key!r} lists {got} entries for {n} episodes; {FIX}")
    return values


def _read_steps(job: tuple[Path, range]) -> tuple[np.ndarray, ...]:
    """Episodes ``ids`` of the dataset: their lengths, and their observations, actions and rewards
    concatenated (one pool job of :func:`read_histories`)."""
    path, ids = job
    eps = list(iter_episodes(path, ids))
    return (np.array([len(e["actions"]) for e in eps]), *(np.concatenate([e[k] for e in eps])
                                                          for k in ("observations", "actions", "rewards")))


def read_histories(path: Path, env_cfg, episodes: int, workers: int = 1, scale=None) -> Histories:
    """The dataset at ``path`` as :class:`Histories` of ``episodes`` episodes each (``env_cfg``: the
    family's ``env`` section). :class:`DatasetError` naming the file, the episode and the fix when a
    history is cut short or out of order, an episode's goal is held out or off the training goals,
    or its rewards are not the ones its goal gives. ``workers`` processes read ranges of episodes
    (:func:`justask.executors.run_all`; reading 30,000 small HDF5 episodes is most of the cost)."""
    path = Path(path)
    meta = read_metadata(path)
    n = load_storage(path).total_episodes
    parts = max(1, min(n, 4 * workers))  # a few ranges per worker: even loads
    bounds = np.linspace(0, n, parts + 1).astype(int)
    chunks = run_all(_read_steps, [(path, range(lo, hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)],
                     workers, scale)
    lengths = np.concatenate([c[0] for c in chunks])
    n, horizon = len(lengths), env_cfg.max_episode_steps
    goals = _listed(meta, "goals", n, str(path))
    history = _listed(meta, "history", n, str(path))
    index = _listed(meta, "learner_episode", n, str(path))
    if n % episodes:
        raise DatasetError(f"{path}: {n} episodes do not split into histories of collect.episodes = {episodes}; {FIX}")
    want_history = np.repeat(np.arange(n // episodes), episodes)
    want_index = np.tile(np.arange(episodes), n // episodes)
    bad = np.flatnonzero((np.asarray(history) != want_history) | (np.asarray(index) != want_index))
    if len(bad):
        i = int(bad[0])
        raise DatasetError(f"{path}: episode {i} is history {history[i]}, learner episode {index[i]}; expected "
                           f"history {want_history[i]}, episode {want_index[i]} (histories must be whole and in "
                           f"order); {FIX}")
    allowed = set(training_goals(env_cfg))
    for i, g in enumerate(goals):
        if tuple(g) not in allowed:
            held = tuple(g) in {tuple(h) for h in env_cfg.held_out_goals}
            why = "a held-out goal: it must never reach training" if held else "not a training goal of this env"
            raise DatasetError(f"{path}: episode {i} was collected on goal {g}, {why}; {FIX}")
        if i % episodes and g != goals[i - 1]:
            raise DatasetError(f"{path}: episode {i} changes goal within history {history[i]}; {FIX}")
    if set(lengths.tolist()) != {horizon}:
        raise DatasetError(f"{path}: episode lengths {sorted(set(lengths.tolist()))}; every Dark Room episode lasts "
                           f"env.max_episode_steps = {horizon} steps; {FIX}")
    shape = (n // episodes, episodes)
    cells = np.concatenate([c[1] for c in chunks]).round().astype(np.int64).reshape(*shape, horizon + 1, 2)
    actions = np.concatenate([c[2] for c in chunks]).astype(np.int64).reshape(*shape, horizon)
    rewards = np.concatenate([c[3] for c in chunks]).astype(np.float32).reshape(*shape, horizon)
    hist_goals = np.asarray(goals, np.int64).reshape(*shape, 2)[:, 0]
    wrong = np.argwhere(reward(cells[:, :, 1:], hist_goals[:, None, None, :]) != rewards)
    if len(wrong):
        h, e, t = map(int, wrong[0])
        raise DatasetError(f"{path}: history {h}, episode {e}, step {t}: reward {rewards[h, e, t]:g} is not what goal "
                           f"{hist_goals[h].tolist()} gives at cell {cells[h, e, t + 1].tolist()}; {FIX}")
    return Histories(cells, actions, rewards, hist_goals)
