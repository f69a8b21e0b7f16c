"""The demonstrator's BC clone: fitted on its few demonstrations (rewards blanked), then rolled
out with epsilon-random actions at each noise level, as jobs for the executor; the improvement
rounds roll their return-conditioned policies out the same way.

Kept apart from the collect stage so that a spawned worker imports only this module and what the
clone needs (torch, the model code), not the stage's training and tracking stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from justask.conditioned import ConditionedRollout
from justask.lunar.config import EnvConfig
from justask.lunar.env import from_config
from justask.lunar.jobs import episode_rng
from justask.rollout import Episode, run_episodes

from .config import CloneConfig


def clone_demonstrator(episodes: list[Episode], cfg: CloneConfig, env: EnvConfig, seed: int, path: Path,
                       meta: dict, provenance: dict) -> dict:
    """Fit BC on ``episodes`` (observations and actions; rewards blanked) and save it at ``path``
    with ``meta``, its best validation loss and step, and ``provenance``; returns that meta."""
    from justask.datasets import split_mask
    from justask.models import candidate
    from justask.seeding import seed_everything
    from justask.steps import Steps, blank_rewards, build_step_table, data_spec
    from justask.training.checkpoints import save_checkpoint
    from justask.training.loop import Loop, fit

    blind = blank_rewards(episodes)
    split = split_mask(len(blind), cfg.val_fraction, seed)
    table = build_step_table(blind, split)
    spec = data_spec(table, {"max_episode_steps": env.max_episode_steps, "ref_min_score": 0.0, "ref_max_score": 1.0})
    hp = {"hidden": cfg.hidden, "layers": cfg.layers, "dropout": 0.0, "lr": cfg.lr,
          "weight_decay": cfg.weight_decay, "batch_size": cfg.batch_size}
    device = torch.device("cpu")  # a few thousand rows: a GPU would only add transfer time
    seed_everything(seed)
    build, optimisation = candidate("bc", spec, hp, cfg.steps)
    train, val = (Steps(table, np.flatnonzero(split == s), device) for s in (0, 1))
    result = fit(build, train, val, optimisation,
                 Loop(eval_every=max(1, cfg.steps // 20), patience=5, seed=seed, device=device))
    meta = {**meta, "best_val_loss": result.best_val_loss, "best_step": result.best_step}
    save_checkpoint(path, "bc", hp, spec, result.model, meta, provenance)
    return meta


@dataclass(frozen=True)
class CloneJob:
    """One chunk of a noise level's episodes of a saved policy: the clone (``targets`` None) or,
    in the improvement rounds, a return-conditioned policy asked for ``targets`` (one per episode)
    that counts down with the learned reward ``reward`` builds from a device name."""

    checkpoint: str
    epsilon: float
    seeds: tuple[int, ...]
    first_index: int
    env: EnvConfig
    num_envs: int
    targets: tuple[float, ...] | None = None
    reward: Callable[[str], Callable[[np.ndarray], np.ndarray]] | None = None


class NoisyPolicy:
    """The policy's greedy action, replaced by a uniformly random one with probability epsilon
    (one random stream per episode, so an episode depends only on its own seed)."""

    def __init__(self, model, epsilon: float, seeds: tuple[int, ...], num_envs: int, n_actions: int,
                 targets: np.ndarray | None = None, reward_fn=None):
        targets = np.zeros(len(seeds)) if targets is None else targets
        self.inner = ConditionedRollout(model, num_envs, targets, torch.device("cpu"), reward_fn)
        self.epsilon, self.seeds, self.n_actions = epsilon, seeds, n_actions
        self.rngs = [np.random.default_rng(0)] * num_envs

    def start(self, slot: int, episode_index: int) -> None:
        self.inner.start(slot, episode_index)
        self.rngs[slot] = episode_rng(self.seeds[episode_index])

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        actions = self.inner.act(obs, active)
        for i in np.flatnonzero(active):
            if self.rngs[i].random() < self.epsilon:
                actions[i] = self.rngs[i].integers(self.n_actions)
        return actions

    def observe(self, rewards: np.ndarray, ended: np.ndarray, active: np.ndarray) -> None:
        self.inner.observe(rewards, ended, active)


def run_clone_job(job: CloneJob) -> tuple[int, list[Episode]]:
    """Roll out one chunk of a noise level's episodes (runs in a worker process)."""
    from justask.models import load_model

    torch.set_num_threads(1)  # one small forward pass per env step
    model, _ = load_model(Path(job.checkpoint))
    n = min(job.num_envs, len(job.seeds))
    envs = from_config(job.env, n)
    with torch.no_grad():
        reward_fn = job.reward("cpu") if job.reward is not None else None
        targets = None if job.targets is None else np.asarray(job.targets)
        policy = NoisyPolicy(model, job.epsilon, job.seeds, n, int(envs.single_action_space.n), targets, reward_fn)
        episodes = run_episodes(envs, job.seeds, policy)
    envs.close()
    return job.first_index, episodes
