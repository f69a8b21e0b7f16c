"""Shared test setup.

* ``pytest_configure`` sets the environment before any test module imports prefect, mlflow or
  great_expectations: no analytics, a temporary PREFECT_HOME (and a 90 s start-up timeout for the
  ephemeral Prefect API, whose first migration is slow), MLflow tracking in a temporary SQLite
  database, and the venv's bin dir first on PATH (dvc runs `justask` from there).
* ``make_repo_copy`` / ``repo_copy``: a temporary, ``git init``-ed copy of this repository (tracked
  and new, not ignored files; data/ restored with ``dvc pull data.dvc`` as in a fresh clone),
  switched to the test profile, with its own DVC cache (or, opt-in, one shared by the session).
  Run ``dvc repro`` or the Prefect flow in it, never in the real workspace.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GIT_ID = ["-c", "user.name=justask-tests", "-c", "user.email=tests@localhost",
          "-c", "commit.gpgsign=false"]

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


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_tmp is not None:
        shutil.rmtree(_session_tmp, ignore_errors=True)


def load_pipeline():
    """flows/pipeline.py as a module (flows/ is not a package), loaded once per test session."""
    import importlib.util

    name = "justask_flows_pipeline"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "flows" / "pipeline.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 1800,
        ) -> subprocess.CompletedProcess[str]:
    """Run a command (venv bin first on PATH), capturing output; on failure show it."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode} in {cwd}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def _project_files() -> list[str]:
    """Tracked files plus new, not git-ignored ones (so uncommitted work is tested too)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return [p for p in out.split("\0") if p]


def copy_repo(dest: Path, dvc_cache: Path | None = None, profile: str | None = "test",
              with_data: bool = True) -> Path:
    """Copy the repository to ``dest`` as a fresh git repo with one commit; returns ``dest``.

    profile: run `justask profile <profile>` in the copy (skips the test if that profile does
    not exist yet); None keeps params.yaml as it is.
    with_data: restore data/ as a fresh clone does (`dvc pull data.dvc`, offline, from the
    committed dvc-inputs/ remote); False leaves it out. So data/ is what data.dvc says, and is in
    the copy's cache (`dvc status` is clean).
    dvc_cache: DVC cache dir to use instead of the copy's own .dvc/cache. Sharing one across
    copies shares DVC's run cache too: a stage that ran in one copy is then restored, not run
    ("Stage ... is cached - skipping run"), in the next.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for rel in _project_files():
        src = ROOT / rel
        if src.is_file():  # skips tracked files deleted in the workspace
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    run(["git", "init", "-q", "-b", "main"], dest)
    if dvc_cache is not None:
        run([str(BIN / "dvc"), "cache", "dir", "--local", str(dvc_cache)], dest)
    if with_data:
        pulled = run([str(BIN / "dvc"), "pull", "data.dvc"], dest, check=False)
        assert pulled.returncode == 0, (
            "data/ could not be restored from the dvc-inputs/ remote: after changing data/, run "
            "`dvc add data && dvc push data.dvc`\n" + pulled.stdout + pulled.stderr)
    if profile is not None:
        if not (dest / "profiles" / f"{profile}.yaml").exists():
            pytest.skip(f"profiles/{profile}.yaml does not exist yet")
        run([str(BIN / "justask"), "profile", profile], dest)
    run(["git", "add", "-A"], dest)
    run(["git", *GIT_ID, "commit", "-q", "--no-verify", "-m", "repo copy for tests"], dest)
    return dest


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
