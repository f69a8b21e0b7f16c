"""MLflow model-registry entries for trained policies: pyfunc wrappers around ``model.pt``.

``mlflow.pyfunc.load_model("models:/justask-return-<dataset>-<model>/<version>")`` (also
``justask-reward-<model>``) gives a model whose ``predict`` maps a DataFrame of observations
(``obs_0``.. columns) and a ``rtg`` column to greedy actions, one step at a time (a DT sees a
window of one step). A family whose policies read other inputs passes its own wrapper to
:func:`register` (the language family's reads an image, a direction and an instruction).
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch


class PolicyModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from justask.models import load_model

        self.model, _ = load_model(Path(context.artifacts["checkpoint"]))

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


def register(mlflow, checkpoint: Path, name: str, python_model: mlflow.pyfunc.PythonModel | None = None) -> None:
    """Log ``checkpoint`` as a pyfunc model in the active run and register it as ``name``;
    ``python_model`` wraps it (default :class:`PolicyModel`; a family with other inputs brings its own,
    whose ``load_context`` reads ``context.artifacts["checkpoint"]``)."""
    mlflow.pyfunc.log_model(
        name="model", python_model=python_model or PolicyModel(),
        artifacts={"checkpoint": str(checkpoint)},
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "justask"],
        registered_model_name=name,
    )
