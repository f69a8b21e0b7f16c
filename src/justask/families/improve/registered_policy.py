"""The registered form of an in-context model, logged as a model from code: MLflow runs this file to
rebuild the model (:func:`justask.registry.register`), so no Python object is pickled."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch


class InContextModel(mlflow.pyfunc.PythonModel):
    """``predict``: the steps of one history so far, in order (columns ``row``, ``col``,
    ``prev_action``, ``prev_reward``, ``timestep``; see :mod:`justask.families.improve.contexts`)
    to the greedy action at every step, each seeing at most the model's context of steps up to it."""

    def load_context(self, context) -> None:
        from justask.families.improve.model import load_model

        self.model, _ = load_model(Path(context.artifacts["checkpoint"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        from justask.families.improve.contexts import windows_ending_at

        size, k = self.model.spec.size, self.model.context
        steps = {
            "cells": model_input["row"].to_numpy(np.int64) * size + model_input["col"].to_numpy(np.int64),
            "prev_actions": model_input["prev_action"].to_numpy(np.int64),
            "prev_rewards": model_input["prev_reward"].to_numpy(np.float32),
            "timesteps": model_input["timestep"].to_numpy(np.int64),
        }
        data = {name: torch.as_tensor(v) for name, v in steps.items()}
        ends = torch.arange(len(model_input))
        with torch.no_grad():  # the windows training saw: k steps ending at each, left-padded
            window = windows_ending_at(data, torch.zeros_like(ends), ends, k)
            return self.model(**window).argmax(-1)[:, -1].numpy()


mlflow.models.set_model(InContextModel())
