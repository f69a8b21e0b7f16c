"""The learning histories on disk: collect writes every training goal's history whole and in order,
read_histories gives them back as the learner ran them, and refuses a dataset with a held-out goal,
histories out of order, the wrong episode count or rewards its goals do not give. A held-out goal
never reaches relabel's contexts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT
from justask.config import load_params
from justask.errors import DatasetError, StageFailed
from justask.families.improve.collect import collect
from justask.families.improve.contexts import Contexts, kept_episodes
from justask.families.improve.env import reward
from justask.families.improve.goals import start_cell, training_goals
from justask.families.improve.histories import read_histories
from justask.families.improve.learner import learn
from justask.families.improve.relabel import relabel
from justask.paths import family_paths
from justask.seeding import stream_seeds


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> tuple[Path, object]:
    """A root with data/ and the test profile's collect output (20 histories x 12 episodes of 8 steps)."""
    root = tmp_path_factory.mktemp("improve") / "base"
    shutil.copytree(ROOT / "data", root / "data")
    params = load_params(ROOT / "profiles" / "test.yaml")
    collect(params, root)
    return root, params


def _dataset(root: Path) -> Path:
    return family_paths("improve", root).dataset("histories")


def _copy(collected, tmp_path: Path) -> Path:
    """A copy of the whole root (data/ and artifacts/), to corrupt."""
    root = tmp_path / "root"
    shutil.copytree(collected[0], root)
    return root


def _rewrite(dataset: Path, key: str, change) -> None:
    """Rewrite one per-episode list of the dataset's metadata.json with ``change(list) -> list``."""
    path = dataset / "metadata.json"
    meta = json.loads(path.read_text())
    meta[key] = json.dumps(change(json.loads(meta[key])))
    path.write_text(json.dumps(meta))


def test_read_histories_gives_back_the_learners_runs(collected):
    root, params = collected
    fam = params.family("improve")
    env, episodes = fam.env, fam.collect.episodes
    h = read_histories(_dataset(root), env, episodes)
    goals = training_goals(env)
    n = len(goals) * fam.collect.histories_per_goal
    horizon = env.max_episode_steps
    assert len(h) == n == 20
    assert h.cells.shape == (n, episodes, horizon + 1, 2) and h.cells.dtype == np.int64
    assert h.actions.shape == h.rewards.shape == (n, episodes, horizon)
    assert h.goals.shape == (n, 2)
    assert [tuple(g) for g in h.goals.tolist()] == [g for g in goals for _ in range(fam.collect.histories_per_goal)]
    assert (h.cells[:, :, 0] == start_cell(env.size)).all()
    assert np.array_equal(h.rewards, reward(h.cells[:, :, 1:], h.goals[:, None, None, :]))
    held = {tuple(g) for g in env.held_out_goals}
    assert not held & {tuple(g) for g in h.goals.tolist()}
    # history i is exactly the learner's run on its goal with its stream seed
    seeds = stream_seeds(params.seed, "improve/collect", n)
    for i in (0, 7, n - 1):
        run = learn(tuple(h.goals[i]), env.size, horizon, episodes, fam.collect.learner, seeds[i])
        assert np.array_equal(h.cells[i], run.cells) and np.array_equal(h.actions[i], run.actions)
        assert np.array_equal(h.rewards[i], run.rewards)
    assert h.rewards.sum() > 0


def test_a_held_out_goal_in_the_metadata_is_refused(collected, tmp_path):
    root = _copy(collected, tmp_path)
    params = collected[1]
    fam = params.family("improve")
    held = list(fam.env.held_out_goals[0])
    episodes = fam.collect.episodes

    def one_history_held_out(goals):
        return [held] * episodes + goals[episodes:]

    _rewrite(_dataset(root), "goals", one_history_held_out)
    with pytest.raises(DatasetError, match=r"episode 0 was collected on goal \[0, 1\], a held-out goal"):
        read_histories(_dataset(root), fam.env, episodes)


def test_a_goal_off_the_training_goals_is_refused(collected, tmp_path):
    root = _copy(collected, tmp_path)
    fam = collected[1].family("improve")
    _rewrite(_dataset(root), "goals", lambda goals: goals[:12] + [[2, 2]] * 12 + goals[24:])  # the start cell
    with pytest.raises(DatasetError, match=r"episode 12 .*\[2, 2\], not a training goal"):
        read_histories(_dataset(root), fam.env, fam.collect.episodes)


def test_a_goal_changing_within_a_history_is_refused(collected, tmp_path):
    root = _copy(collected, tmp_path)
    fam = collected[1].family("improve")
    _rewrite(_dataset(root), "goals", lambda goals: goals[:5] + [goals[12]] + goals[6:])
    with pytest.raises(DatasetError, match=r"episode 5 changes goal within history 0"):
        read_histories(_dataset(root), fam.env, fam.collect.episodes)


