"""Shared test setup (helpers the tests import live in ``helpers.py``).

* ``pytest_configure`` sets the environment before any test module imports prefect, mlflow or
  great_expectations: no analytics, a temporary PREFECT_HOME (and a 90 s start-up timeout for the
  ephemeral Prefect API, whose first migration is slow), MLflow tracking in a temporary SQLite
  database, and the venv's bin dir first on PATH (dvc runs `justask` from there).
* ``pytest_collection_modifyitems`` runs the longest file first (for `make test`'s two workers).
* ``make_repo_copy`` / ``repo_copy``: a temporary copy of the repository on the test profile (see
  :func:`helpers.copy_repo`).
"""

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import BIN, copy_repo

_session_tmp: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _session_tmp
    _session_tmp = Path(tempfile.mkdtemp(prefix="justask-tests-"))
    (_session_tmp / "prefect").mkdir()
    (_session_tmp / "mlflow").mkdir()
    os.environ.update({
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_HOME": str(_session_tmp / "prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "MLFLOW_TRACKING_URI": f"sqlite:///{_session_tmp / 'mlflow' / 'mlflow.db'}",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    # Never talk to a real Prefect server or Prefect Cloud from tests.
    for var in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE"):
        os.environ.pop(var, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest file, the end-to-end runs of tests/pipeline/test_pipeline.py, goes first: `make
    test` runs files on two workers (pytest-xdist, ``--dist loadfile`` in collection order), and
    started last it would leave one worker idle for its whole length. Otherwise the order is kept."""
    items.sort(key=lambda item: item.path.name != "test_pipeline.py")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_tmp is not None:
        shutil.rmtree(_session_tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def dvc_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dvc-cache")


@pytest.fixture
def make_repo_copy(tmp_path: Path, dvc_cache_dir: Path) -> Callable[..., Path]:
    """Factory: ``make_repo_copy(profile="test", with_data=True, shared_cache=False,
    name="repo")`` -> path. Each copy has its own DVC cache unless ``shared_cache`` (the session
    cache: faster, but stages that ran in an earlier test are restored from the run cache)."""

    def make(profile: str | None = "test", with_data: bool = True, shared_cache: bool = False,
             name: str = "repo") -> Path:
        return copy_repo(tmp_path / name, dvc_cache_dir if shared_cache else None,
                         profile=profile, with_data=with_data)

    return make


@pytest.fixture
def repo_copy(make_repo_copy: Callable[..., Path]) -> Path:
    """A git-init-ed copy of the repository on the test profile (see :func:`copy_repo`)."""
    return make_repo_copy()


@pytest.fixture(scope="module")
def prefect_api():
    """A temporary Prefect API (and database, under the session's PREFECT_HOME) for one test module."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
