"""Bring your own Minari dataset (issue 18): a LunarLander dataset written by minari's DataCollector,
named in params instead of behaviours, goes through collect, validate, relabel, train and evaluate
unchanged; one that cannot be checked against the family's env is refused by collect with the file,
what was found and the fix, every earlier output left byte-identical."""

from __future__ import annotations

import json
import shutil
import sys
import types
import warnings
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from helpers import ROOT, flat, tree_hashes
from justask.cli import app
from justask.config import ParamsError, load_params
from justask.families import run_stage
from justask.io import files_digest
from justask.paths import family_paths
from justask.steps import StepTable

RATED = "byo/lunar-rated-v0"  # records ref_min_score / ref_max_score
UNRATED = "byo/lunar-unrated-v0"
CONTINUOUS = "byo/lunar-continuous-v0"
REFS = (-250.0, 150.0)
EPISODES = 6


def _tree_map(f, tree, *rest):
    if isinstance(tree, dict):
        return {k: _tree_map(f, v, *(r[k] for r in rest)) for k, v in tree.items()}
    if isinstance(tree, tuple | list):
        return type(tree)(_tree_map(f, v, *(r[i] for r in rest)) for i, v in enumerate(tree))
    return f(tree, *rest)


def record(dataset_id: str, continuous: bool = False, refs: tuple[float, float] | None = None) -> Path:
    """``EPISODES`` short episodes of random actions, written by minari's DataCollector into the data
    root (MINARI_DATASETS_PATH); returns the dataset's data folder."""
    from minari import DataCollector

    env = DataCollector(gym.make("LunarLander-v3", continuous=continuous, max_episode_steps=40))
    env.action_space.seed(0)
    for i in range(EPISODES):
        env.reset(seed=1000 + i)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no author, eval_env, ... given
        dataset = env.create_dataset(dataset_id, algorithm_name="random actions", **(
            {"ref_min_score": refs[0], "ref_max_score": refs[1]} if refs else {}))
    env.close()
    return Path(dataset.storage.data_path)


@pytest.fixture(scope="module")
def minari_root(tmp_path_factory):
    """A Minari data root with three datasets written by DataCollector, set as MINARI_DATASETS_PATH.
    DataCollector's episode buffers use jax only for ``jax.tree_util.tree_map`` (``minari[create]``
    pulls in all of jax, which the lock file leaves out); a stand-in maps nested dicts and tuples."""
    root = tmp_path_factory.mktemp("minari")
    jax, tree_util = types.ModuleType("jax"), types.ModuleType("jax.tree_util")
    tree_util.tree_map, jax.tree_util = _tree_map, tree_util
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        with pytest.MonkeyPatch.context() as stand_in:  # while recording only: scipy takes any jax for the real one
            stand_in.setitem(sys.modules, "jax", jax)
            stand_in.setitem(sys.modules, "jax.tree_util", tree_util)
            record(RATED, refs=REFS)
            record(UNRATED)
            record(CONTINUOUS, continuous=True)
        yield root


def params_with(datasets: dict) -> dict:
    raw = yaml.safe_load((ROOT / "profiles" / "test.yaml").read_text())
    raw["families"] = {"return": raw["families"]["return"]}
    raw["families"]["return"]["collect"]["datasets"] = datasets
    return raw


def write_params(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def run_stages(root: Path, datasets: dict, stages: tuple[str, ...]):
    params = load_params(write_params(root / "params.yaml", params_with(datasets)))
    paths = family_paths("return", root)
    paths.eval_seeds.parent.mkdir(parents=True)
    shutil.copy(family_paths("return", ROOT).eval_seeds, paths.eval_seeds)
    with torch.enable_grad():  # evaluate turns gradients off for its process; keep them for the next tests
        for stage in stages:
            run_stage(stage, "return", params, root)
    return params.family("return"), paths


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, minari_root):
    """The five stages of the return family on the test profile with a dataset brought by its id."""
    root = tmp_path_factory.mktemp("byo")
    source = tree_hashes(minari_root / RATED)
    fam, paths = run_stages(root, {"mine": {"minari": RATED}}, ("collect", "validate", "relabel", "train", "evaluate"))
    return root, fam, paths, source


