"""The validate stage catches each kind of broken dataset, names the problem, and passes clean data.

Datasets are real LunarLander rollouts (a few short episodes) written in Minari's format, then
corrupted on purpose before writing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from helpers import family_module
from justask.config import Params
from justask.datasets import DatasetError, read_episodes, write_dataset
from justask.errors import StageFailed
from justask.lunar.config import EnvConfig
from justask.lunar.datasets import validate_lunar_dataset
from justask.lunar.env import make_env, make_vector_env, spaces
from justask.paths import family_paths
from justask.rollout import Episode, run_episodes
from justask.validation import (
    build_suite,
    episode_chunks,
    step_table,
    table_chunks,
    validate_dataset,
    validate_table,
)

validate = family_module("return", "validate").validate

MAX_STEPS = 60
ENV = EnvConfig(max_episode_steps=MAX_STEPS)
N_EPISODES = 4


class RandomPolicy:
    """Uniform random actions from one seeded generator (enough for test data)."""

    def __init__(self, space: gym.Space, n: int):
        self.space, self.n, self.rng = space, n, np.random.default_rng(0)

    def start(self, slot: int, episode_index: int) -> None:
        pass

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        if isinstance(self.space, gym.spaces.Discrete):
            return self.rng.integers(self.space.n, size=self.n)
        return self.rng.uniform(-1, 1, size=(self.n, *self.space.shape)).astype(np.float32)

    def observe(self, rewards: np.ndarray, ended: np.ndarray, active: np.ndarray) -> None:
        pass


def rollouts(continuous: bool = False, n: int = N_EPISODES) -> list[Episode]:
    envs = make_vector_env(2, continuous=continuous, max_episode_steps=MAX_STEPS)
    eps = run_episodes(envs, list(range(n)), RandomPolicy(envs.single_action_space, 2))
    envs.close()
    return eps


@pytest.fixture(scope="module")
def episodes() -> list[Episode]:
    eps = rollouts()
    assert all(len(e) > 12 for e in eps)
    return eps


def write(path: Path, episodes: list[Episode], env_id: str = "LunarLander-v3", **env_kw) -> Path:
    env = make_env(max_episode_steps=MAX_STEPS, **env_kw) if env_id == "LunarLander-v3" \
        else gym.make(env_id)
    write_dataset(path, episodes, env, {})
    env.close()
    return path


def corrupted(episodes: list[Episode], change: Callable[[list[Episode]], None]) -> list[Episode]:
    eps = copy.deepcopy(episodes)
    change(eps)
    return eps


def setitem(attr: str, index, value) -> Callable[[list[Episode]], None]:
    """Corruption: ``episodes[e].<attr>[index] = value`` with ``index = (e, ...)``."""

    def change(eps: list[Episode]) -> None:
        getattr(eps[index[0]], attr)[index[1:]] = value

    return change


def replace(attr: str, e: int, fn: Callable[[np.ndarray], np.ndarray]):
    def change(eps: list[Episode]) -> None:
        setattr(eps[e], attr, fn(getattr(eps[e], attr)))

    return change


def flag_mid_episode(eps: list[Episode]) -> None:
    eps[0].terminations[:] = False
    eps[0].truncations[:] = False
    eps[0].terminations[5] = True


def check(path: Path, expected: int = N_EPISODES, env: EnvConfig = ENV, max_examples: int = 3):
    return validate_lunar_dataset(path, env, expected, "return", max_examples=max_examples)


def failure(report, column: str):
    """The failure on ``column``, with the report's text for assertion messages."""
    assert not report.success, report.summary()
    found = [f for f in report.failures if f.column == column]
    assert found, f"no failure on {column}:\n{report.summary()}"
    return found[0]


def test_clean_dataset_passes(tmp_path, episodes):
    report = check(write(tmp_path / "clean", episodes))
    assert report.success, report.summary()
    assert (report.episodes, report.steps) == (N_EPISODES, sum(len(e) for e in episodes))
    assert report.evaluated > 30 and report.path.endswith("main_data.hdf5")


def test_step_table_layout(episodes, tmp_path):
    eps = read_episodes(write(tmp_path / "d", episodes))
    df = step_table(eps)
    assert len(df) == sum(len(e) for e in episodes)
    assert {"episode_id", "step", "obs_0", "obs_7", "next_obs_7", "action", "reward", "terminated",
            "truncated", "episode_length", "is_last"} <= set(df.columns)
    first = df[df.episode_id == 0]
    assert first.step.tolist() == list(range(len(episodes[0])))
    assert first.is_last.sum() == 1 and bool(first.is_last.iloc[-1])
    np.testing.assert_allclose(first[[f"obs_{j}" for j in range(8)]].to_numpy(),
                               episodes[0].observations[:-1], rtol=1e-6)


