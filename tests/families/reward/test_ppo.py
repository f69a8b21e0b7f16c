"""The RL reference (PPO on the learned reward): PPO is paid the learned reward of the state each
action was taken in and never the env's, its runs are reproducible, its saved policy acts as it
did in training, and its settings are checked before any step runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from justask.families.reward.config import PPOConfig
from justask.families.reward.ppo import LearnedRewardEnv, build_policy, ppo_envs
from justask.families.reward.ranking import LearnedReward
from justask.lunar.config import EnvConfig


def first_coordinate(obs: np.ndarray) -> np.ndarray:
    return obs[:, 0] * 10.0 + 1.0


class FirstCoordinate(LearnedReward):
    """A learned reward whose net outputs ``first_coordinate``, in either form."""

    def __init__(self, form: str):
        self.form, self.holds_ask = form, form == "potential"

    def __call__(self, obs):
        return first_coordinate(obs)


def test_ppo_is_paid_the_learned_reward_of_the_state_it_acted_in():
    env = EnvConfig(max_episode_steps=30)  # short episodes, so some end inside the loop
    venv = LearnedRewardEnv(ppo_envs(env, [11, 12]), FirstCoordinate("state"))
    obs = venv.reset()
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(70):
        venv.step_async(rng.integers(0, 4, size=2))
        next_obs, rewards, dones, infos = venv.step_wait()
        assert np.allclose(rewards, first_coordinate(obs), atol=1e-5)  # r(s_t), not the env's reward
        ended += int(dones.sum())
        obs = next_obs  # an ended env's next reward is its new episode's first state's
    assert ended >= 2 and len(venv.learned_returns) == ended == len(venv.true_returns)
    assert venv.learned_returns != venv.true_returns  # the env's return is kept aside, for the curve only


def test_ppo_on_a_potential_is_paid_its_change_and_an_episode_phi_last_minus_phi_first():
    env = EnvConfig(max_episode_steps=30)
    venv = LearnedRewardEnv(ppo_envs(env, [11, 12]), FirstCoordinate("potential"))
    obs = venv.reset()
    rng = np.random.default_rng(0)
    episode = [[obs[0]], [obs[1]]]  # each env's stored states of its current episode
    expected = []
    for _ in range(70):
        venv.step_async(rng.integers(0, 4, size=2))
        next_obs, rewards, dones, infos = venv.step_wait()
        change = first_coordinate(next_obs) - first_coordinate(obs)
        assert np.allclose(rewards, np.where(dones, 0.0, change), atol=1e-4)
        for i in range(2):
            if dones[i]:  # the episode's learned return, as the data's: Phi(s_{T-1}) - Phi(s_0)
                expected.append(float(first_coordinate(np.array(episode[i]))[[-1, 0]] @ [1.0, -1.0]))
                episode[i] = [next_obs[i]]
            else:
                episode[i].append(next_obs[i])
        obs = next_obs
    assert len(expected) >= 2 and np.allclose(sorted(venv.learned_returns), sorted(expected), atol=1e-3)


def test_ppo_envs_are_seeded_once_each_and_reproducibly():
    env = EnvConfig()
    a, b, c = (ppo_envs(env, seeds).reset() for seeds in ([1, 2], [1, 2], [1, 3]))
    assert np.array_equal(a, b) and np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])


def test_a_saved_policy_rebuilds_with_the_same_actions(tmp_path):
    from justask.families.reward.ppo import load_ppo_policy
    from justask.training.checkpoints import save_checkpoint

    env, hp = EnvConfig(), PPOConfig(hidden=8, layers=1).hp
    torch.manual_seed(0)
    policy = build_policy(env, hp)
    save_checkpoint(tmp_path / "model.pt", "ppo", hp, {"obs_dim": 8}, policy, {"seed": 0})
    loaded = load_ppo_policy(tmp_path / "model.pt", env)
    obs = np.random.default_rng(1).normal(size=(64, 8)).astype(np.float32)
    assert np.array_equal(policy.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


def test_a_reward_net_checkpoint_is_not_read_as_a_ppo_policy(tmp_path):
    from justask.errors import CheckpointError
    from justask.families.reward.ppo import load_ppo_policy
    from justask.training.checkpoints import save_checkpoint

    save_checkpoint(tmp_path / "model.pt", "reward", {}, {"obs_dim": 8}, torch.nn.Linear(8, 1), {})
    with pytest.raises(CheckpointError, match="holds a 'reward' model"):
        load_ppo_policy(tmp_path / "model.pt", EnvConfig())


@pytest.mark.parametrize(("settings", "message"), [
    ({"n_envs": 3, "n_steps": 10, "batch_size": 4}, "does not divide a rollout"),
    ({"n_envs": 2, "n_steps": 64, "batch_size": 32, "timesteps": 100}, "less than one rollout"),
])
def test_ppo_settings_that_cannot_run_fail_on_load(settings, message):
    with pytest.raises(ValidationError, match=message):
        PPOConfig(**settings)
