"""MLflow model-registry entries for trained policies, logged as models from code (nothing pickled).

``mlflow.pyfunc.load_model("models:/justask-return-<dataset>-<model>/<version>")`` (and
``justask-<family>-<model>`` for the other families) gives a model whose ``predict`` maps a
DataFrame to greedy actions: a row per step (an in-context model's rows are one history, in order).
Each family's model is a file MLflow runs to build it (:data:`POLICY_CODE` for return-conditioned
policies: columns ``obs_0``.. and ``rtg``, optional ``timestep``; a DT sees a window of one step);
the file's ``load_context`` reads the checkpoint logged beside it as the artifact ``checkpoint``.
Every training seed is one version of its model, tagged with its seed, dataset and training run id
(seeds fitted in parallel may take their versions in any order: the tag, not the number, names the
seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec

POLICY_CODE = Path(__file__).with_name("registered_policy.py")


@dataclass(frozen=True)
class Entry:
    """How a family's policies enter the registry: ``code``, a models-from-code file ending with
    ``mlflow.models.set_model(...)``; ``example``, one row of what ``predict`` takes; ``signature``,
    its inputs and outputs."""

    code: Path
    example: pd.DataFrame
    signature: ModelSignature


def policy_entry(spec) -> Entry:
    """The registry entry of a return-conditioned policy of ``spec`` (:class:`justask.models.Spec`)."""
    obs = [f"obs_{i}" for i in range(spec.obs_dim)]
    inputs = Schema([ColSpec("double", c) for c in [*obs, "rtg"]] + [ColSpec("long", "timestep", required=False)])
    actions = TensorSpec(np.dtype(np.int64), (-1,)) if spec.discrete else TensorSpec(np.dtype(np.float32),
                                                                                      (-1, spec.act_dim))
    example = pd.DataFrame({**{c: [0.0] for c in obs}, "rtg": [0.0], "timestep": [0]})
    return Entry(POLICY_CODE, example, ModelSignature(inputs, Schema([actions])))


def register(mlflow, checkpoint: Path, name: str, entry: Entry, tags: dict[str, str]) -> int:
    """Log ``checkpoint`` as ``entry``'s model in the active run and add it to the registered model
    ``name`` as a new version tagged with ``tags`` (and the run id); returns the version."""
    from mlflow import MlflowClient

    info = mlflow.pyfunc.log_model(
        name="model", python_model=str(entry.code), artifacts={"checkpoint": str(checkpoint)},
        signature=entry.signature, input_example=entry.example,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "justask"])
    client = MlflowClient()
    create_registered_model(name)
    run_id = mlflow.active_run().info.run_id
    version = client.create_model_version(name, info.model_uri, run_id=run_id, tags={**tags, "run_id": run_id})
    return int(version.version)


def create_registered_model(name: str) -> None:
    """Create the registered model ``name`` unless it exists (an earlier seed or run made it); a
    stage whose seeds register from parallel processes calls it first, so they never race."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient().create_registered_model(name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
