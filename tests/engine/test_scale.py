"""Scale-out changes where rollouts run, never what they produce: collection on a local 2-worker
Dask cluster writes the same files as the default process pool, and evaluation gives the same
rows in-process and fanned out over 2 worker processes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import ROOT, family_module
from justask.config import load_params
from justask.models import build_model
from justask.paths import family_paths
from justask.settings import ScaleConfig
from justask.steps import build_step_table, data_spec
from justask.training.checkpoints import save_checkpoint

collect = family_module("return", "collect").collect
rollout_rows = family_module("return", "evaluate").rollout_rows
expected_provenance = family_module("return", "provenance").expected_provenance


def _folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.timeout(180)
def test_collection_on_dask_matches_process_pool(tmp_path):
    params = load_params(ROOT / "profiles" / "test.yaml")
    assert params.family("return").collect.workers == 2
    hashes = {}
    for executor in ("process", "dask"):
        root = tmp_path / executor
        scaled = params.model_copy(update={"scale": ScaleConfig(executor=executor)})
        collect(scaled, root)
        folder = family_paths("return", root).collect
        assert {p.name for p in folder.iterdir()} >= set(params.family("return").collect.datasets)
        hashes[executor] = _folder_hash(folder)
    assert hashes["dask"] == hashes["process"]


def _checkpoints(root: Path, params) -> dict:
    """Randomly initialised models of every return kind at the paths evaluate reads, and the
    conditions file's content for one dataset (what relabel would write)."""
    rng = np.random.default_rng(0)
    eps = [{"observations": rng.normal(size=(21, 8)).astype(np.float32), "actions": rng.integers(0, 4, 20),
            "rewards": rng.normal(size=20)} for _ in range(4)]
    table = build_step_table(eps, np.array([0, 0, 0, 1]))
    meta = {"max_episode_steps": params.family("return").env.max_episode_steps,
            "ref_min_score": -100.0, "ref_max_score": 100.0}
    spec = data_spec(table, meta)
    paths = family_paths("return", root)
    table.save(paths.relabeled("toy"), meta)
    for kind, cfg in params.family("return").train.models.items():
        hp = cfg.hp
        prov = expected_provenance(params, paths, "toy", kind)
        for seed in params.family("return").train.seeds:
            for file, init in (("model.pt", seed), ("last.pt", 100 + seed)):  # "last": other weights
                torch.manual_seed(init)
                save_checkpoint(paths.run_dir("toy", kind, seed) / file, kind, hp, spec,
                                build_model(kind, hp, spec), {}, prov)
    return {"target_fractions": [0.5, 1.0],
            "datasets": {"toy": {"target_returns": {"0.5": 0.0, "1": 100.0}, "top_skill": 1.0}}}


@pytest.mark.timeout(180)
def test_evaluation_rows_identical_in_process_and_with_two_workers(tmp_path):
    params = load_params(ROOT / "profiles" / "test.yaml")
    conditions = _checkpoints(tmp_path, params)
    paths = family_paths("return", tmp_path)
    seeds = json.loads(family_paths("return", ROOT).eval_seeds.read_text())["seeds"][:3]
    device = torch.device("cpu")
    with torch.no_grad():
        one = rollout_rows(params, paths, conditions, seeds, device, workers=1)
        two = rollout_rows(params, paths, conditions, seeds, device, workers=2)
    models, tseeds = params.family("return").train.models, params.family("return").train.seeds
    conditioned = sum(k in ("rvs", "dt") for k in models)
    # Selected weights: conditioned models at both targets, the others once; last weights: once each.
    assert len(one) == len(tseeds) * len(seeds) * (2 * conditioned + len(models) - conditioned + len(models))
    last = [r for r in one if r["weights"] == "last"]
    assert {r["target_fraction"] for r in last if r["model"] in ("rvs", "dt")} == {1.0}
    assert {r["asked_skill"] for r in one if r["model"] == "skill"} == {1.0}
    best = {(r["model"], r["seed"], r["env_seed"]): r["ret"] for r in one
            if r["weights"] == "best" and (r["target_fraction"] == 1.0 or r["model"] not in ("rvs", "dt"))}
    assert any(best[(r["model"], r["seed"], r["env_seed"])] != r["ret"] for r in last)  # last.pt is what ran
    assert len({r["ret"] for r in one}) > 1  # real, varied episodes, not a constant
    assert json.dumps(one, default=str) == json.dumps(two, default=str)



@pytest.mark.timeout(120)
def test_a_failing_job_stops_the_pool_without_waiting_for_the_running_ones():
    import time

    from justask.executors import run_all

    # time.sleep: a job a spawned worker can import; sleep("x") fails at once, sleep(90) runs long
    assert run_all(time.sleep, [0, 0], 2) == [None, None]
    t0 = time.monotonic()
    with pytest.raises(TypeError):
        run_all(time.sleep, [90, "x", 0], 2)
    assert time.monotonic() - t0 < 45, "the failed stage waited for a running job to finish"
