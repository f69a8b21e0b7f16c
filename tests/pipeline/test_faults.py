"""Fault injection: mutations of the files a stage reads, applied one at a time to a test-profile
repository, and the invariants each must keep (issue 17).

The table is families of mutations (truncate, empty, garbage bytes, delete) times the inputs of
three language stages (validate, relabel, train; the files each reads, written by the stages
before it or frozen under data/). For every case the stage command, run as `dvc repro` runs it,
must exit 2 (a deterministic fault: rerunning would fail the same way, so the Prefect flow must
not retry it), print no traceback, name the damaged file (or the dataset folder it belongs to),
and leave every earlier output byte for byte as it was. Its own earlier output stays as it was too,
except validate's: a failed validation replaces its reports with the failure's (what its message
points to; dvc.lock keeps the passing run's record, so `dvc status` shows validate to rerun). With
each file restored, `dvc status` reports nothing changed. tests/engine/test_integrity.py covers the
check that names a damaged input when no other check caught it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import BIN, copy_repo, run

ART = Path("artifacts") / "language"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def garbage(path: Path) -> None:
    """Same length, other bytes (a bad sector, a wrong file copied over): only a checksum sees it
    when the format has no structure to break at the front."""
    data = path.read_bytes()
    path.write_bytes(bytes(b ^ 0x5A for b in data))


def delete(path: Path) -> None:
    path.unlink()


MUTATIONS: dict[str, Callable[[Path], None]] = {f.__name__: f for f in (truncate, empty, garbage, delete)}

# (stage, the file it reads, mutations): every file named is one the stage opens.
CASES = [
    ("validate", ART / "collect/mix/main_data.hdf5", ("truncate", "garbage")),
    ("validate", ART / "collect/mix/metadata.json", ("empty", "delete")),
    ("relabel", ART / "collect/demos/main_data.hdf5", ("truncate",)),
    ("relabel", ART / "collect/mix/metadata.json", ("garbage",)),
    ("relabel", Path("data/language/paraphrases.yaml"), ("garbage", "delete")),
    ("train", ART / "relabel/relabeled/actions.npy", ("truncate", "empty")),
    ("train", ART / "relabel/relabeled/starts.npy", ("garbage",)),
    ("train", ART / "relabel/relabeled/meta.json", ("garbage", "delete")),
    ("train", ART / "relabel/demos/images.npy", ("truncate",)),
]
TABLE = [(stage, path, m) for stage, path, ms in CASES for m in ms]


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A test-profile copy with collect, validate and relabel of the language family run."""
    repo = copy_repo(tmp_path_factory.mktemp("faults") / "repo")
    run([str(BIN / "dvc"), "repro", "relabel@language"], repo)
    return repo


@pytest.mark.e2e
@pytest.mark.parametrize(("stage", "path", "mutation"), TABLE, ids=[f"{s}-{p.name}-{m}" for s, p, m in TABLE])
def test_a_damaged_input_is_named_with_exit_2_and_nothing_written_is_lost(built, stage, path, mutation, tmp_path):
    repo, target = built, built / path
    keep = tmp_path / "original"
    shutil.copy2(target, keep)
    before = {**_hashes(repo / ART), **_hashes(repo / "data")}
    own = repo / ART / stage
    own_before = _hashes(own) if own.exists() else None
    reports = tmp_path / "reports"  # validate's, put back for the next case (see the module docstring)
    if stage == "validate":
        shutil.copytree(own, reports)
    MUTATIONS[mutation](target)
    try:
        proc = subprocess.run([str(BIN / "justask"), "stage", stage, "language"], cwd=repo, capture_output=True,
                              text=True, timeout=600, stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})
    finally:
        shutil.copy2(keep, target)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}:\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]
    # the file, or the dataset folder whose reader failed (a Minari dataset is read as one)
    assert path.name in out or str(path.parent) in out, f"the message does not name {path}:\n{out[-2000:]}"
    after = {**_hashes(repo / ART), **_hashes(repo / "data")}
    if stage == "validate":
        assert (own / "summary.json").read_bytes() != (reports / "summary.json").read_bytes()  # the failure's
        shutil.rmtree(own)
        shutil.copytree(reports, own)
    elif own_before is not None:  # its own earlier output is as it was
        assert _hashes(own) == own_before
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
                     and not k.startswith(stage))  # its own outputs (validate: also validate-docs/)
    assert not changed, f"earlier outputs changed: {changed[:5]}"


@pytest.mark.e2e
def test_after_the_faults_dvc_status_is_clean(built):
    """Runs after the table (pytest keeps file order): every mutated file was restored, and no
    failed stage left anything DVC would see as changed."""
    status = run([str(BIN / "dvc"), "status", "relabel@language"], built).stdout
    assert "changed" not in status and "modified" not in status, status
