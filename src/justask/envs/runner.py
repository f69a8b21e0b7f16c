"""Run a fixed list of seeded episodes across a vector env, refilling slots as episodes end.

Shared by collection and evaluation. Each episode is reset with its own seed and the policy sees
which episode each slot holds, so results do not depend on the number of envs or their order.
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
    from justask.config import ScaleConfig


@dataclass
class Episode:
    """A finished episode: ``observations`` has one more row than ``actions`` (the final one)."""

    index: int
    seed: int
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray

    @property
    def ret(self) -> float:
        return float(self.rewards.sum())

    def __len__(self) -> int:
        return len(self.rewards)


class BatchPolicy(Protocol):
    def start(self, slot: int, episode_index: int) -> None:
        """A new episode begins in ``slot``."""

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Actions for every slot (values for inactive slots are ignored)."""

    def observe(self, rewards: np.ndarray, active: np.ndarray) -> None:
        """Rewards just received (for return-to-go bookkeeping)."""


@dataclass
class _Slot:
    episode: int = -1
    obs: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    rewards: list = field(default_factory=list)
    terms: list = field(default_factory=list)
    truncs: list = field(default_factory=list)


def run_episodes(
    envs: gym.vector.VectorEnv,
    seeds: Sequence[int],
    policy: BatchPolicy,
    on_episode: Callable[[Episode], Any] | None = None,
    record: bool = True,
) -> list[Episode]:
    """Roll out ``len(seeds)`` episodes (episode i reset with ``seeds[i]``) and return them in order.

    ``envs`` must have autoreset disabled. With ``record=False`` only rewards are kept (cheaper).
    """
    n = envs.num_envs
    queue = list(range(len(seeds)))[::-1]
    slots = [_Slot() for _ in range(n)]
    active = np.zeros(n, dtype=bool)
    done: list[Episode | None] = [None] * len(seeds)

    def refill(mask: np.ndarray, obs: np.ndarray | None = None) -> np.ndarray:
        reset_seeds: list[int | None] = [None] * n
        for i in np.flatnonzero(mask):
            if queue:
                ep = queue.pop()
                slots[i] = _Slot(episode=ep)
                reset_seeds[i] = int(seeds[ep])
                active[i] = True
                policy.start(i, ep)
            else:
                active[i] = False
                slots[i] = _Slot()
        if obs is None:
            return envs.reset(seed=reset_seeds)[0]
        if skip_idle:  # a slot that went idle is never stepped again: no need to reset it
            mask = mask & active
            if not mask.any():
                return obs
        return envs.reset(seed=reset_seeds, options={"reset_mask": mask})[0]

    def step(actions: np.ndarray, obs: np.ndarray) -> tuple[np.ndarray, ...]:
        if not skip_idle or active.all():
            return envs.step(actions)[:4]
        # Step only the live sub-envs; idle slots keep their last observation and get no reward.
        next_obs, rewards = obs.copy(), np.zeros(n)
        terms, truncs = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        for i in np.flatnonzero(active):
            next_obs[i], rewards[i], terms[i], truncs[i], _ = envs.envs[i].step(actions[i])
        return next_obs, rewards, terms, truncs

    # Once the queue runs dry, finished slots stay idle: with a SyncVectorEnv (whose sub-envs can be
    # stepped one by one) they are no longer stepped or reset, which changes no episode.
    skip_idle = (isinstance(envs, gym.vector.SyncVectorEnv)
                 and isinstance(envs.single_observation_space, gym.spaces.Box))
    obs = refill(np.ones(n, dtype=bool))
    while active.any():
        actions = policy.act(obs, active)
        next_obs, rewards, terms, truncs = step(actions, obs)
        policy.observe(rewards, active)
        finished = (terms | truncs) & active
        for i in np.flatnonzero(active):
            s = slots[i]
            if record:
                s.obs.append(obs[i])
                s.actions.append(actions[i])
            s.rewards.append(rewards[i])
            s.terms.append(terms[i])
            s.truncs.append(truncs[i])
        for i in np.flatnonzero(finished):
            s = slots[i]
            ep = Episode(
                index=s.episode,
                seed=int(seeds[s.episode]),
                observations=np.asarray(s.obs + [next_obs[i]]) if record else np.empty(0),
                actions=np.asarray(s.actions) if record else np.empty(0),
                rewards=np.asarray(s.rewards, dtype=np.float64),
                terminations=np.asarray(s.terms, dtype=bool),
                truncations=np.asarray(s.truncs, dtype=bool),
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
