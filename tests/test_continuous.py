"""The continuous-action LunarLander path: controllers, collection, training and rollout."""

import numpy as np
import torch

from justask.config import EnvConfig
from justask.data.relabel import build_step_table
from justask.envs.lunar import CONTROLLERS, Job, controller_actions, run_job
from justask.evaluate import rollout
from justask.train import Steps, data_spec, fit

ENV = EnvConfig(continuous=True, max_episode_steps=60)
HP = {"hidden": 32, "layers": 1, "heads": 2, "context": 4, "dropout": 0.0, "lr": 3e-3,
      "weight_decay": 0.0, "batch_size": 32}


def test_controller_actions_are_inside_the_box():
    obs = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    a = controller_actions(obs, CONTROLLERS["expert"][0], continuous=True)
    assert a.shape == (50, 2) and a.dtype == np.float32 and np.abs(a).max() <= 1


def test_collect_train_and_ask_with_continuous_actions():
    episodes = run_job(Job("expert", 0.2, (1, 2, 3, 4), 0, ENV, num_envs=2))[1]
    assert all(e.actions.shape == (len(e), 2) for e in episodes)
    raw = [{"observations": e.observations, "actions": e.actions.astype(np.float32),
            "rewards": e.rewards} for e in episodes]
    table = build_step_table(raw, np.array([0, 0, 0, 1]))
    spec = data_spec(table, {"max_episode_steps": 60, "ref_min_score": -100, "ref_max_score": 100})
    assert not spec.discrete and spec.act_dim == 2
    dev = torch.device("cpu")
    train, val = Steps(table, np.array([0, 1, 2]), dev), Steps(table, np.array([3]), dev)
    for kind in ("rvs", "dt"):
        result = fit(kind, HP, spec, train, val, steps=20, eval_every=10, patience=5, seed=0, device=dev)
        assert np.isfinite(result.best_val_loss)
        asked = rollout(result.model, ENV, [7, 8], [50.0, 100.0], num_envs=2, device=dev)
        assert [r.target for r in asked] == [50.0, 100.0]
        assert all(1 <= r.length <= 60 for r in asked)
