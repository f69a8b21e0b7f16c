"""The registered in-context model: loaded back from MLflow's registry by name, it picks at every
step of a history the action its checkpoint picks from the same steps (growing windows up to the
context, then the last ``context`` steps), seeds registered from parallel fits included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from justask.families.improve.config import TransformerConfig
from justask.families.improve.contexts import NO_ACTION
from justask.families.improve.model import RoomSpec, build_model, save_model
from justask.families.improve.train import registry_entry
from justask.registry import register
from justask.settings import TrackingConfig
from justask.tracking import setup_mlflow

SPEC = RoomSpec(size=5, horizon=4)
HP = TransformerConfig(hidden=16, layers=2, heads=2, context_episodes=2, dropout=0.0).hp


def history(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n) % SPEC.horizon
    return pd.DataFrame({"row": rng.integers(0, 5, n), "col": rng.integers(0, 5, n),
                         "prev_action": np.where(np.arange(n) == 0, NO_ACTION, rng.integers(0, 4, n)),
                         "prev_reward": rng.integers(0, 2, n).astype(np.float64), "timestep": t})


def stepwise(model, frame: pd.DataFrame) -> np.ndarray:
    """The checkpoint's greedy action at each step from the unpadded window ending there."""
    cols = {"cells": frame["row"] * SPEC.size + frame["col"], "prev_actions": frame["prev_action"],
            "prev_rewards": frame["prev_reward"], "timesteps": frame["timestep"]}
    data = {k: torch.as_tensor(v.to_numpy())[None] for k, v in cols.items()}
    data["prev_rewards"] = data["prev_rewards"].float()
    out = []
    with torch.no_grad():
        for i in range(len(frame)):
            lo = max(0, i + 1 - model.context)
            window = {k: v[:, lo:i + 1] for k, v in data.items()}
            out.append(int(model(**window, mask=torch.ones(1, i + 1 - lo, dtype=torch.bool))[0, -1].argmax()))
    return np.array(out)


def test_registered_in_context_model_acts_like_its_checkpoint(tmp_path):
    mlflow = setup_mlflow(TrackingConfig(mlflow_uri="sqlite:///mlflow.db", experiment="registry-test"), tmp_path)
    torch.manual_seed(0)
    model = build_model(SPEC, HP).eval()
    save_model(HP, SPEC, {}, tmp_path / "model.pt", model, {})
    with mlflow.start_run():
        version = register(mlflow, tmp_path / "model.pt", "justask-test-improve", registry_entry(), {"seed": "0"})
    loaded = mlflow.pyfunc.load_model(f"models:/justask-test-improve/{version}")
    for n in (1, model.context - 1, model.context, 3 * model.context + 5):
        frame = history(n, seed=n)
        assert np.array_equal(loaded.predict(frame), stepwise(model, frame)), n
    assert loaded.predict(registry_entry().example).shape == (2,)
