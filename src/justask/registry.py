"""MLflow model-registry entry for a trained policy: a pyfunc wrapper around ``model.pt``.

``mlflow.pyfunc.load_model("models:/justask-return-<dataset>-<model>/<version>")`` gives a model
whose ``predict`` maps a DataFrame of observations (``obs_0``.. columns) and a ``rtg`` column to
greedy actions, one step at a time (a DT sees a window of one step).
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch


class PolicyModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from justask.models import load_checkpoint

        self.model, _ = load_checkpoint(Path(context.artifacts["checkpoint"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        spec = self.model.spec
        obs = torch.as_tensor(model_input[[f"obs_{i}" for i in range(spec.obs_dim)]].to_numpy(np.float32))
        n = len(obs)
        batch = {
            "obs": obs[:, None],
            "rtg": torch.as_tensor(model_input["rtg"].to_numpy(np.float32))[:, None],
            "actions": torch.zeros((n, 1) if spec.discrete else (n, 1, spec.act_dim),
                                   dtype=torch.long if spec.discrete else torch.float32),
            "timesteps": torch.as_tensor(
                model_input.get("timestep", pd.Series(np.zeros(n))).to_numpy(np.int64))[:, None],
            "mask": torch.ones(n, 1, dtype=torch.bool),
        }
        return self.model.act(batch).numpy()


def register(mlflow, checkpoint: Path, name: str) -> None:
    """Log ``checkpoint`` as a pyfunc model in the active run and register it as ``name``."""
    mlflow.pyfunc.log_model(
        name="model", python_model=PolicyModel(), artifacts={"checkpoint": str(checkpoint)},
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "justask"],
        registered_model_name=name,
    )
