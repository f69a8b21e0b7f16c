"""Helpers shared by the tests (imported as ``helpers``; pytest puts tests/ on the path).

* ``make_repo_copy``-style copies: :func:`copy_repo` makes a temporary, ``git init``-ed copy of this
  repository (tracked and new, not ignored files; data/ restored with ``dvc pull data.dvc`` as in
  a fresh clone), switched to a profile, with its own DVC cache (or one shared by the session).
  Run ``dvc repro`` or the Prefect flow in it, never in the real workspace.
* :func:`run`: a command with its output shown on failure; :func:`load_pipeline`: flows/pipeline.py.
* :func:`tree_hashes`: what a folder holds, to show a step left it alone; :func:`flat`: output with
  its whitespace collapsed.
"""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GIT_ID = ["-c", "user.name=justask-tests", "-c", "user.email=tests@localhost",
          "-c", "commit.gpgsign=false"]


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (hidden ones, e.g. temporaries, included), keyed by its
    path relative to ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def flat(text: str) -> str:
    """Whitespace collapsed, so assertions do not depend on where a console wrapped lines."""
    return " ".join(text.split())


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


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 1800, env: dict | None = None,
        ) -> subprocess.CompletedProcess[str]:
    """Run a command (venv bin first on PATH; ``env``: the environment, default this process's),
    capturing output; on failure show it."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)
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

    profile: run `justask profile <profile>` in the copy (a missing profile fails the test: the
    profiles are part of the repository); None keeps params.yaml as it is.
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
        assert (dest / "profiles" / f"{profile}.yaml").exists(), f"profiles/{profile}.yaml is missing"
        run([str(BIN / "justask"), "profile", profile], dest)
    run(["git", "add", "-A"], dest)
    run(["git", *GIT_ID, "commit", "-q", "--no-verify", "-m", "repo copy for tests"], dest)
    return dest


def family_module(family: str, name: str):
    """``justask.families.<family>.<name>`` (the return family's package is named after a keyword,
    so it is imported by name, not with an import statement)."""
    from justask.families import get_family

    return get_family(family).module(name)


def family_checks(family: str):
    """``tests/families/<family>/checks.py`` (what the family's end-to-end run must leave behind),
    loaded by path (the folder of the return family is named after a keyword)."""
    import importlib.util

    path = ROOT / "tests" / "families" / family / "checks.py"
    assert path.exists(), f"{path}: every family's test folder says what its end-to-end run must produce"
    spec = importlib.util.spec_from_file_location(f"checks_{family}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