@pytest.mark.parametrize("change, column, words", [
    (setitem("observations", (1, 5, 2), np.nan), "obs_2", ["not NaN", "episode 1 step 5"]),
    (setitem("observations", (0, 3, 0), 3.0), "obs_0", ["observation space [-2.5, 2.5]", "= 3.0"]),
    (setitem("observations", (2, -1, 1), np.inf), "next_obs_1", ["final observation", "inf"]),
    (setitem("actions", (0, 2), 4), "action", ["action space {0..3}", "episode 0 step 2 = 4"]),
    (setitem("rewards", (3, 1), np.inf), "reward", ["reward is finite", "episode 3 step 1 = inf"]),
    (setitem("rewards", (3, 1), np.nan), "reward", ["reward is present"]),
    (replace("actions", 1, lambda a: np.delete(a, 3)), "step_complete", ["every step has"]),
    (replace("rewards", 2, lambda r: np.insert(r, 4, r[4])), "step_complete", ["every step has"]),
    (flag_mid_episode, "end_flag_ok", ["last step", "episode 0 step 5 = False"]),
    (setitem("truncations", (1, 5), True), "end_flags", ["exactly one step", "episode 1 = 2"]),
    (lambda eps: eps.pop(), "episode_id", [f"holds {N_EPISODES} episodes",
                                           f"observed {N_EPISODES - 1}"]),
], ids=["nan-obs", "obs-out-of-bounds", "inf-final-obs", "action-out-of-space", "inf-reward",
        "nan-reward", "missing-step", "duplicated-step", "flag-not-at-end", "two-end-flags",
        "missing-episode"])
def test_corruption_is_caught(tmp_path, episodes, change, column, words):
    report = check(write(tmp_path / "bad", corrupted(episodes, change)))
    text = failure(report, column).summary()
    for w in words:
        assert w in text, text


@pytest.mark.parametrize("edit, column", [
    (lambda df: df.drop(index=7), "step_gap"),
    (lambda df: df.drop(index=7), "rows_in_episode == episode_length"),
    (lambda df: df.drop(index=df.index[df.is_last][0]), "end_flags"),
    (lambda df: df.iloc[np.r_[0:8, 7:len(df)]], "step_gap"),
], ids=["row-missing", "row-missing-count", "last-row-missing", "row-duplicated"])
def test_missing_or_duplicated_rows_are_caught(tmp_path, episodes, edit, column):
    eps = read_episodes(write(tmp_path / "d", episodes))
    env = make_env(max_episode_steps=MAX_STEPS)
    suite = build_suite(env.observation_space, env.action_space, MAX_STEPS, N_EPISODES, "rows")
    report = validate_table(edit(step_table(eps)), suite, "rows")
    failure(report, column)


def chunked(path: Path, chunk_steps: int, expected: int = N_EPISODES):
    return validate_dataset(path, ENV.id, spaces(ENV), MAX_STEPS, expected, "fix", max_examples=3,
                            chunk_steps=chunk_steps)


def nan_obs_in_episodes_1_to_3(eps: list[Episode]) -> None:
    for e, t in ((1, 5), (2, 3), (3, 0), (3, 1)):
        eps[e].observations[t, 2] = np.nan
    eps[0].truncations[2] = eps[2].truncations[4] = True  # a second end flag in two episodes


@pytest.mark.parametrize("chunk_steps", [1, 40], ids=["episode-per-chunk", "episodes-per-chunk"])
def test_chunked_validation_matches_one_chunk(tmp_path, episodes, chunk_steps):
    total = sum(len(e) for e in episodes)
    clean = write(tmp_path / "clean", episodes)
    assert len(list(episode_chunks(clean, chunk_steps))) > 1
    one, parts = chunked(clean, total), chunked(clean, chunk_steps)
    assert parts.success and parts.to_dict() == one.to_dict()

    bad = write(tmp_path / "bad", corrupted(episodes, nan_obs_in_episodes_1_to_3))
    one, parts = chunked(bad, total), chunked(bad, chunk_steps)
    assert parts.to_dict() == one.to_dict(), parts.summary()
    obs = failure(parts, "obs_2")
    assert (obs.unexpected_count, obs.element_count) == (4, total)
    assert [(x["episode_id"], x["step"]) for x in obs.examples] == [(1, 5), (2, 3), (3, 0)]
    flags = failure(parts, "end_flags")
    assert (flags.unexpected_count, flags.element_count) == (2, N_EPISODES)
    assert flags.examples == [{"episode_id": 0, "value": 2}, {"episode_id": 2, "value": 2}]


def test_episode_count_is_checked_over_all_chunks(tmp_path, episodes):
    path = write(tmp_path / "three", corrupted(episodes, lambda eps: eps.pop(2)))
    assert len(list(episode_chunks(path, 1))) == N_EPISODES - 1
    assert chunked(path, 1, expected=N_EPISODES - 1).success
    f = failure(chunked(path, 1), "episode_id")
    assert f.observed == N_EPISODES - 1 and f"holds {N_EPISODES} episodes" in f.summary()


def test_table_chunks_hold_whole_episodes(tmp_path, episodes):
    df = step_table(read_episodes(write(tmp_path / "d", episodes)))
    df = df.iloc[np.r_[0:8, 7:len(df)]]  # a duplicated row stays with its episode
    parts = list(table_chunks(df, 30))
    assert len(parts) > 1 and sum(len(p) for p in parts) == len(df)
    ids = [set(p.episode_id) for p in parts]
    assert all(not (a & b) for i, a in enumerate(ids) for b in ids[i + 1:])


