"""Scripted behaviour rollouts in LunarLander, chunked into jobs for the executor.

A :class:`Job` is a chunk of one behaviour's episodes (plain arguments, so it runs in any
process); :func:`rollout_behaviours` runs them through the rollout engine and reassembles each
behaviour's episodes in seed order, identical for any number of workers or envs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from justask.lunar.config import EnvConfig
from justask.lunar.controllers import BehaviourPolicy
from justask.lunar.env import from_config
from justask.rollout import Episode, rollout_many, run_episodes


@dataclass(frozen=True)
class Job:
    controller: str
    epsilon: float
    seeds: tuple[int, ...]
    first_index: int
    env: EnvConfig
    num_envs: int


class BehaviourBatch:
    """Adapts a :class:`BehaviourPolicy` to the rollout engine: one random stream per episode."""

    def __init__(self, policy: BehaviourPolicy, seeds: tuple[int, ...], num_envs: int):
        self.policy, self.seeds = policy, seeds
        self.rngs = [np.random.default_rng(0)] * num_envs

    def start(self, slot: int, episode_index: int) -> None:
        self.rngs[slot] = episode_rng(self.seeds[episode_index])

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        return self.policy.act(obs, self.rngs)

    def observe(self, rewards: np.ndarray, ended: np.ndarray, active: np.ndarray) -> None:
        pass


def episode_rng(seed: int) -> np.random.Generator:
    """The random stream of a behaviour's episode reset with ``seed`` (its epsilon-random actions)."""
    return np.random.default_rng([seed, 7])


def run_job(job: Job) -> tuple[int, list[Episode]]:
    """Roll out one chunk of a behaviour's episodes (runs in a worker process)."""
    n = min(job.num_envs, len(job.seeds))
    envs = from_config(job.env, n)
    policy = BehaviourPolicy(job.controller, job.epsilon, envs.single_action_space, job.env.continuous)
    episodes = run_episodes(envs, job.seeds, BehaviourBatch(policy, job.seeds, n))
    envs.close()
    return job.first_index, episodes


def chunk_jobs(controller: str, epsilon: float, seeds: list[int], env: EnvConfig, workers: int,
               num_envs: int) -> list[Job]:
    """A behaviour's episodes split into one job per worker (at least one vector env's worth each)."""
    per_chunk = max(num_envs, -(-len(seeds) // workers))
    return [
        Job(controller, epsilon, tuple(seeds[i:i + per_chunk]), i, env, num_envs)
        for i in range(0, len(seeds), per_chunk)
    ]


def rollout_behaviours(jobs: dict[str, list[Job]], workers: int, description: str,
                       scale=None) -> dict[str, list[Episode]]:
    """Run scripted-behaviour jobs in ``workers`` processes (on the executor ``scale`` names);
    each key's episodes in seed order."""
    return rollout_many(jobs, workers, description, run_job, scale)