def test_histories_out_of_order_are_refused(collected, tmp_path):
    root = _copy(collected, tmp_path)
    fam = collected[1].family("improve")

    def swap(index):
        index[27], index[28] = index[28], index[27]  # history 2, learner episodes 3 and 4
        return index

    _rewrite(_dataset(root), "learner_episode", swap)
    with pytest.raises(DatasetError, match=r"episode 27 is history 2, learner episode 4; expected history 2, "
                                           r"episode 3 .*in order"):
        read_histories(_dataset(root), fam.env, fam.collect.episodes)


def test_a_history_label_out_of_order_is_refused(collected, tmp_path):
    root = _copy(collected, tmp_path)
    fam = collected[1].family("improve")
    _rewrite(_dataset(root), "history", lambda hist: hist[:30] + [5] + hist[31:])
    with pytest.raises(DatasetError, match=r"episode 30 is history 5"):
        read_histories(_dataset(root), fam.env, fam.collect.episodes)


def test_a_wrong_episode_count_is_refused(collected):
    root, params = collected
    env = params.family("improve").env
    with pytest.raises(DatasetError, match=r"240 episodes do not split into histories of collect.episodes = 7"):
        read_histories(_dataset(root), env, 7)
    with pytest.raises(DatasetError, match=r"histories must be whole and in order"):
        read_histories(_dataset(root), env, 6)  # 240 = 40 x 6, but the labels say 12 per history


def test_a_metadata_list_of_the_wrong_length_is_refused(collected, tmp_path):
    root = _copy(collected, tmp_path)
    fam = collected[1].family("improve")
    _rewrite(_dataset(root), "learner_episode", lambda index: index[:-1])
    with pytest.raises(DatasetError, match=r"'learner_episode' lists 239 entries for 240 episodes"):
        read_histories(_dataset(root), fam.env, fam.collect.episodes)


def test_rewards_another_goal_would_not_give_are_refused(collected, tmp_path):
    root = _copy(collected, tmp_path)
    fam = collected[1].family("improve")
    h = read_histories(_dataset(root), fam.env, fam.collect.episodes)
    i = int(np.flatnonzero(h.rewards.sum(axis=(1, 2)) > 0)[0])  # a history that earned something
    other = next(g for g in h.goals.tolist() if g != h.goals[i].tolist())  # another training goal
    episodes = fam.collect.episodes

    def relabel_history(goals):
        return goals[:i * episodes] + [other] * episodes + goals[(i + 1) * episodes:]

    _rewrite(_dataset(root), "goals", relabel_history)
    with pytest.raises(DatasetError, match=rf"history {i}, episode \d+, step \d+: reward .* is not what goal"):
        read_histories(_dataset(root), fam.env, episodes)


def test_a_held_out_goal_never_reaches_training(collected, tmp_path):
    params = collected[1]
    fam = params.family("improve")
    held = {tuple(g) for g in fam.env.held_out_goals}
    root = _copy(collected, tmp_path)
    relabel(params, root)
    paths = family_paths("improve", root)
    for name in ("histories", "hindsight", "experts"):
        goals = np.load(paths.relabeled(name) / "goals.npy")
        ctx, meta = Contexts.load(paths.relabeled(name))
        assert goals.shape == (20, 2) and np.array_equal(goals, ctx.goals)
        assert not held & {tuple(g) for g in goals.tolist()}, name
        assert {tuple(g) for g in goals.tolist()} == set(training_goals(fam.env))
        assert meta["histories"] == 20
    ad, _ = Contexts.load(paths.relabeled("histories"))
    assert np.array_equal(np.unique(ad.episode), kept_episodes(fam.collect.episodes, fam.relabel.skip))
    ed, _ = Contexts.load(paths.relabeled("experts"))
    assert np.array_equal(np.unique(ed.episode), np.arange(12 - fam.relabel.expert_episodes, 12))
    assert np.array_equal(ad.split, ed.split) and 0 < ad.split.sum() < len(ad.split)
    hindsight, _ = Contexts.load(paths.relabeled("hindsight"))  # AD's contexts, other labels
    assert all(np.array_equal(getattr(ad, f), getattr(hindsight, f)) for f in Contexts.ARRAYS if f != "actions")
    assert not np.array_equal(ad.actions, hindsight.actions)

    # the same dataset with one history relabeled to a held-out goal: relabel refuses, writes nothing
    poisoned = tmp_path / "poisoned"
    shutil.copytree(collected[0], poisoned)
    goal = list(fam.env.held_out_goals[-1])
    _rewrite(_dataset(poisoned), "goals", lambda goals: goals[:-12] + [goal] * 12)
    with pytest.raises(StageFailed, match=rf"\[{goal[0]}, {goal[1]}\], a held-out goal: it must never reach training"):
        relabel(params, poisoned)
    assert not family_paths("improve", poisoned).relabel.exists()
