"""Skill labels (the essay's AlphaStar example): each episode is labelled with its behaviour's
rank by a rating measured outside every dataset, never with anything of its own return."""

import json

import numpy as np
import pytest

from helpers import ROOT, family_module
from justask.config import load_params
from justask.datasets import read_metadata
from justask.families import run_stage
from justask.paths import family_paths
from justask.seeding import stream_seeds
from justask.steps import StepTable

skill_labels = family_module("return", "relabel").skill_labels


def test_labels_are_ranks_scaled_to_0_1():
    labels, by_name = skill_labels(["b", "a", "c", "a"], {"a": 10.0, "b": -5.0, "c": 200.0, "unused": 1e9})
    assert by_name == {"b": 0.0, "a": 0.5, "c": 1.0}  # only the dataset's own behaviours are ranked
    np.testing.assert_array_equal(labels, np.array([0.0, 0.5, 1.0, 0.5], np.float32))
    assert skill_labels(["x", "y"], {"x": 3.0, "y": 3.0})[1] == {"x": 0.5, "y": 0.5}  # ties share a rank
    assert skill_labels(["x"], {"x": 3.0})[1] == {"x": 1.0}
    with pytest.raises(ValueError, match=r"no skill rating for behaviour\(s\) \['y'\]; rerun `dvc repro collect"):
        skill_labels(["x", "y"], {"x": 3.0})


@pytest.fixture(scope="module")
def relabeled(tmp_path_factory):
    root = tmp_path_factory.mktemp("skill")
    params = load_params(ROOT / "profiles" / "test.yaml")
    run_stage("collect", "return", params, root)
    run_stage("relabel", "return", params, root)
    return root, params


def test_each_episode_carries_its_behaviours_rank_and_nothing_of_its_return(relabeled):
    root, params = relabeled
    paths = family_paths("return", root)
    ratings = {n: b["rating"] for n, b in json.loads(paths.collect_summary.read_text())["behaviours"].items()}
    for name in params.family("return").collect.datasets:
        table, meta = StepTable.load(paths.relabeled(name))
        behaviours = meta["behaviours"]
        present = sorted(set(behaviours), key=ratings.get)
        assert [meta["skill_labels"][b] for b in present] == pytest.approx(np.linspace(0, 1, len(present)))
        np.testing.assert_array_equal(table.skill, np.array([meta["skill_labels"][b] for b in behaviours], np.float32))
        for b in present:  # episodes of one behaviour differ in return, never in label
            mine = np.array(behaviours) == b
            assert len(set(table.skill[mine])) == 1
        assert len(set(np.round(table.returns, 6))) > len(present)


def test_ratings_come_from_episodes_outside_every_dataset(relabeled):
    root, params = relabeled
    paths = family_paths("return", root)
    summary = json.loads(paths.collect_summary.read_text())
    for b, info in summary["behaviours"].items():
        rating = set(stream_seeds(params.seed, f"rating/{b}", info["rating_episodes"]))
        assert rating.isdisjoint(stream_seeds(params.seed, f"collect/{b}", info["episodes"]))
    for name in params.family("return").collect.datasets:
        meta = read_metadata(paths.dataset(name))
        assert len(json.loads(meta["behaviours"])) == summary["datasets"][name]["episodes"]
