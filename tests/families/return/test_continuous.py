"""The continuous-action LunarLander path: controllers, collection, training and rollout."""

import numpy as np
import torch

from justask.lunar.asking import ConditionedRollout, rollout
from justask.lunar.config import EnvConfig
from justask.lunar.controllers import CONTROLLERS, controller_actions
from justask.lunar.env import from_config, spaces
from justask.lunar.jobs import Job, run_job
from justask.models import candidate
from justask.rollout import run_episodes
from justask.steps import Steps, build_step_table, data_spec
from justask.training.loop import Loop, evaluate_loss, fit

ENV = EnvConfig(continuous=True, max_episode_steps=60)
HP = {"hidden": 32, "layers": 1, "heads": 2, "context": 4, "dropout": 0.0, "lr": 3e-3,
      "weight_decay": 0.0, "batch_size": 32}


def _inside(space, actions: np.ndarray) -> bool:
    return all(space.contains(a) for a in actions)


def test_controller_actions_are_inside_the_box():
    obs = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    a = controller_actions(obs, CONTROLLERS["expert"][0], continuous=True)
    assert a.shape == (50, 2) and a.dtype == np.float32 and np.abs(a).max() <= 1
    assert _inside(spaces(ENV)[1], a)
    assert len(np.unique(a, axis=0)) > 1  # the actions follow the observations, not one constant


def test_collect_train_and_ask_with_continuous_actions():
    action_space = spaces(ENV)[1]
    episodes = run_job(Job("expert", 0.2, (1, 2, 3, 4), 0, ENV, num_envs=2))[1]
    assert [e.seed for e in episodes] == [1, 2, 3, 4]
    for e in episodes:
        # The controllers (and their epsilon-random actions) act in the Box: float vectors inside it.
        assert e.actions.shape == (len(e), 2) and e.actions.dtype == np.float32
        assert _inside(action_space, e.actions)
        assert 1 <= len(e) <= 60 and np.isfinite(e.rewards).all()
    raw = [{"observations": e.observations, "actions": e.actions,
            "rewards": e.rewards} for e in episodes]
    table = build_step_table(raw, np.array([0, 0, 0, 1]))
    assert table.actions.dtype == np.float32 and table.actions.shape == (len(table), 2)
    spec = data_spec(table, {"max_episode_steps": 60, "ref_min_score": -100, "ref_max_score": 100})
    assert not spec.discrete and spec.act_dim == 2
    dev = torch.device("cpu")
    train, val = Steps(table, np.array([0, 1, 2]), dev), Steps(table, np.array([3]), dev)
    for kind in ("rvs", "dt"):
        build, optimisation = candidate(kind, spec, HP, 20)
        torch.manual_seed(0)  # fit seeds torch with loop.seed before build(): the same initial weights
        untrained_loss = evaluate_loss(build(), val, 4096)
        result = fit(build, train, val, optimisation, Loop(eval_every=10, patience=5, seed=0, device=dev))
        assert np.isfinite(result.best_val_loss)
        assert result.best_val_loss < untrained_loss  # the squared-error action loss goes down
        assert result.best_val_loss == min(p["val_loss"] for p in result.curve)

        # The trained model's own actions, recorded: float vectors inside the Box.
        envs = from_config(ENV, 2)
        recorded = run_episodes(envs, [7, 8], ConditionedRollout(result.model, 2, np.array([50.0, 100.0]), dev))
        envs.close()
        for e in recorded:
            assert e.actions.shape == (len(e), 2) and e.actions.dtype == np.float32
            assert _inside(action_space, e.actions)
        asked = rollout(result.model, ENV, [7, 8], [50.0, 100.0], num_envs=2, device=dev)
        assert all(1 <= r.length <= 60 for r in asked)
        # rollout() reports the episodes the model really played: their env seeds, lengths and returns.
        assert [r.env_seed for r in asked] == [7, 8]
        assert [r.length for r in asked] == [len(e) for e in recorded]
        np.testing.assert_allclose([r.ret for r in asked], [e.ret for e in recorded])
