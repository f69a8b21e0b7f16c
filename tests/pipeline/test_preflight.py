"""What a stage needs from outside the checkout is checked before its first expensive step
(justask.preflight, run by `justask stage`): a device or a driver that is absent is deterministic
(exit 2, no retry), a server named in params that does not answer is transient (exit 1, fast),
each with a message naming the setting and the fix, no traceback, and nothing written."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from helpers import ROOT, run

JUSTASK = str(Path(sys.executable).parent / "justask")


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stage(tmp_path: Path, edit, name: str = "train", family: str = "return"):
    params = yaml.safe_load((ROOT / "profiles" / "test.yaml").read_text())
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    t0 = time.monotonic()
    proc = run([JUSTASK, "stage", name, family], tmp_path, check=False, timeout=120)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                     if p.name != "params.yaml" and ".dvc" not in p.parts)
    return proc, " ".join(proc.stderr.split()), time.monotonic() - t0, written


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA device")
def test_cuda_asked_on_a_machine_without_one_is_refused(tmp_path):
    proc, err, _, written = stage(tmp_path, lambda p: p["families"]["return"]["train"].update(device="cuda"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "families.return.train.device is 'cuda'" in err and "'auto'" in err
    assert written == []


def test_an_mlflow_server_that_does_not_answer_fails_fast_as_transient(tmp_path):
    port = closed_port()
    proc, err, seconds, written = stage(
        tmp_path, lambda p: p["tracking"].update(mlflow_uri=f"http://127.0.0.1:{port}"), name="evaluate")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"MLflow tracking server (tracking.mlflow_uri) at http://127.0.0.1:{port} does not answer" in err
    assert f"mlflow server --host 127.0.0.1 --port {port}" in err and "sqlite:///artifacts/mlflow.db" in err
    assert seconds < 60 and written == []


def test_an_rdb_optuna_storage_without_its_driver_is_refused_before_training(tmp_path):
    url = "postgresql://justask:secret@127.0.0.1:5432/optuna"
    proc, err, _, written = stage(tmp_path, lambda p: p["families"]["return"]["train"]["tune"].update(storage=url))
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "driver 'psycopg2' is not installed" in err and "pip install psycopg2-binary" in err
    else:  # with the driver, the closed server is what stops it
        assert proc.returncode == 1 and "does not answer" in err
    assert "secret" not in proc.stderr
    assert written == []


def test_a_dask_scheduler_that_does_not_answer_fails_fast_as_transient(tmp_path):
    port = closed_port()

    def dask(p):
        p["scale"] = {**p.get("scale", {}), "executor": "dask", "dask_address": f"tcp://127.0.0.1:{port}"}

    proc, err, seconds, written = stage(tmp_path, dask, name="collect")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"Dask scheduler (scale.dask_address) at tcp://127.0.0.1:{port} does not answer" in err
    assert "dask scheduler --port" in err and seconds < 60 and written == []
