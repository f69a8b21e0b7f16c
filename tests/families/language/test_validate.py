"""validate (language): the BabyAI datasets pass clean and each corruption fails, named, with examples.

One tiny collect run (profiles/test.yaml) serves every test; corrupted copies are written as new
Minari datasets through the same writer the collect stage uses.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from minari.data_collector.episode_buffer import EpisodeBuffer

from helpers import ROOT
from justask.config import load_params
from justask.datasets import read_episodes, write_buffers
from justask.errors import DatasetError, StageFailed
from justask.families import run_stage
from justask.families.language.env import ACTION_SPACE, OBSERVATION_SPACE
from justask.families.language.validate import expected, validate_language_dataset
from justask.paths import family_paths

LEVEL = "BabyAI-GoToLocal-v0"


@pytest.fixture(scope="module")
def params(tmp_path_factory):
    """The test profile on its first level alone (the counts below are one level's)."""
    import yaml

    raw = yaml.safe_load((ROOT / "profiles" / "test.yaml").read_text())
    language = raw["families"]["language"]
    assert language["env"]["levels"][0] == LEVEL
    language["env"]["levels"] = [LEVEL]
    language["relabel"]["held_out"]["cross_level"] = []  # its doors live in the second level
    path = tmp_path_factory.mktemp("lang-params") / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


@pytest.fixture(scope="module")
def collected(tmp_path_factory, params) -> Path:
    root = tmp_path_factory.mktemp("lang-validate")
    run_stage("collect", "language", params, root)
    return root


@pytest.fixture(scope="module")
def mix(collected) -> list[dict]:
    return read_episodes(family_paths("language", collected).dataset("mix"))


def write(path: Path, episodes: list[dict]) -> Path:
    buffers = [EpisodeBuffer(id=i, seed=ep["seed"], observations=ep["observations"], actions=ep["actions"],
                             rewards=ep["rewards"], terminations=ep["terminations"],
                             truncations=ep["truncations"], infos=ep["infos"])
               for i, ep in enumerate(episodes)]
    return write_buffers(path, buffers, OBSERVATION_SPACE, ACTION_SPACE, None, {})


def check(path: Path, params, overrides=None):
    """Validate as the stage does: the behaviours' own time limits unless ``overrides`` says otherwise."""
    episodes, behaviours, limits = expected(params)["mix"]
    return validate_language_dataset(path, params.family("language").env.levels, behaviours, episodes,
                                     limits if overrides is None else overrides, max_examples=3)


def failure(report, column: str):
    assert not report.success, report.summary()
    found = [f for f in report.failures if f.column == column]
    assert found, f"no failure on {column}:\n{report.summary()}"
    return found[0]


def longest(eps: list[dict]) -> int:
    return int(np.argmax([len(e["actions"]) for e in eps]))


def set_image_object(eps):
    eps[1]["observations"]["image"][0, 3, 2, 0] = 42  # no minigrid object has index 42


def set_direction(eps):
    eps[2]["observations"]["direction"][1] = 4


def set_action(eps):
    eps[3]["actions"][0] = 9


def set_nan_reward(eps):
    eps[4]["rewards"][0] = np.nan


def drop_end_flag(eps):
    eps[5]["terminations"][-1] = eps[5]["truncations"][-1] = False


def second_end_flag(eps):
    i = longest(eps)
    eps[i]["truncations"][2] = True


def unknown_level(eps):
    eps[6]["infos"]["level"][:] = b"BabyAI-Unknown-v0"


def drop_episode(eps):
    eps.pop()


@pytest.mark.parametrize("change, column, words", [
    (set_image_object, "image_object_max", ["object index is a valid minigrid encoding [0, 10]",
                                            "episode 1 step 0 = 42"]),
    (set_direction, "direction", ["direction is in the direction space {0..3}", "episode 2 step 1 = 4"]),
    (set_action, "action", ["action is in the action space {0..6}", "episode 3 step 0 = 9"]),
    (set_nan_reward, "reward", ["reward is present (not NaN)", "episode 4 step 0 = NaN/missing"]),
    (drop_end_flag, "end_flags", ["exactly one step per episode is terminated or truncated",
                                  "1 of 12 episodes fail", "episode 5 = 0"]),
    (second_end_flag, "end_flags", ["exactly one step", "= 2"]),
    (unknown_level, "level", [f"one of the configured levels ['{LEVEL}']",
                              "episode 6 = BabyAI-Unknown-v0"]),
    (drop_episode, "episode_id", ["holds 12 episodes", "observed 11"]),
], ids=["image-object", "direction", "action", "nan-reward", "no-end-flag", "two-end-flags", "unknown-level",
        "episode-count"])
def test_corruption_is_caught(tmp_path, params, mix, change, column, words):
    eps = copy.deepcopy(mix)
    change(eps)
    report = check(write(tmp_path / "bad", eps), params)
    text = failure(report, column).summary()
    for w in words:
        assert w in text, text


def test_clean_dataset_passes_and_longer_than_limit_fails(tmp_path, params, mix):
    path = write(tmp_path / "clean", mix)  # rewritten through the test's writer: a corruption's only change
    report = check(path, params)
    assert report.success, report.summary()
    assert (report.episodes, report.steps) == (12, sum(len(e["actions"]) for e in mix))
    assert report.evaluated >= 30
    # A time limit shorter than the random walk's episodes (80 steps here) is caught.
    f = failure(check(path, params, overrides={"random": 10}), "episode_length")
    assert "at most its level's max_steps" in f.summary() and f.unit == "episodes"
    assert all(e["value"][0] == 10 and e["value"][1] > 10 for e in f.examples), f.summary()


def test_final_observation_and_mission_are_checked(tmp_path, params, mix):
    eps = copy.deepcopy(mix)
    eps[0]["observations"]["image"][-1, 0, 0, 2] = 3  # state index 3 in the final observation
    eps[7]["infos"]["mission"][:] = b""
    report = check(write(tmp_path / "bad", eps), params)
    assert "episode 0 step" in failure(report, "next_image_state_max").summary()
    assert "episode 7 = '' (empty)" in failure(report, "mission").summary()


def test_dataset_with_other_spaces(tmp_path, params, mix):
    from gymnasium import spaces

    bufs = [EpisodeBuffer(id=0, observations=mix[0]["observations"]["direction"], actions=mix[0]["actions"],
                          rewards=mix[0]["rewards"], terminations=mix[0]["terminations"],
                          truncations=mix[0]["truncations"])]
    path = write_buffers(tmp_path / "flat", bufs, spaces.Discrete(4), ACTION_SPACE, None, {})
    with pytest.raises(DatasetError, match="observation space Discrete.*collect stage"):
        check(path, params)


def test_stage_passes_and_writes_reports(tmp_path, params, collected):
    paths = family_paths("language", tmp_path)
    shutil.copytree(family_paths("language", collected).collect, paths.collect)
    run_stage("validate", "language", params, tmp_path)
    summary = json.loads((paths.validate / "summary.json").read_text())
    assert summary["success"] and set(summary["datasets"]) == {"mix", "demos"}
    assert summary["datasets"]["demos"]["episodes"] == params.family("language").collect.demos
    assert (paths.validate_docs / "index.html").exists()
    assert sorted(f.name for f in paths.validate.iterdir()) == ["demos.json", "mix.json", "summary.json"]
    assert json.loads((paths.validate / "mix.json").read_text())["success"]


def test_stage_fails_naming_checks_and_examples(tmp_path, params, collected, mix):
    paths = family_paths("language", tmp_path)
    shutil.copytree(family_paths("language", collected).collect, paths.collect)
    eps = copy.deepcopy(mix)
    set_action(eps)
    unknown_level(eps)
    write(paths.dataset("mix"), eps)
    shutil.rmtree(paths.dataset("demos"))
    with pytest.raises(StageFailed) as exc:
        run_stage("validate", "language", params, tmp_path)
    msg = str(exc.value)
    assert "2 of 2 datasets failed" in msg
    assert "action: expected action is in the action space {0..6}" in msg and "episode 3 step 0 = 9" in msg
    assert "level: expected the level info is one of" in msg and "episode 6" in msg
    assert "metadata.json missing" in msg
    assert str(paths.validate_docs / "index.html") in msg and "HTML report" in msg
    assert (paths.validate_docs / "index.html").exists()
    saved = json.loads((paths.validate / "mix.json").read_text())
    assert {f["column"] for f in saved["failures"]} == {"action", "level"}
    assert not json.loads((paths.validate / "summary.json").read_text())["success"]