def test_a_datacollector_dataset_goes_through_every_stage(pipeline, minari_root):
    _, fam, paths, source = pipeline
    folder = minari_root / RATED / "data"
    assert tree_hashes(minari_root / RATED) == source, "the user's dataset is only read"
    summary = json.loads(paths.collect_summary.read_text())
    mine = summary["datasets"]["mine"]
    assert mine["episodes"] == EPISODES and mine["source"] == {"minari": RATED, "path": str(folder),
                                                               "sha256": files_digest(folder)}
    meta = json.loads((paths.dataset("mine") / "metadata.json").read_text())
    assert meta["source"] == str(folder) and meta["source_sha256"] == files_digest(folder)
    assert json.loads(meta["behaviours"]) == ["minari:mine"] * EPISODES
    # The copy holds the user's episodes as they are.
    assert (paths.dataset("mine") / "main_data.hdf5").read_bytes() == (folder / "main_data.hdf5").read_bytes()
    assert json.loads((paths.validate / "mine.json").read_text())["success"]
    table, relabeled = StepTable.load(paths.relabeled("mine"))
    assert relabeled["episodes"] == EPISODES and len(table.returns) == EPISODES
    # The dataset's metadata records reference scores: the targets are asked in them.
    conditions = json.loads(paths.conditions.read_text())["datasets"]["mine"]
    assert (conditions["ref_min_score"], conditions["ref_max_score"]) == REFS
    assert mine["ref_scores_from"] == "dataset metadata"
    metrics = json.loads(paths.metrics.read_text())
    assert set(metrics["datasets"]) == {"mine"} and set(metrics["datasets"]["mine"]["models"]) == set(fam.train.models)
    # ... and scored in them: the dataset's table names its own reference scores, and a BC score is
    # its mean return normalized by them.
    cell = metrics["datasets"]["mine"]
    assert (cell["ref_min_score"], cell["ref_max_score"]) == REFS
    assert REFS != (metrics["ref_min_score"], metrics["ref_max_score"])
    bc = cell["models"]["bc"]["any"]
    assert bc["score_mean"] == pytest.approx(100 * (bc["return_mean"] - REFS[0]) / (REFS[1] - REFS[0]), abs=1e-3)


def test_a_dataset_without_reference_scores_gets_the_measured_ones_beside_the_familys_own(minari_root, tmp_path):
    folder = minari_root / UNRATED / "data"
    datasets = {"own": [{"controller": "expert", "episodes": 2}], "unrated": {"minari": str(folder)}}
    _, paths = run_stages(tmp_path, datasets, ("collect", "validate", "relabel"))
    summary = json.loads(paths.collect_summary.read_text())
    conditions = json.loads(paths.conditions.read_text())["datasets"]
    assert (conditions["unrated"]["ref_min_score"], conditions["unrated"]["ref_max_score"]) == \
        (summary["ref_min_score"], summary["ref_max_score"])
    assert summary["datasets"]["unrated"]["ref_scores_from"] == "measured"
    assert set(summary["behaviours"]) == {"expert", "minari:unrated"}
    assert all(json.loads((paths.validate / f"{name}.json").read_text())["success"] for name in ("own", "unrated"))


def _no_minari(tmp: Path, minari_root: Path) -> tuple[Path, list[str]]:
    folder = tmp / "csv-export"
    folder.mkdir()
    (folder / "episodes.csv").write_text("obs,action\n")
    return folder, [f"{folder} (families.return.collect.datasets.mine.minari): not a Minari dataset: no "
                    "metadata.json in it or in its data/ (found: ['episodes.csv'])", "Point families.return"]


def _no_env_spec(tmp: Path, minari_root: Path) -> tuple[Path, list[str]]:
    folder = shutil.copytree(minari_root / RATED / "data", tmp / "no-spec")
    meta = json.loads((folder / "metadata.json").read_text())
    del meta["env_spec"]
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder, [f"{folder / 'metadata.json'} (families.return.collect.datasets.mine.minari): no env_spec (found "
                    "keys ['action_space',", "gymnasium.make('LunarLander-v3', ...)"]


