"""End to end: the whole DAG through `dvc repro` on the test profile, in a temporary repo copy;
and byte-for-byte reproducibility of the dataset stages."""

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from conftest import BIN, run
from justask.config import load_params

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["collect", "validate", "relabel", "train", "evaluate"]


def dvc(repo: Path, *args: str, check: bool = True):
    return run([str(BIN / "dvc"), *args], repo, check=check)


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.e2e
def test_dvc_repro_end_to_end(repo_copy: Path):
    out = dvc(repo_copy, "repro").stdout
    for stage in STAGES:
        assert f"Running stage '{stage}@return'" in out, out[-3000:]
    lock = yaml.safe_load((repo_copy / "dvc.lock").read_text())
    assert set(lock["stages"]) == {f"{s}@return" for s in STAGES}

    metrics = json.loads((repo_copy / "metrics" / "return.json").read_text())
    assert set(metrics["datasets"]) == {"medium-expert", "mixed"}
    models = metrics["datasets"]["mixed"]["models"]
    assert set(models) == {"bc", "pct_bc", "rvs", "dt"}
    assert set(models["rvs"]) == {"t0.5", "t1", "t1.2"} and set(models["bc"]) == {"any"}
    assert (repo_copy / "metrics" / "return-achieved.csv").read_text().startswith("dataset,")
    assert list((repo_copy / "artifacts" / "return" / "evaluate").glob("*.gif"))
    shown = run([str(BIN / "justask"), "results", "return"], repo_copy).stdout
    assert "medium-expert" in shown and "rvs" in shown

    # Nothing changed: nothing runs.
    again = dvc(repo_copy, "repro").stdout
    assert "Running stage" not in again, again

    # Only an evaluation param changed: only evaluate runs.
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    params["return"]["evaluate"]["episodes"] = 3
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    partial = dvc(repo_copy, "repro").stdout
    assert "Running stage 'evaluate@return'" in partial
    for stage in STAGES[:-1]:
        assert f"Running stage '{stage}@return'" not in partial

    # Same params, models and seeds: evaluation reproduces the same numbers (no run cache).
    params["return"]["evaluate"]["episodes"] = 2
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(repo_copy, "repro", "--no-run-cache")
    assert json.loads((repo_copy / "metrics" / "return.json").read_text()) == metrics


def _collect_and_relabel(root: Path) -> None:
    from justask.stages.collect import collect
    from justask.stages.relabel import relabel

    params = load_params(ROOT / "profiles" / "test.yaml")
    collect(params, root)
    relabel(params, root)


def test_dataset_stages_are_byte_identical(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "data").mkdir(parents=True)
    (b / "data").mkdir(parents=True)
    _collect_and_relabel(a)
    _collect_and_relabel(b)
    for stage in ("collect", "relabel"):
        ha, hb = _hashes(a / "artifacts" / "return" / stage), _hashes(b / "artifacts" / "return" / stage)
        assert ha and ha == hb, stage


def test_collect_episode_order_does_not_depend_on_worker_count(tmp_path: Path):
    from justask.stages.collect import Job, run_job

    params = load_params(ROOT / "profiles" / "test.yaml")
    seeds = (11, 12, 13, 14, 15)
    one = run_job(Job("expert", 0.3, seeds, 0, params.return_.env, num_envs=1))[1]
    many = run_job(Job("expert", 0.3, seeds, 0, params.return_.env, num_envs=4))[1]
    for x, y in zip(one, many, strict=True):
        assert x.seed == y.seed and x.ret == y.ret and (x.actions == y.actions).all()
