"""The rollout engine: run a fixed list of seeded episodes across a vector env, refilling slots as
episodes end. Every family rolls its policies out through :func:`run_episodes`, for collection,
evaluation, GIFs and ``justask ask``.

Each episode is reset with its own seed and the policy sees which episode each slot holds, so
results do not depend on the number of envs or their order. Observations may be arrays or dicts
of arrays (gymnasium ``Dict`` spaces); a policy may end an episode itself (a scripted behaviour
that reached its goal), and a rollout may cap episodes at ``max_steps``: both are recorded as
truncated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import gymnasium as gym
import numpy as np
from rich.progress import Progress

from justask.executors import run_all

if TYPE_CHECKING:
    from justask.settings import ScaleConfig

Obs = np.ndarray | dict[str, np.ndarray]  # one batch of observations (a row per slot)


@dataclass
class Episode:
    """A finished episode: ``observations`` (an array, or a dict of arrays for ``Dict`` spaces) has
    one more row than ``actions`` (the final one); ``frames`` (rendered RGB arrays, after the reset
    and after every step) only when the rollout recorded them."""

    index: int
    seed: int
    observations: Obs
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    frames: list[np.ndarray] = field(default_factory=list)

    @property
    def ret(self) -> float:
        return float(self.rewards.sum())

    def __len__(self) -> int:
        return len(self.rewards)


class BatchPolicy(Protocol):
    def start(self, slot: int, episode_index: int) -> None:
        """Episode ``episode_index`` begins in ``slot``, whose env has just been reset with its seed."""

    def act(self, obs: Obs, active: np.ndarray) -> np.ndarray:
        """Actions for every slot (values for inactive slots are ignored)."""

    def observe(self, rewards: np.ndarray, ended: np.ndarray, active: np.ndarray) -> np.ndarray | None:
        """After a step: the rewards received and the slots whose episode the env ended. Returns the
        live slots whose episode the policy ends here (recorded as truncated), or None."""


def row(obs: Obs, i: int) -> Obs:
    """Slot ``i``'s observation of a batch."""
    return {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]


def stack(rows: list[Obs]) -> Obs:
    """Observations of one slot over time, stacked (per key for dicts)."""
    if rows and isinstance(rows[0], dict):
        return {k: np.asarray([r[k] for r in rows]) for k in rows[0]}
    return np.asarray(rows)


@dataclass
class _Slot:
    episode: int = -1
    obs: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    rewards: list = field(default_factory=list)
    terms: list = field(default_factory=list)
    truncs: list = field(default_factory=list)
    frames: list = field(default_factory=list)


