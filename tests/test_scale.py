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

from justask.config import ScaleConfig, load_params
from justask.data.relabel import build_step_table
from justask.models import build_model, save_checkpoint
from justask.paths import family_paths
from justask.stages.collect import collect
from justask.stages.evaluate import rollout_rows
from justask.train import data_spec

ROOT = Path(__file__).resolve().parents[1]


def _folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.timeout(180)
def test_collection_on_dask_matches_process_pool(tmp_path):
    params = load_params(ROOT / "profiles" / "test.yaml")
    assert params.return_.collect.workers == 2
    hashes = {}
    for executor in ("process", "dask"):
        root = tmp_path / executor
        scaled = params.model_copy(update={"scale": ScaleConfig(executor=executor)})
        collect(scaled, root)
        folder = family_paths("return", root).collect
        assert {p.name for p in folder.iterdir()} >= set(params.return_.collect.datasets)
        hashes[executor] = _folder_hash(folder)
    assert hashes["dask"] == hashes["process"]


def _checkpoints(root: Path, params) -> dict:
    """Randomly initialised models of every return kind at the paths evaluate reads, and the
    conditions file's content for one dataset (what relabel would write)."""
    rng = np.random.default_rng(0)
    eps = [{"observations": rng.normal(size=(21, 8)).astype(np.float32), "actions": rng.integers(0, 4, 20),
            "rewards": rng.normal(size=20)} for _ in range(4)]
    spec = data_spec(build_step_table(eps, np.array([0, 0, 0, 1])),
                     {"max_episode_steps": params.return_.env.max_episode_steps,
                      "ref_min_score": -100.0, "ref_max_score": 100.0})
    paths = family_paths("return", root)
    for kind, cfg in params.return_.train.models.items():
        hp = cfg.model_dump()
        for seed in params.return_.train.seeds:
            torch.manual_seed(seed)
            save_checkpoint(paths.run_dir("toy", kind, seed) / "model.pt", kind, hp, spec,
                            build_model(kind, hp, spec), {})
    return {"target_fractions": [0.5, 1.0],
            "datasets": {"toy": {"target_returns": {"0.5": 0.0, "1": 100.0}}}}


@pytest.mark.timeout(180)
def test_evaluation_rows_identical_in_process_and_with_two_workers(tmp_path):
    params = load_params(ROOT / "profiles" / "test.yaml")
    conditions = _checkpoints(tmp_path, params)
    paths = family_paths("return", tmp_path)
    seeds = json.loads((ROOT / "data" / "eval_seeds.json").read_text())["seeds"][:3]
    device = torch.device("cpu")
    with torch.no_grad():
        one = rollout_rows(params, paths, conditions, seeds, device, workers=1)
        two = rollout_rows(params, paths, conditions, seeds, device, workers=2)
    models, tseeds = params.return_.train.models, params.return_.train.seeds
    conditioned = sum(k in ("rvs", "dt") for k in models)
    assert len(one) == len(tseeds) * len(seeds) * (2 * conditioned + len(models) - conditioned)
    assert len({r["ret"] for r in one}) > 1  # real, varied episodes, not a constant
    assert json.dumps(one, default=str) == json.dumps(two, default=str)
