"""Ask a return-conditioned policy for a target return in LunarLander: batched rollouts on
held-out env seeds (the policy is :class:`justask.conditioned.ConditionedRollout`), runnable as jobs
in any process, and GIFs of what it does when asked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from justask.conditioned import ConditionedRollout
from justask.executors import run_all
from justask.lunar.config import EnvConfig
from justask.lunar.env import from_config, model_expectation
from justask.models import load_model
from justask.render import write_gif
from justask.rollout import Episode, run_episodes


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
    envs = from_config(env_cfg, n)
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
    model, _ = load_model(job.checkpoint, job.device)
    with torch.no_grad():
        reward_fn = job.reward(job.device) if job.reward is not None else None
        return rollout(model, job.env, list(job.seeds), list(job.targets), job.num_envs,
                       torch.device(job.device), reward_fn)


def rollout_checkpoints(jobs: list[RolloutJob], workers: int, scale=None) -> list[list[EpisodeResult]]:
    """Every job's results, in job order, fanned out over ``workers`` (``scale``: the executor;
    see :mod:`justask.executors`). Results are identical to running the jobs one by one here."""
    return run_all(run_rollout_job, jobs, workers, scale)


def load_for_env(path: Path, env_cfg: EnvConfig, device: torch.device | str = "cpu",
                 provenance: dict | None = None, rerun: str = "the train stage"):
    """:func:`justask.models.load_model`, checked to act in the env ``env_cfg`` configures (and,
    with ``provenance``, to be the model a stage expects)."""
    return load_model(path, device, expect=model_expectation(env_cfg),
                      where=f"the configured env {env_cfg.id} (continuous={env_cfg.continuous})",
                      provenance=provenance, rerun=rerun)


def record_gif(model, env_cfg: EnvConfig, target: float, env_seed: int, path: Path, device,
               max_steps: int = 400, every: int = 2, reward_fn=None) -> Path:
    """Roll out one episode asking for ``target`` (at most ``max_steps`` steps) and save the reset
    frame, every ``every``-th step's frame and the one after the episode ended as a GIF at half
    resolution (``reward_fn``: a learned reward for the return-to-go, as in :func:`rollout`)."""
    envs = from_config(env_cfg, 1, render_mode="rgb_array")
    try:
        [episode] = run_episodes(envs, [env_seed], ConditionedRollout(model, 1, np.array([target]), device, reward_fn),
                                 record=False, frames=every, max_steps=max_steps)
    finally:
        envs.close()
    return write_gif([f[::2, ::2] for f in episode.frames], path)