def run_episodes(
    envs: gym.vector.VectorEnv,
    seeds: Sequence[int],
    policy: BatchPolicy,
    on_episode: Callable[[Episode], Any] | None = None,
    record: bool = True,
    frames: int = 0,
    max_steps: int | None = None,
) -> list[Episode]:
    """Roll out ``len(seeds)`` episodes (episode i reset with ``seeds[i]``) and return them in order.

    ``envs`` must have autoreset disabled. With ``record=False`` only rewards are kept (cheaper).
    With ``frames=k`` (a ``SyncVectorEnv`` of envs made with ``render_mode="rgb_array"``) each
    episode keeps ``render()`` after its reset, after every k-th step (steps 0, k, 2k, ...) and after
    the step the env ended it on; rendering can advance an env's visual state (LunarLander ages its
    particles), so only those frames are rendered. ``max_steps`` ends every episode after that many
    steps (recorded as truncated, as when the policy ends one).
    """
    n = envs.num_envs
    queue = list(range(len(seeds)))[::-1]
    slots = [_Slot() for _ in range(n)]
    active = np.zeros(n, dtype=bool)
    done: list[Episode | None] = [None] * len(seeds)
    # Once the queue runs dry, finished slots stay idle: with a SyncVectorEnv (whose sub-envs can be
    # stepped one by one) they are no longer stepped or reset, which changes no episode.
    one_by_one = isinstance(envs, gym.vector.SyncVectorEnv)

    def refill(mask: np.ndarray, obs: Obs | None = None) -> Obs:
        reset_seeds: list[int | None] = [None] * n
        started = []
        for i in np.flatnonzero(mask):
            if queue:
                ep = queue.pop()
                slots[i] = _Slot(episode=ep)
                reset_seeds[i] = int(seeds[ep])
                active[i] = True
                started.append(i)
            else:
                active[i] = False
                slots[i] = _Slot()
        if obs is None:
            obs = envs.reset(seed=reset_seeds)[0]
        elif one_by_one and not (mask & active).any():
            return obs  # a slot that went idle is never stepped again: no need to reset it
        else:
            obs = envs.reset(seed=reset_seeds, options={"reset_mask": mask & active if one_by_one else mask})[0]
        for i in started:
            policy.start(i, slots[i].episode)
            if frames:
                slots[i].frames.append(envs.envs[i].render())
        return obs

    def capped() -> np.ndarray:
        """Slots whose episode reaches ``max_steps`` with this step."""
        return np.array([len(s.rewards) + 1 >= max_steps for s in slots])

    def step(actions: np.ndarray, obs: Obs) -> tuple:
        if not one_by_one or active.all():
            return envs.step(actions)[:4]
        # Step only the live sub-envs; idle slots keep their last observation and get no reward.
        next_obs = {k: v.copy() for k, v in obs.items()} if isinstance(obs, dict) else obs.copy()
        rewards = np.zeros(n)
        terms, truncs = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        for i in np.flatnonzero(active):
            o, rewards[i], terms[i], truncs[i], _ = envs.envs[i].step(actions[i])
            if isinstance(next_obs, dict):
                for k, v in o.items():
                    next_obs[k][i] = v
            else:
                next_obs[i] = o
        return next_obs, rewards, terms, truncs

    obs = refill(np.ones(n, dtype=bool))
    while active.any():
        actions = policy.act(obs, active)
        next_obs, rewards, terms, truncs = step(actions, obs)
        env_ended = (terms | truncs) & active
        stop = policy.observe(rewards, env_ended, active)
        if max_steps is not None:
            stop = capped() if stop is None else np.asarray(stop, dtype=bool) | capped()
        if stop is not None:
            truncs = truncs | (np.asarray(stop, dtype=bool) & active & ~terms)
        finished = (terms | truncs) & active
        for i in np.flatnonzero(active):
            s = slots[i]
            if record:
                s.obs.append(row(obs, i))
                s.actions.append(actions[i])
            s.rewards.append(rewards[i])
            s.terms.append(terms[i])
            s.truncs.append(truncs[i])
            if frames and ((len(s.rewards) - 1) % frames == 0 or env_ended[i]):
                s.frames.append(envs.envs[i].render())
        for i in np.flatnonzero(finished):
            s = slots[i]
            ep = Episode(
                index=s.episode,
                seed=int(seeds[s.episode]),
                observations=stack(s.obs + [row(next_obs, i)]) if record else np.empty(0),
                actions=np.asarray(s.actions) if record else np.empty(0),
                rewards=np.asarray(s.rewards, dtype=np.float64),
                terminations=np.asarray(s.terms, dtype=bool),
                truncations=np.asarray(s.truncs, dtype=bool),
                frames=s.frames,
            )
            done[s.episode] = ep
            if on_episode is not None:
                on_episode(ep)
        # Every env that ended is reset (in DISABLED autoreset mode it cannot be stepped again);
        # an ended slot takes the next queued episode or goes idle until all are done.
        needs_reset = terms | truncs
        obs = next_obs
        if needs_reset.any() and active.any():
            obs = refill(needs_reset, obs)
    return [e for e in done if e is not None]


def rollout_many(jobs: dict[str, list], workers: int, description: str,
                 run: Callable[[Any], tuple[int, list[Episode]]],
                 scale: ScaleConfig | None = None) -> dict[str, list[Episode]]:
    """Run every job (``workers`` at a time, on the executor ``scale`` names: see
    :mod:`justask.executors`) and reassemble each key's episodes in order.
    ``run(job) -> (first_index, episodes)`` must be a module-level function (spawned workers)."""
    parts: dict[str, dict[int, list[Episode]]] = defaultdict(dict)
    flat = [(key, job) for key, js in jobs.items() for job in js]
    total = sum(len(j.seeds) for _, j in flat)
    with Progress(transient=False) as progress:
        bar = progress.add_task(description, total=total)

        def done(i: int, result: tuple[int, list[Episode]]) -> None:
            first, eps = result
            parts[flat[i][0]][first] = eps
            progress.advance(bar, len(eps))

        run_all(run, [job for _, job in flat], workers, scale, on_result=done)
    return {key: [e for first in sorted(p) for e in p[first]] for key, p in parts.items()}
