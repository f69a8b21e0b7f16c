"""The registered form of an instruction policy, logged as a model from code: MLflow runs this file
to rebuild the model (:func:`justask.registry.register`), so no Python object is pickled."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch


class InstructionPolicyModel(mlflow.pyfunc.PythonModel):
    """``predict``: columns ``image`` (a 7x7x3 nested list, minigrid's encoding), ``direction`` and
    ``instruction`` (text) to actions, one frame at a time."""

    def load_context(self, context) -> None:
        from justask.families.language.policy import load_policy

        self.model, self.vocab, _ = load_policy(Path(context.artifacts["checkpoint"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        from justask.families.language.policy import instruction_features

        n = len(model_input)
        batch = {
            "images": torch.as_tensor(np.stack([np.asarray(x, np.uint8) for x in model_input["image"]]))[:, None],
            "directions": torch.as_tensor(model_input["direction"].to_numpy(np.int64))[:, None],
            "mask": torch.ones(n, 1, dtype=torch.bool),
        }
        features = instruction_features(self.model.spec.encoder, list(model_input["instruction"]), self.vocab,
                                        self.model.spec.reader)
        return self.model.act(batch | {k: torch.as_tensor(v) for k, v in features.items()}).numpy()


mlflow.models.set_model(InstructionPolicyModel())
