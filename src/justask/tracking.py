"""MLflow set-up: local SQLite tracking by default, any tracking server by setting a URI.

``tracking.mlflow_uri`` in params.yaml (or the ``MLFLOW_TRACKING_URI`` environment variable,
which wins) selects the store; a relative ``sqlite:///`` path is resolved against the repo root.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from filelock import FileLock

from justask.settings import TrackingConfig


def tracking_uri(cfg: TrackingConfig, root: Path) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.mlflow_uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        db = (Path(root) / uri[len(prefix):]).absolute()
        db.parent.mkdir(parents=True, exist_ok=True)
        uri = prefix + str(db)
    return uri


def setup_mlflow(cfg: TrackingConfig, root: Path):
    """Point MLflow at the configured store and experiment; returns the mlflow module."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per logged model otherwise
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # set after import: mlflow sets INFO on import

    uri = tracking_uri(cfg, root)
    mlflow.set_tracking_uri(uri)
    with _first_use_lock(uri):
        if mlflow.get_experiment_by_name(cfg.experiment) is None:
            artifacts = None
            if uri.startswith("sqlite:///"):
                artifacts = (Path(uri[len("sqlite:///"):]).parent / "mlflow-artifacts").as_uri()
            mlflow.create_experiment(cfg.experiment, artifact_location=artifacts)
    mlflow.set_experiment(cfg.experiment)
    return mlflow


def _first_use_lock(uri: str):
    """Serialise the first contact with a SQLite store (table creation and migrations, creating the
    experiment) across processes: two at once otherwise race and one fails mid-migration."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return contextlib.nullcontext()
    return FileLock(f"{uri[len(prefix):]}.lock")