def _continuous(tmp: Path, minari_root: Path) -> tuple[Path, list[str]]:
    folder = minari_root / CONTINUOUS / "data"
    return folder, [f"{folder / 'metadata.json'} (families.return.collect.datasets.mine.minari): action space "
                    "Box(-1.0, 1.0, (2,), float32) differs from the configured env's Discrete(4) (continuous=False); "
                    "point families.return.collect.datasets.mine.minari at a dataset recorded in LunarLander-v3 "
                    "(continuous=False), or set the family's env to the one the dataset was recorded in"]


def _no_flags(tmp: Path, minari_root: Path) -> tuple[Path, list[str]]:
    folder = shutil.copytree(minari_root / RATED / "data", tmp / "no-flags")
    with h5py.File(folder / "main_data.hdf5", "a") as f:
        del f["episode_2/terminations"], f["episode_2/truncations"]
    return folder, [f"{folder / 'main_data.hdf5'} (families.return.collect.datasets.mine.minari): episode 2 lacks an "
                    "array every Minari episode holds", "terminations", "Re-create it with minari's DataCollector"]


def _unflagged_end(tmp: Path, minari_root: Path) -> tuple[Path, list[str]]:
    folder = shutil.copytree(minari_root / RATED / "data", tmp / "cut")
    with h5py.File(folder / "main_data.hdf5", "a") as f:
        for key in ("terminations", "truncations"):
            f[f"episode_4/{key}"][...] = np.zeros_like(f[f"episode_4/{key}"][...])
    return folder, [f"{folder / 'main_data.hdf5'} (families.return.collect.datasets.mine.minari): episode 4 does not "
                    "end with a termination or truncation on its last step (found terminations [False False False] "
                    "and truncations [False False False] on its last steps)",
                    "Re-create it with minari's DataCollector"]


def _unknown_id(tmp: Path, minari_root: Path) -> tuple[str, list[str]]:
    return "byo/nope-v0", ["families.return.collect.datasets.mine.minari: found no file or folder 'byo/nope-v0' "
                           "(relative to ", f"and no dataset with that id in the Minari data root {minari_root} "
                           f"(MINARI_DATASETS_PATH), which holds: {CONTINUOUS}, {RATED}, {UNRATED}. Give the dataset "
                           "folder's path, or one of those ids."]


@pytest.mark.parametrize(
    "case", [_no_minari, _no_env_spec, _continuous, _no_flags, _unflagged_end, _unknown_id],
    ids=["not-minari", "no-env-spec", "continuous-actions", "no-end-flags", "unflagged-end", "unknown-id"])
def test_refused_with_the_file_what_was_found_and_the_fix(pipeline, minari_root, tmp_path, monkeypatch, case):
    root, _, _, _ = pipeline
    source, expected = case(tmp_path, minari_root)
    before = (tree_hashes(root / "artifacts"), tree_hashes(root / "metrics"))
    params = write_params(tmp_path / "params.yaml", params_with({"mine": {"minari": str(source)}}))
    monkeypatch.chdir(root)
    result = CliRunner().invoke(app, ["stage", "collect", "return", "--params", str(params)])
    assert result.exit_code == 2, result.output
    err = flat(result.stderr)
    assert "collect failed" in err and "Traceback" not in err
    for part in expected:
        assert part in err, err
    assert (tree_hashes(root / "artifacts"), tree_hashes(root / "metrics")) == before


def test_a_misspelt_entry_is_named_by_its_field(tmp_path):
    with pytest.raises(ParamsError) as info:
        load_params(write_params(tmp_path / "params.yaml", params_with({"mine": {"mnari": "x"}})))
    message = str(info.value)
    assert "  - families.return.collect.datasets.mine.minari: Field required" in message
    assert "  - families.return.collect.datasets.mine.mnari: unknown key" in message
