"""Checks ``justask stage`` runs before a stage's first expensive step: what the stage will need
from outside the checkout (a device, a database driver, a server named in params) is there, and
the append-only stores it will write to are whole (torn Optuna journals are cut, :mod:`justask.stores`).

A missing device or driver is deterministic (:class:`~justask.errors.StageFailed`: exit 2, the
Prefect flow does not retry); a server that does not answer may come back
(:class:`ServiceUnreachable`: exit 1, retried), and is found within ``timeout`` seconds instead of
after a client library's own minutes of retries.
"""

from __future__ import annotations

import importlib
import socket
from pathlib import Path
from urllib.parse import urlsplit

from justask.config import Params
from justask.errors import StageFailed
from justask.stores import repair_journals

TRACKED = ("train", "evaluate")  # stages that log to MLflow and run models on the device
DRIVERS = {"postgresql": "psycopg2", "mysql": "MySQLdb"}  # SQLAlchemy's default DBAPI per dialect
PIP_NAMES = {"psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient"}
DEFAULT_PORTS = {"https": 443, "http": 80, "postgresql": 5432, "mysql": 3306, "tcp": 8786}


class ServiceUnreachable(RuntimeError):
    """A server named in params does not answer (transient: exit 1); the message names it and how to start it."""


def preflight(stage: str, family: str, params: Params, timeout: float = 5.0, root: Path = Path(".")) -> None:
    """Raise :class:`StageFailed` or :class:`ServiceUnreachable` if ``stage`` of ``family`` would
    fail for want of something outside the checkout; repair torn journals before a train stage
    (run it holding the stage lock: the repair rewrites files other writers append to)."""
    train = getattr(params.family(family), "train", None)
    if stage in TRACKED and train is not None and getattr(train, "device", None) == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise StageFailed(f"params.yaml: families.{family}.train.device is 'cuda', but this machine has no "
                              "visible CUDA device (torch.cuda.is_available() is False). Set it to 'auto' "
                              "(the GPU when there is one, else the CPU) or 'cpu'.")
    uri = params.tracking.mlflow_uri
    if stage in TRACKED and urlsplit(uri).scheme in ("http", "https"):
        _answers(uri, "the MLflow tracking server (tracking.mlflow_uri)", timeout,
                 f"start it (`mlflow server --host {urlsplit(uri).hostname} --port {_port(uri)}`), or set "
                 "tracking.mlflow_uri to sqlite:///artifacts/mlflow.db to track locally")
    storage = getattr(getattr(train, "tune", None), "storage", "journal")
    if stage == "train" and "://" in storage and not storage.startswith("sqlite"):
        _driver(storage, family)
        _answers(storage, "the Optuna storage (train.tune.storage)", timeout,
                 "start the database server, or set train.tune.storage to journal to tune on this machine")
    if stage == "train":
        for repair in repair_journals(root / "artifacts" / "optuna", f"{family}-"):  # this family's: its lock
            print(f"train ({family}): {repair.describe()}")
    if params.scale.executor == "dask" and params.scale.dask_address:
        _answers(params.scale.dask_address, "the Dask scheduler (scale.dask_address)", timeout,
                 f"start it (`dask scheduler --port {_port(params.scale.dask_address)}`, then `dask worker "
                 f"{params.scale.dask_address}`), or set scale.dask_address to null for a local cluster")


def _driver(url: str, family: str) -> None:
    """The DBAPI module SQLAlchemy will import for ``url`` (``dialect+driver://`` names it)."""
    scheme = urlsplit(url).scheme
    dialect, _, driver = scheme.partition("+")
    module = driver or DRIVERS.get(dialect)
    if module is None:
        return
    try:
        importlib.import_module(module)
    except ImportError:
        raise StageFailed(
            f"params.yaml: families.{family}.train.tune.storage is a {dialect} URL, whose database driver "
            f"{module!r} is not installed in this environment. Install it (`.venv/bin/pip install "
            f"{PIP_NAMES.get(module, module)}`), or set the storage to journal to tune on this machine.") from None


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or DEFAULT_PORTS.get(parts.scheme.split("+")[0], 0)


def _answers(url: str, what: str, timeout: float, fix: str) -> None:
    """A TCP connection to ``url``'s host and port opens within ``timeout`` seconds."""
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", _port(url)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as e:
        shown = url.replace(f"{parts.password}@", "***@") if parts.password else url
        raise ServiceUnreachable(f"{what} at {shown} does not answer ({host}:{port}: {e.strerror or e}, "
                                 f"within {timeout:g} s): {fix}.") from None
