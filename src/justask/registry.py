"""MLflow model-registry entries for trained policies: pyfunc wrappers around ``model.pt``.

``mlflow.pyfunc.load_model("models:/justask-return-<dataset>-<model>/<version>")`` (also
``justask-reward-<model>``) gives a model whose ``predict`` maps a DataFrame of observations
(``obs_0``.. columns) and a ``rtg`` column to greedy actions, one step at a time (a DT sees a
window of one step). ``justask-language-<model>`` maps columns ``image`` (a 7x7x3 nested list,
minigrid's encoding), ``direction`` and ``instruction`` (text) to actions, one frame at a time.
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


class InstructionPolicyModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from justask.stages.language.train import load_policy

        self.model, self.vocab, _ = load_policy(Path(context.artifacts["checkpoint"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        from justask.stages.language.train import instruction_features

        n = len(model_input)
        batch = {
            "images": torch.as_tensor(np.stack([np.asarray(x, np.uint8) for x in model_input["image"]]))[:, None],
            "directions": torch.as_tensor(model_input["direction"].to_numpy(np.int64))[:, None],
            "mask": torch.ones(n, 1, dtype=torch.bool),
        }
        features = instruction_features(self.model.spec.encoder, list(model_input["instruction"]), self.vocab)
        return self.model.act(batch | {k: torch.as_tensor(v) for k, v in features.items()}).numpy()


def register(mlflow, checkpoint: Path, name: str, language: bool = False) -> None:
    """Log ``checkpoint`` as a pyfunc model in the active run and register it as ``name``
    (``language``: an instruction policy, see :class:`InstructionPolicyModel`)."""
    mlflow.pyfunc.log_model(
        name="model", python_model=InstructionPolicyModel() if language else PolicyModel(),
        artifacts={"checkpoint": str(checkpoint)},
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "justask"],
        registered_model_name=name,
    )
