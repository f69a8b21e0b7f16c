"""collect (language): Minari datasets of BabyAI episodes, reproducible byte for byte."""

import hashlib
from pathlib import Path

import minari
import numpy as np
import pytest

from helpers import ROOT
from justask.config import load_params
from justask.errors import StageFailed
from justask.families import run_stage
from justask.families.language.env import collect_env_seeds
from justask.paths import family_paths


def _params(workers: int = 2):
    params = load_params(ROOT / "profiles" / "test.yaml")
    language = params.family("language")
    collect = language.collect.model_copy(update={"workers": workers})
    families = {**params.families, "language": language.model_copy(update={"collect": collect})}
    return params.model_copy(update={"families": families})


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*.hdf5")):
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lang")
    run_stage("collect", "language", _params(), root)
    return root


def test_datasets_load_with_minari(collected):
    params = _params()
    cfg, levels = params.family("language").collect, params.family("language").env.levels
    paths = family_paths("language", collected)
    mix = minari.MinariDataset(paths.dataset("mix"))
    assert mix.total_episodes == sum(b.episodes for b in cfg.mix) * len(levels)
    demos = minari.MinariDataset(paths.dataset("demos"))
    assert demos.total_episodes == cfg.demos * len(levels)
    for ep in demos.iterate_episodes():
        n = len(ep.actions)
        assert ep.observations["image"].shape == (n + 1, 7, 7, 3)
        assert ep.observations["image"].dtype == np.uint8
        assert ep.observations["direction"].shape == (n + 1,)
        level = ep.infos["level"][0].decode()
        assert ep.infos["mission"][0].decode().startswith("open the" if "OpenDoor" in level else "go to")
        assert ep.infos["behaviour"][0] == b"bot"
        assert ep.terminations[-1] or ep.truncations[-1]
    behaviours = {ep.infos["behaviour"][0].decode() for ep in mix.iterate_episodes()}
    assert behaviours == {b.name for b in cfg.mix}


def test_summary_records_behaviour_quality(collected):
    import json

    summary = json.loads(family_paths("language", collected).collect_summary.read_text())
    demos = summary["datasets"]["demos"]["behaviours"]["BabyAI-GoToLocal-v0/bot"]
    assert demos["own_mission_success"] >= 0.75  # the bot solves its own missions
    levels = _params().family("language").env.levels
    assert set(summary["datasets"]["mix"]["behaviours"]) == {
        f"{level}/{b}" for level in levels for b in ("other_goal", "noisy_bot-eps0.3", "random")}


def test_same_params_same_bytes_whatever_the_worker_count(collected, tmp_path):
    run_stage("collect", "language", _params(workers=1), tmp_path)
    for name in ("mix", "demos"):
        a = family_paths("language", collected).dataset(name)
        b = family_paths("language", tmp_path).dataset(name)
        assert _digest(a) == _digest(b)


def test_collect_seeds_are_distinct_streams():
    seeds = collect_env_seeds(_params())
    cfg = _params().family("language").collect
    levels = _params().family("language").env.levels
    # no seed reused across streams (behaviours x levels)
    assert len(seeds) == (sum(b.episodes for b in cfg.mix) + cfg.demos) * len(levels)


def test_missing_language_section_is_a_clear_error(tmp_path):
    params = _params()
    params = params.model_copy(update={"families": {k: v for k, v in params.families.items() if k != "language"}})
    with pytest.raises(StageFailed, match="params.yaml has no families.language section"):
        run_stage("collect", "language", params, tmp_path)
