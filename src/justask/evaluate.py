"""Roll trained policies out on held-out env seeds, asking each episode for a target return.

The policy keeps, per vector-env slot, the last K (state, action, return-to-go, timestep) entries;
the return-to-go starts at the episode's target and is decremented by every reward received, or,
for a policy trained on a *learned* reward (the ``reward`` family), by that reward of each state
it acted in: the env's reward is never seen then.
All slots are stepped together, one batched forward pass per env step.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from justask.envs.lunar import make_vector_env
from justask.envs.runner import Episode, run_episodes
from justask.executors import run_all
from justask.models import load_checkpoint
from justask.models.common import MIN_ROWS
from justask.stages import StageFailed


def acting_rows(active: np.ndarray) -> np.ndarray:
    """Slots to run the model on: the live ones, topped up with idle ones to ``MIN_ROWS`` (all
    slots if there are no more), so that a slot's greedy action is the one a pass over all slots
    gives (see :data:`justask.models.common.MIN_ROWS`)."""
    live = np.flatnonzero(active)
    if len(live) >= MIN_ROWS or len(active) <= MIN_ROWS:
        return live if len(live) >= MIN_ROWS else np.arange(len(active))
    idle = np.flatnonzero(~active)
    return np.sort(np.concatenate([live, idle[:MIN_ROWS - len(live)]]))


class ConditionedRollout:
    """Batch policy for :func:`run_episodes` around a trained model."""

    def __init__(self, model, num_envs: int, targets: np.ndarray, device: torch.device,
                 reward_fn: Callable[[np.ndarray], np.ndarray] | None = None):
        spec, k = model.spec, model.context
        self.reward_fn = reward_fn
        self.model, self.targets, self.device = model, np.asarray(targets, dtype=np.float32), device
        self.discrete = spec.discrete
        self.obs = np.zeros((num_envs, k, spec.obs_dim), np.float32)
        self.actions = np.zeros((num_envs, k) if spec.discrete else (num_envs, k, spec.act_dim),
                                np.int64 if spec.discrete else np.float32)
        self.rtg = np.zeros((num_envs, k), np.float32)
        self.t = np.zeros((num_envs, k), np.int64)
        self.mask = np.zeros((num_envs, k), bool)
        self.step = np.zeros(num_envs, np.int64)
        self.remaining = np.zeros(num_envs, np.float32)

    def start(self, slot: int, episode_index: int) -> None:
        for a in (self.obs, self.actions, self.rtg, self.t, self.mask):
            a[slot] = 0
        self.step[slot] = 0
        self.remaining[slot] = self.targets[episode_index]

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        # Slide each window left by one and append the current step.
        for a in (self.obs, self.actions, self.rtg, self.t, self.mask):
            a[:, :-1] = a[:, 1:]
        self.obs[:, -1], self.rtg[:, -1], self.t[:, -1] = obs, self.remaining, self.step
        self.last_obs = obs
        self.actions[:, -1], self.mask[:, -1] = 0, True
        rows = acting_rows(active)
        t = lambda a: torch.as_tensor(a[rows], device=self.device)  # noqa: E731
        batch = {"obs": t(self.obs), "actions": t(self.actions), "rtg": t(self.rtg),
                 "timesteps": t(self.t), "mask": t(self.mask)}
        with torch.inference_mode():
            action = self.model.act(batch).cpu().numpy()
        self.actions[rows, -1] = action
        return self.actions[:, -1].copy()

    def observe(self, rewards: np.ndarray, active: np.ndarray) -> None:
        if self.reward_fn is not None:
            rewards = self.reward_fn(self.last_obs)
        self.remaining -= rewards.astype(np.float32)
        self.step += 1


@dataclass(frozen=True)
class EpisodeResult:
    target: float
    env_seed: int
    ret: float
    length: int


def rollout(model, env_cfg, seeds: list[int], targets: list[float], num_envs: int,
            device: torch.device, reward_fn: Callable[[np.ndarray], np.ndarray] | None = None,
            ) -> list[EpisodeResult]:
    """Run one episode per (seed, target) pair; returns one result per pair, in order (``ret`` is
    always the env's true return; ``reward_fn`` only drives the return-to-go bookkeeping)."""
    assert len(seeds) == len(targets)
    n = min(num_envs, len(seeds))
    envs = make_vector_env(n, env_cfg.id, env_cfg.continuous, env_cfg.max_episode_steps)
    policy = ConditionedRollout(model, n, np.asarray(targets), device, reward_fn)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one small forward pass per env step: threading only adds overhead
    try:
        episodes: list[Episode] = run_episodes(envs, seeds, policy, record=False)
    finally:
        torch.set_num_threads(threads)
        envs.close()
    return [EpisodeResult(float(targets[e.index]), e.seed, e.ret, len(e)) for e in episodes]


@dataclass(frozen=True)
class RolloutJob:
    """One :func:`rollout` of a saved model, runnable in another process: paths and settings only.
    ``reward`` (optional) builds the learned reward function from a device name in that process."""

    checkpoint: Path
    env: Any  # an EnvConfig
    seeds: tuple[int, ...]
    targets: tuple[float, ...]
    num_envs: int
    device: str
    reward: Callable[[str], Callable[[np.ndarray], np.ndarray]] | None = None


def run_rollout_job(job: RolloutJob) -> list[EpisodeResult]:
    """Load ``job.checkpoint`` and roll it out (the same computation in any process)."""
    model, _ = load_checkpoint(job.checkpoint, job.device)
    with torch.no_grad():
        reward_fn = job.reward(job.device) if job.reward is not None else None
        return rollout(model, job.env, list(job.seeds), list(job.targets), job.num_envs,
                       torch.device(job.device), reward_fn)


def rollout_checkpoints(jobs: list[RolloutJob], workers: int, scale=None) -> list[list[EpisodeResult]]:
    """Every job's results, in job order, fanned out over ``workers`` (``scale``: the executor;
    see :mod:`justask.executors`). Results are identical to running the jobs one by one here."""
    return run_all(run_rollout_job, jobs, workers, scale)


def held_out_seeds(path: Path, n: int, collect_seeds: set[int]) -> list[int]:
    """The first ``n`` frozen evaluation seeds, checked disjoint from collection's seeds."""
    seeds = json.loads(Path(path).read_text())["seeds"]
    if len(seeds) < n:
        raise StageFailed(f"{path}: holds {len(seeds)} seeds but evaluate.episodes asks for {n}; "
                          "lower evaluate.episodes or add seeds to the file")
    overlap = set(seeds[:n]) & collect_seeds
    if overlap:
        raise StageFailed(f"{path}: evaluation seeds {sorted(overlap)[:5]} were used by collect; "
                          "evaluation must run on held-out seeds")
    return [int(s) for s in seeds[:n]]


def rows_csv(rows: list[dict]) -> str:
    """Dict rows as CSV text (header from the first row; empty string for no rows)."""
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
