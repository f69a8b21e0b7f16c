"""The D-REX paper's own route, as a reference: PPO (stable-baselines3) on the learned reward.

D-REX gets past its demonstrator by running RL on the reward it learned; this project's thesis is
that asking a return-conditioned policy (and the rounds of :mod:`.rounds`) can replace that step.
This module runs the RL step so the two routes are compared on the same seeds, with what each
cost in environment steps. PPO's settings are rl-zoo3's for LunarLander (16 envs, 1024 steps per
env and update, 4 epochs of 64-sample minibatches, gamma 0.999, GAE lambda 0.98, entropy 0.01)
and D-REX's budget (1e6 steps per run).

The env's reward never reaches PPO: :class:`LearnedRewardEnv` drops it and hands PPO the learned
reward of each step (r(s_t) of the state each action was taken in, or the change of a learned
potential), so an episode's PPO return is exactly the learned return the ranking ranks and the
return-conditioned policies are asked for. The env's
return of each finished episode is kept aside for the learning curve only.

One job per training seed (:class:`PPOJob`, runnable in any process): it writes the policy's
weights (``model.pt``, byte-stable, not SB3's zip, which stamps the time) and ``curve.csv``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper

from justask.io import rows_csv, write_text
from justask.lunar.config import EnvConfig
from justask.lunar.env import from_config, make_env, spaces
from justask.rollout import run_episodes
from justask.seeding import seed_everything
from justask.training.checkpoints import check_provenance, read_payload, rebuild, save_checkpoint

from .ranking import learned_reward_fn


class LearnedRewardEnv(VecEnvWrapper):
    """A VecEnv whose reward is the learned reward of each step (:meth:`LearnedReward.step_rewards`:
    r(s_t) of the state the action was taken in, or a potential's change Phi(s_{t+1}) - Phi(s_t)).
    The env's own reward is dropped (recorded per finished episode in ``true_returns`` for the curve)."""

    def __init__(self, venv, reward):
        super().__init__(venv)
        self.reward = reward
        self._obs: np.ndarray | None = None
        self._learned = np.zeros(venv.num_envs)
        self._true = np.zeros(venv.num_envs)
        self.learned_returns: list[float] = []  # per finished episode, in finishing order
        self.true_returns: list[float] = []

    def reset(self) -> np.ndarray:
        self._obs = self.venv.reset()
        self._learned[:], self._true[:] = 0.0, 0.0
        return self._obs

    def step_wait(self):
        obs, env_rewards, dones, infos = self.venv.step_wait()
        rewards = np.asarray(self.reward.step_rewards(self._obs, obs, dones), np.float32)
        self._learned += rewards
        self._true += env_rewards
        for i in np.flatnonzero(dones):
            self.learned_returns.append(float(self._learned[i]))
            self.true_returns.append(float(self._true[i]))
            self._learned[i], self._true[i] = 0.0, 0.0
        self._obs = obs  # for an ended env, already the next episode's first observation
        return obs, rewards, dones, infos


def ppo_envs(env: EnvConfig, seeds: list[int]) -> DummyVecEnv:
    """One env per seed, each seeded once with it (later episodes follow the env's own stream)."""
    def factory(seed: int):
        def build():
            e = make_env(env.id, env.continuous, env.max_episode_steps)
            e.reset(seed=seed)
            return e
        return build

    return DummyVecEnv([factory(s) for s in seeds])


@dataclass(frozen=True)
class PPOJob:
    """PPO on the learned reward of the run at ``root``, for one training seed."""

    root: Path
    out: Path  # the seed's folder: model.pt and curve.csv go there
    env: EnvConfig
    hp: dict  # PPOConfig.hp
    timesteps: int
    seed: int  # torch / NumPy seed
    env_seeds: tuple[int, ...]  # one per env
    provenance: dict  # what the checkpoint records (asks.ppo_provenance)


class _Curve(BaseCallback):
    """After each rollout: env steps so far, the mean learned and true return of the episodes that
    ended in it."""

    def __init__(self, env: LearnedRewardEnv):
        super().__init__()
        self.env, self.rows, self._seen = env, [], 0

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        learned, true = self.env.learned_returns[self._seen:], self.env.true_returns[self._seen:]
        self._seen = len(self.env.learned_returns)
        if learned:
            self.rows.append({"env_steps": int(self.num_timesteps), "episodes": len(learned),
                              "learned_return_mean": round(float(np.mean(learned)), 4),
                              "true_return_mean": round(float(np.mean(true)), 4)})


def policy_kwargs(hp: dict) -> dict:
    """The actor-critic's shape: separate policy and value MLPs of ``hp``'s size (SB3's defaults
    are 2 x 64, tanh)."""
    arch = [hp["hidden"]] * hp["layers"]
    return {"net_arch": {"pi": arch, "vf": arch}, "activation_fn": torch.nn.Tanh}


def build_policy(env: EnvConfig, hp: dict) -> ActorCriticPolicy:
    """An untrained actor-critic as PPO builds it for ``env``, to load saved weights into."""
    obs_space, act_space = spaces(env)
    return ActorCriticPolicy(obs_space, act_space, lambda _: hp["learning_rate"], **policy_kwargs(hp))


def run_ppo_job(job: PPOJob) -> dict:
    """Train PPO for ``job.timesteps`` env steps; save the policy and its curve; returns a summary."""
    t0 = time.perf_counter()
    seed_everything(job.seed)
    reward = learned_reward_fn(job.root, "cpu")
    venv = LearnedRewardEnv(ppo_envs(job.env, list(job.env_seeds)), reward)
    hp = job.hp
    model = PPO("MlpPolicy", venv, learning_rate=hp["learning_rate"], n_steps=hp["n_steps"],
                batch_size=hp["batch_size"], n_epochs=hp["n_epochs"], gamma=hp["gamma"],
                gae_lambda=hp["gae_lambda"], clip_range=hp["clip_range"], ent_coef=hp["ent_coef"],
                vf_coef=hp["vf_coef"], max_grad_norm=hp["max_grad_norm"], device="cpu", verbose=0,
                policy_kwargs=policy_kwargs(hp))
    curve = _Curve(venv)
    model.learn(job.timesteps, callback=curve)
    venv.close()
    steps = int(model.num_timesteps)
    meta = {"seed": job.seed, "env_steps": steps, "episodes": len(venv.learned_returns)}
    spec = {"env": job.env.id, "continuous": job.env.continuous, "obs_dim": int(venv.observation_space.shape[0])}
    save_checkpoint(job.out / "model.pt", "ppo", hp, spec, model.policy, meta, job.provenance)
    write_text(job.out / "curve.csv", rows_csv(curve.rows))
    last = curve.rows[-1] if curve.rows else {}
    return {**meta, "learned_return_last": last.get("learned_return_mean"),
            "true_return_last": last.get("true_return_mean"), "seconds": round(time.perf_counter() - t0, 1),
            "curve": curve.rows}


def load_ppo_policy(path: Path, env: EnvConfig, expect: dict | None = None) -> ActorCriticPolicy:
    """The PPO policy saved at ``path``, for acting in ``env``; :class:`CheckpointError` naming the
    file when it is not one (or, with ``expect``, not the one with that provenance)."""
    payload = read_payload(path, "cpu", ("ppo",), "reward family's PPO reference")
    if expect is not None:
        check_provenance(path, payload, expect, "dvc repro train@reward")
    policy = rebuild(path, payload, lambda p: build_policy(env, p["hp"]), "a PPO policy")
    return policy.eval()


class _Greedy:
    """The rollout engine's view of a PPO policy: its most likely action (SB3's deterministic
    evaluation)."""

    def __init__(self, policy: ActorCriticPolicy):
        self.policy = policy

    def start(self, slot: int, episode_index: int) -> None:
        pass

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        return self.policy.predict(obs, deterministic=True)[0]

    def observe(self, rewards, ended, active) -> None:
        pass


@dataclass(frozen=True)
class PPOEvalJob:
    checkpoint: Path
    env: Any  # an EnvConfig
    seeds: tuple[int, ...]
    num_envs: int


def run_ppo_eval_job(job: PPOEvalJob) -> list[tuple[int, float, int]]:
    """(env seed, true return, length) of one greedy episode per seed."""
    policy = load_ppo_policy(job.checkpoint, job.env)
    envs = from_config(job.env, min(job.num_envs, len(job.seeds)))
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            episodes = run_episodes(envs, list(job.seeds), _Greedy(policy), record=False)
    finally:
        envs.close()
    return [(e.seed, e.ret, len(e)) for e in episodes]
