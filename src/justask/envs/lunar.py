"""LunarLander behaviour policies of graded, *consistent* quality.

All controllers share the structure of gymnasium's heuristic lander (steer the angle towards the
pad, hold a hover height proportional to the horizontal offset, damp velocities) and differ in
systematically wrong gains, targets or thresholds. Each behaves the same way every episode, so a
policy conditioned on return can tell them apart; epsilon-random noise on an expert cannot show
that, because BC's argmax removes it.

Observation layout (gymnasium docs): x, y, vx, vy, angle, angular velocity, left leg, right leg.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

from justask.envs.runner import Episode, rollout_many, run_episodes

if TYPE_CHECKING:
    from justask.config import EnvConfig


@dataclass(frozen=True)
class Gains:
    """Gains of the heuristic controller (defaults: gymnasium's heuristic lander)."""

    angle_x: float = 0.5  # aim the body towards the pad: weight of horizontal offset...
    angle_vx: float = 1.0  # ...and of horizontal speed
    angle_max: float = 0.4  # clip of the target angle (radians)
    hover_x: float = 0.55  # target height per unit of horizontal offset
    hover_offset: float = 0.0  # extra target height: > 0 hovers instead of landing
    k_angle: float = 0.5
    k_spin: float = 1.0
    k_height: float = 0.5
    k_vy: float = 0.5
    threshold: float = 0.05  # dead band before an engine fires


EXPERT = Gains()

# Name -> (gains, what is wrong with it). Mean returns on LunarLander-v3 (discrete) are measured
# by the collect stage and written to the dataset's metadata; see README for the figures.
CONTROLLERS: dict[str, tuple[Gains | None, str]] = {
    "expert": (EXPERT, "gymnasium's heuristic lander"),
    "hoverer": (replace(EXPERT, hover_offset=0.25), "holds altitude above the pad until time runs out"),
    "overcorrector": (replace(EXPERT, k_angle=3.0, k_spin=0.3), "attitude gain far too high, weak damping"),
    "sloppy": (replace(EXPERT, threshold=0.25), "wide dead band: fires engines late"),
    "lazy": (replace(EXPERT, k_height=0.2, k_vy=0.2), "weak height control: lands hard"),
    "drifter": (replace(EXPERT, angle_x=0.0, angle_vx=0.2), "ignores horizontal offset: lands off the pad"),
    "random": (None, "uniformly random actions"),
}


def controller_actions(obs: np.ndarray, gains: Gains, continuous: bool) -> np.ndarray:
    """Vectorised heuristic: actions for a batch of observations ``obs`` of shape (n, 8)."""
    s = obs
    angle_targ = np.clip(s[:, 0] * gains.angle_x + s[:, 2] * gains.angle_vx, -gains.angle_max, gains.angle_max)
    hover_targ = gains.hover_x * np.abs(s[:, 0]) + gains.hover_offset
    angle_todo = (angle_targ - s[:, 4]) * gains.k_angle - s[:, 5] * gains.k_spin
    hover_todo = (hover_targ - s[:, 1]) * gains.k_height - s[:, 3] * gains.k_vy
    legs = (s[:, 6] > 0) | (s[:, 7] > 0)
    angle_todo = np.where(legs, 0.0, angle_todo)
    hover_todo = np.where(legs, -s[:, 3] * gains.k_vy, hover_todo)
    if continuous:
        a = np.stack([hover_todo * 20 - 1, -angle_todo * 20], axis=1)
        return np.clip(a, -1, 1).astype(np.float32)
    th = gains.threshold
    a = np.zeros(len(s), dtype=np.int64)
    a = np.where(angle_todo > th, 1, a)
    a = np.where(angle_todo < -th, 3, a)
    return np.where((hover_todo > np.abs(angle_todo)) & (hover_todo > th), 2, a)


def make_env(env_id: str = "LunarLander-v3", continuous: bool = False, max_episode_steps: int = 1000,
             render_mode: str | None = None) -> gym.Env:
    """One environment instance with the configured time limit."""
    return gym.make(env_id, continuous=continuous, max_episode_steps=max_episode_steps, render_mode=render_mode)


def make_vector_env(num_envs: int, env_id: str = "LunarLander-v3", continuous: bool = False,
                    max_episode_steps: int = 1000) -> gym.vector.SyncVectorEnv:
    """A synchronous vector env with autoreset disabled: callers reset finished slots with
    explicit per-episode seeds (gymnasium 1.x's autoreset would pick seeds itself)."""
    return gym.vector.SyncVectorEnv(
        [lambda: make_env(env_id, continuous, max_episode_steps) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.DISABLED,
    )


class BehaviourPolicy:
    """A controller with epsilon-random actions; randomness comes from per-episode generators so
    an episode's actions depend only on its own seed, not on how episodes are batched."""

    def __init__(self, controller: str, epsilon: float, action_space: gym.Space, continuous: bool):
        self.gains = CONTROLLERS[controller][0]
        self.epsilon = epsilon
        self.continuous = continuous
        self.action_space = action_space

    def _random(self, rng: np.random.Generator) -> np.ndarray | int:
        if self.continuous:
            return rng.uniform(-1, 1, size=self.action_space.shape).astype(np.float32)
        return int(rng.integers(self.action_space.n))

    def act(self, obs: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
        if self.gains is None:
            return np.array([self._random(r) for r in rngs])
        actions = controller_actions(obs, self.gains, self.continuous)
        if self.epsilon > 0:
            for i, rng in enumerate(rngs):
                if rng.random() < self.epsilon:
                    actions[i] = self._random(rng)
        return actions


# --------------------------------------------------------------------------- parallel rollouts

@dataclass(frozen=True)
class Job:
    controller: str
    epsilon: float
    seeds: tuple[int, ...]
    first_index: int
    env: EnvConfig
    num_envs: int


class _BehaviourBatch:
    """Adapts a :class:`BehaviourPolicy` to the runner: one random stream per episode."""

    def __init__(self, policy: BehaviourPolicy, seeds: tuple[int, ...], num_envs: int):
        self.policy, self.seeds = policy, seeds
        self.rngs = [np.random.default_rng(0)] * num_envs

    def start(self, slot: int, episode_index: int) -> None:
        self.rngs[slot] = np.random.default_rng([self.seeds[episode_index], 7])

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        return self.policy.act(obs, self.rngs)

    def observe(self, rewards: np.ndarray, active: np.ndarray) -> None:
        pass


def run_job(job: Job) -> tuple[int, list[Episode]]:
    """Roll out one chunk of a behaviour's episodes (runs in a worker process)."""
    n = min(job.num_envs, len(job.seeds))
    envs = make_vector_env(n, job.env.id, job.env.continuous, job.env.max_episode_steps)
    policy = BehaviourPolicy(job.controller, job.epsilon, envs.single_action_space, job.env.continuous)
    episodes = run_episodes(envs, job.seeds, _BehaviourBatch(policy, job.seeds, n))
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


# --------------------------------------------------------------------------- the reward family's clone
# Here rather than in the reward collect stage so that a spawned worker imports only this module
# and what the clone needs (torch, the model code), not the stage's training and tracking stack.

@dataclass(frozen=True)
class CloneJob:
    checkpoint: str
    epsilon: float
    seeds: tuple[int, ...]
    first_index: int
    env: EnvConfig
    num_envs: int


class _NoisyClone:
    """The clone's greedy action, replaced by a uniformly random one with probability epsilon
    (one random stream per episode, so an episode depends only on its own seed)."""

    def __init__(self, model, epsilon: float, seeds: tuple[int, ...], num_envs: int, n_actions: int):
        import torch

        from justask.evaluate import ConditionedRollout

        self.inner = ConditionedRollout(model, num_envs, np.zeros(len(seeds)), torch.device("cpu"))
        self.epsilon, self.seeds, self.n_actions = epsilon, seeds, n_actions
        self.rngs = [np.random.default_rng(0)] * num_envs

    def start(self, slot: int, episode_index: int) -> None:
        self.inner.start(slot, episode_index)
        self.rngs[slot] = np.random.default_rng([self.seeds[episode_index], 7])

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        actions = self.inner.act(obs, active)
        for i in np.flatnonzero(active):
            if self.rngs[i].random() < self.epsilon:
                actions[i] = self.rngs[i].integers(self.n_actions)
        return actions

    def observe(self, rewards: np.ndarray, active: np.ndarray) -> None:
        self.inner.observe(rewards, active)


def run_clone_job(job: CloneJob) -> tuple[int, list[Episode]]:
    """Roll out one chunk of a noise level's episodes (runs in a worker process)."""
    from pathlib import Path

    import torch

    from justask.models import load_checkpoint

    torch.set_num_threads(1)  # one small forward pass per env step
    model, _ = load_checkpoint(Path(job.checkpoint))
    n = min(job.num_envs, len(job.seeds))
    envs = make_vector_env(n, job.env.id, job.env.continuous, job.env.max_episode_steps)
    policy = _NoisyClone(model, job.epsilon, job.seeds, n, int(envs.single_action_space.n))
    with torch.no_grad():
        episodes = run_episodes(envs, job.seeds, policy)
    envs.close()
    return job.first_index, episodes
