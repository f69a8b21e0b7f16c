"""The registered form of a return-conditioned policy, logged as a model from code: MLflow runs this
file to rebuild the model (:func:`justask.registry.register`), so no Python object is pickled."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch


class PolicyModel(mlflow.pyfunc.PythonModel):
    """``predict``: columns ``obs_0``.. and ``rtg`` (optional ``timestep``) to greedy actions."""

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


mlflow.models.set_model(PolicyModel())