def test_episode_longer_than_time_limit(tmp_path, episodes):
    short = EnvConfig(max_episode_steps=10)
    f = failure(check(write(tmp_path / "long", episodes), env=short), "episode_length")
    assert "between 1 and max_episode_steps (10)" in f.summary()


def test_wrong_episode_count(tmp_path, episodes):
    f = failure(check(write(tmp_path / "d", episodes), expected=N_EPISODES + 3), "episode_id")
    assert f.observed == N_EPISODES and f"holds {N_EPISODES + 3} episodes" in f.summary()


def test_continuous_actions(tmp_path):
    eps = rollouts(continuous=True, n=2)
    cont = EnvConfig(max_episode_steps=MAX_STEPS, continuous=True)
    path = write(tmp_path / "cont", eps, continuous=True)
    assert check(path, 2, cont, max_examples=5).success
    eps[1].actions[3, 1] = 1.5
    bad = check(write(tmp_path / "bad", eps, continuous=True), 2, cont, max_examples=5)
    assert "action space [-1, 1]" in failure(bad, "action_1").summary()


def test_dataset_from_another_env(tmp_path):
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    observations, actions = [obs], []
    for _ in range(5):
        actions.append(env.action_space.sample())
        observations.append(env.step(actions[-1])[0])
    ep = Episode(0, 0, np.array(observations), np.array(actions), np.ones(5), np.zeros(5, bool),
                 np.r_[np.zeros(4, bool), True])
    path = write(tmp_path / "cartpole", [ep], env_id="CartPole-v1")
    with pytest.raises(DatasetError, match="recorded from env 'CartPole-v1'.*'LunarLander-v3'") as info:
        check(path, expected=1)
    assert str(info.value).endswith("or set params families.return.env to the env the dataset was recorded with")


def test_dataset_with_other_action_space(tmp_path, episodes):
    path = write(tmp_path / "discrete", episodes)
    with pytest.raises(DatasetError, match="action space Discrete.*differs.*continuous=True"):
        check(path, env=EnvConfig(max_episode_steps=MAX_STEPS, continuous=True))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_damaged_or_missing_dataset(tmp_path, episodes, damage):
    path = write(tmp_path / "d", episodes)
    h5 = path / "main_data.hdf5"
    if damage == "truncate":
        h5.write_bytes(h5.read_bytes()[: h5.stat().st_size // 2])
    elif damage == "garbage":
        h5.write_bytes(b"not an hdf5 file" * 100)
    else:
        path = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="damaged|truncated|missing"):
        check(path)


def _params(datasets: dict[str, int]) -> Params:
    return Params.model_validate({"families": {"return": {
        "env": {"max_episode_steps": MAX_STEPS},
        "collect": {"datasets": {n: [{"controller": "random", "episodes": k}]
                                 for n, k in datasets.items()}},
        "validate": {"max_examples": 2},
        "relabel": {},
        "train": {"models": {"bc": {}}},
        "evaluate": {},
    }}})


def test_stage_writes_reports_and_docs(tmp_path, episodes):
    paths = family_paths("return", tmp_path)
    write(paths.dataset("clean"), episodes)
    stale = paths.validate / "stale.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    reports = validate(_params({"clean": N_EPISODES}), tmp_path)
    assert reports["clean"].success
    assert (paths.validate / "clean.json").exists()
    assert (paths.validate_docs / "index.html").exists()
    page = paths.validate_docs / reports["clean"].docs_page
    assert page.exists() and page.suffix == ".html"
    assert not stale.exists(), "the output folder is replaced as a whole"
    assert [p.name for p in paths.validate.iterdir()] == ["clean.json"], "validate/ holds the verdicts only"
    assert [p.name for p in paths.base.iterdir() if p.name.startswith(".")] == []


def test_stage_fails_with_a_useful_message(tmp_path, episodes):
    import json

    paths = family_paths("return", tmp_path)
    write(paths.dataset("clean"), episodes)
    write(paths.dataset("broken"), corrupted(episodes, setitem("observations", (1, 5, 2), np.nan)))
    params = _params({"clean": N_EPISODES, "broken": N_EPISODES, "absent": 3})
    with pytest.raises(StageFailed) as exc:
        validate(params, tmp_path)
    msg = str(exc.value)
    assert "2 of 3 datasets failed" in msg
    assert str(paths.dataset("broken") / "main_data.hdf5") in msg
    assert "obs_2" in msg and "not NaN" in msg and "episode 1 step 5" in msg
    assert "metadata.json missing" in msg and "absent" in msg
    assert str(paths.validate_docs / "index.html") in msg and "HTML report" in msg
    saved = {n: json.loads((paths.validate / f"{n}.json").read_text())
             for n in ("clean", "broken", "absent")}
    assert saved["clean"]["success"] and not saved["broken"]["success"]
    example = saved["broken"]["failures"][0]["examples"][0]
    assert example == {"episode_id": 1, "step": 5, "value": None}
    assert saved["absent"]["error"]
