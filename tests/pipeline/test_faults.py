"""Fault injection: mutations of the files a stage reads, applied one at a time to a test-profile
repository, and the invariants each must keep (issue 17).

The table is families of mutations (truncate, empty, garbage bytes, delete, and a valid file of the
same format from another slot) times the inputs of the stages of every family: language's validate,
relabel and train; return's and reward's validate, relabel, train and evaluate (the files each
reads, written by the stages before it or frozen under data/). For every case the stage command,
run as `dvc repro` runs it, must exit 2 (a deterministic fault: rerunning would fail the same way,
so the Prefect flow must not retry it), print no traceback, name the damaged file (or the dataset
folder it belongs to), and leave every earlier output byte for byte as it was, metrics included.
Its own earlier output stays as it was too, except validate's: a failed validation replaces its
reports with the failure's (what its message points to; dvc.lock keeps the passing run's record, so
`dvc status` shows validate to rerun). With each file restored, `dvc status` reports nothing
changed. tests/engine/test_integrity.py covers the check that names a damaged input when no other
check caught it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from helpers import BIN, copy_repo, run, tree_hashes


def art(family: str) -> Path:
    return Path("artifacts") / family


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


# "swap": a valid file of the same format copied over from another slot (the same model kind for
# another dataset, or another model kind): only a provenance check sees it.
SWAPS = {art("return") / "train/mixed/rvs/seed0/model.pt": art("return") / "train/medium-expert/rvs/seed0/model.pt",
         art("reward") / "collect/clone/model.pt": art("reward") / "train/oracle/pct_bc/seed0/model.pt"}
MUTATIONS: dict[str, Callable[[Path], None]] = {f.__name__: f for f in (truncate, empty, garbage, delete)}

# The language family's repository is built up to its relabel; one repository holds the return and
# reward families up to evaluate, their test profile slimmed where no case looks (two return models,
# no PPO). (family, stage, the file it reads, mutations): every file named is one the stage opens.
LANG, RET, REW = art("language"), art("return"), art("reward")
BUILT = {"language": ["relabel@language"], "return": ["evaluate@return", "evaluate@reward"]}
BUILT["reward"] = BUILT["return"]
CASES = [
    ("language", "validate", LANG / "collect/mix/main_data.hdf5", ("truncate", "garbage")),
    ("language", "validate", LANG / "collect/mix/metadata.json", ("empty", "delete")),
    ("language", "relabel", LANG / "collect/demos/main_data.hdf5", ("truncate",)),
    ("language", "relabel", LANG / "collect/mix/metadata.json", ("garbage",)),
    ("language", "relabel", Path("data/language/paraphrases.yaml"), ("garbage", "delete")),
    ("language", "train", LANG / "relabel/relabeled/actions.npy", ("truncate", "empty")),
    ("language", "train", LANG / "relabel/relabeled/starts.npy", ("garbage",)),
    ("language", "train", LANG / "relabel/relabeled/meta.json", ("garbage", "delete")),
    ("language", "train", LANG / "relabel/demos/images.npy", ("truncate",)),
    ("return", "validate", RET / "collect/mixed/main_data.hdf5", ("truncate",)),
    ("return", "relabel", RET / "collect/medium-expert/metadata.json", ("garbage",)),
    ("return", "train", RET / "relabel/mixed/observations.npy", ("truncate",)),
    ("return", "evaluate", RET / "train/mixed/rvs/seed0/model.pt", ("truncate", "swap")),
    ("return", "evaluate", RET / "relabel/conditions.json", ("delete",)),
    ("return", "evaluate", Path("data/return/eval_seeds.json"), ("garbage",)),
    ("reward", "validate", REW / "collect/noise/main_data.hdf5", ("garbage",)),
    ("reward", "relabel", REW / "collect/demos/metadata.json", ("delete",)),
    ("reward", "train", REW / "relabel/pairs_train/start.npy", ("truncate",)),
    ("reward", "evaluate", REW / "collect/held_out/main_data.hdf5", ("truncate",)),
    ("reward", "evaluate", REW / "collect/clone/model.pt", ("garbage", "swap")),
    ("reward", "evaluate", REW / "train/ranking/member0/model.pt", ("truncate",)),
    ("reward", "evaluate", REW / "train/rounds.json", ("garbage",)),
]
TABLE = [(family, stage, path, m) for family, stage, path, ms in CASES for m in ms]


def _outputs(repo: Path, family: str) -> dict[str, str]:
    """Every output of the family's stages (under ``art(family)``, keyed from there), data/, and
    its metrics (keyed ``metrics/...``)."""
    metrics = {f"metrics/{k}": v for k, v in tree_hashes(repo / "metrics").items() if k.startswith(family)}
    return {**tree_hashes(repo / art(family)), **tree_hashes(repo / "data"), **metrics}


def slim(params: dict) -> None:
    fams = params["families"]
    fams["return"]["train"]["models"] = {m: fams["return"]["train"]["models"][m] for m in ("rvs", "dt")}
    fams["reward"]["train"]["ppo"] = None


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Callable[[str], Path]:
    """The test-profile copy that holds ``family``, with its stages run up to ``BUILT[family]``
    (built when a case first needs it)."""
    repos: dict[str, Path] = {}

    def get(family: str) -> Path:
        key = BUILT[family][0]
        if key not in repos:
            repo = copy_repo(tmp_path_factory.mktemp("faults") / "repo")
            if family != "language":
                params = yaml.safe_load((repo / "params.yaml").read_text())
                slim(params)
                (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            run([str(BIN / "dvc"), "repro", *BUILT[family]], repo)
            repos[key] = repo
        return repos[key]

    return get


@pytest.mark.e2e
@pytest.mark.parametrize(("family", "stage", "path", "mutation"), TABLE,
                         ids=[f"{f}-{s}-{p.name}-{m}" for f, s, p, m in TABLE])
def test_a_damaged_input_is_named_with_exit_2_and_nothing_written_is_lost(built, family, stage, path, mutation,
                                                                         tmp_path):
    repo = built(family)
    target = repo / path
    keep = tmp_path / "original"
    shutil.copy2(target, keep)
    before = _outputs(repo, family)
    own = repo / art(family) / stage
    own_before = tree_hashes(own) if own.exists() else None
    reports = tmp_path / "reports"  # validate's, put back for the next case (see the module docstring)
    if stage == "validate":
        shutil.copytree(own, reports)
    if mutation == "swap":
        shutil.copy2(repo / SWAPS[path], target)
    else:
        MUTATIONS[mutation](target)
    try:
        proc = subprocess.run([str(BIN / "justask"), "stage", stage, family], cwd=repo, capture_output=True,
                              text=True, timeout=600, stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})
    finally:
        shutil.copy2(keep, target)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}:\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]
    # the file, or the dataset folder whose reader failed (a Minari dataset is read as one)
    assert path.name in out or str(path.parent) in out, f"the message does not name {path}:\n{out[-2000:]}"
    after = _outputs(repo, family)
    if stage == "validate":
        assert tree_hashes(own) != own_before  # the failure's reports
        shutil.rmtree(own)
        shutil.copytree(reports, own)
    elif own_before is not None:  # its own earlier output is as it was
        assert tree_hashes(own) == own_before
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
                     and not k.startswith(stage))  # its own outputs (validate: also validate-docs/)
    assert not changed, f"earlier outputs changed: {changed[:5]}"


@pytest.mark.e2e
@pytest.mark.parametrize("family", ["language", "return"])  # the second repository holds reward too
def test_after_the_faults_dvc_status_is_clean(built, family):
    """Runs after the table (pytest keeps file order): every mutated file was restored, and no
    failed stage left anything DVC would see as changed."""
    status = run([str(BIN / "dvc"), "status", *BUILT[family]], built(family)).stdout
    assert "changed" not in status and "modified" not in status, status
