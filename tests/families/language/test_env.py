"""BabyAI behaviour episodes: well-formed, deterministic, reproducible by replay."""

import dataclasses

import numpy as np
import pytest

from justask.families.language.env import (
    BEHAVIOURS,
    DONE,
    BehaviourBatch,
    GridBehaviour,
    GridEpisode,
    collect_grid_episodes,
    make_grid_env,
    make_grid_vector_env,
    reset_quietly,
    room_objects,
    run_grid_episode,
)
from justask.rollout import run_episodes

GOTO, PUTNEXT = "BabyAI-GoToLocal-v0", "BabyAI-PutNextLocal-v0"
ALL = [GridBehaviour("bot"), GridBehaviour("other_goal"), GridBehaviour("noisy_bot", 0.3), GridBehaviour("random")]


def _check_well_formed(ep: GridEpisode) -> None:
    t = len(ep)
    assert t >= 1
    assert ep.images.shape == (t + 1, 7, 7, 3) and ep.images.dtype == np.uint8
    assert ep.directions.shape == (t + 1,) and ep.directions.dtype == np.int64
    assert ep.actions.shape == (t,) and ep.actions.dtype == np.int64
    assert ep.rewards.shape == (t,) and ep.rewards.dtype == np.float32
    for flags in (ep.terminations, ep.truncations):
        assert flags.shape == (t,) and flags.dtype == bool
        assert not flags[:-1].any()
    assert ep.terminations[-1] != ep.truncations[-1]
    assert ep.success == bool(ep.terminations[-1])
    assert ((ep.actions >= 0) & (ep.actions <= 6)).all()


def _replay(ep: GridEpisode, env=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    env = env or make_grid_env(ep.level)
    obs = reset_quietly(env, ep.env_seed)
    images, dirs, rewards, terms = [obs["image"]], [obs["direction"]], [], []
    for a in ep.actions:
        obs, r, term, _, _ = env.step(int(a))
        images.append(obs["image"])
        dirs.append(obs["direction"])
        rewards.append(r)
        terms.append(term)
    mission = env.unwrapped.mission
    env.close()
    return np.asarray(images), np.asarray(dirs), np.asarray(rewards, np.float32), np.asarray(terms), mission


def test_behaviour_labels_and_validation():
    assert [GridBehaviour(n).label for n in BEHAVIOURS] == ["bot", "other_goal", "noisy_bot-eps0", "random"]
    assert GridBehaviour("noisy_bot", 0.3).label == "noisy_bot-eps0.3"
    with pytest.raises(ValueError):
        GridBehaviour("expert")
    with pytest.raises(ValueError):
        GridBehaviour("bot", 0.5)


@pytest.mark.parametrize("behaviour", ALL, ids=lambda b: b.label)
def test_episodes_are_well_formed(behaviour):
    for level in (GOTO, PUTNEXT):
        for seed in range(4):
            ep = run_grid_episode(level, seed, behaviour, 100 + seed)
            _check_well_formed(ep)
            assert ep.level == level and ep.env_seed == seed and ep.behaviour == behaviour.label
            if behaviour.name in ("random", "other_goal"):
                assert (ep.actions < 6).all()  # never `done`


def test_random_runs_to_the_time_limit_unless_it_succeeds():
    ep = run_grid_episode(PUTNEXT, 0, GridBehaviour("random"), 0, max_steps=40)
    assert len(ep) == 40 and ep.truncations[-1] and not ep.success


def test_bot_solves_its_own_mission():
    eps = [run_grid_episode(GOTO, s, GridBehaviour("bot"), s) for s in range(30)]
    assert np.mean([e.success for e in eps]) >= 0.9
    assert np.mean([len(e) for e in eps]) < 15  # a direct path, not a search until the time limit
    assert all(e.rewards[-1] > 0 for e in eps if e.success)


def test_other_goal_often_misses_the_own_mission():
    eps = [run_grid_episode(level, s, GridBehaviour("other_goal"), s) for level in (GOTO, PUTNEXT) for s in range(15)]
    assert np.mean([e.success for e in eps]) < 0.5
    # It stops when its own goal is reached, long before the time limit.
    stopped = [e for e in eps if not e.success and not e.bot_failed]
    assert stopped and np.mean([len(e) for e in stopped]) < 30


@pytest.mark.parametrize("level", [GOTO, PUTNEXT])
def test_the_rollout_engine_gives_each_spec_its_own_episode_in_any_slot(level):
    """Collection runs through the shared engine: BehaviourBatch over a vector env whose slots are
    refilled as episodes end gives every spec the episode it gets alone; an other-goal bot whose plan
    is done ends its episode itself (truncated, before the time limit, never stepping `done`)."""
    specs = [(level, s, b, 3 * s + 2) for s in range(4) for b in ALL]
    envs = make_grid_vector_env(3, level)
    policy = BehaviourBatch(envs, specs)
    episodes = run_episodes(envs, [s[1] for s in specs], policy)
    limit = envs.envs[0].unwrapped.max_steps
    envs.close()
    assert [e.index for e in episodes] == list(range(len(specs)))
    stopped = 0
    for spec, e in zip(specs, episodes, strict=True):
        alone = run_grid_episode(*spec)
        assert policy.pursuits[e.index].mission == alone.mission
        np.testing.assert_array_equal(e.observations["image"], alone.images)
        np.testing.assert_array_equal(e.observations["direction"], alone.directions)
        np.testing.assert_array_equal(e.actions, alone.actions)
        np.testing.assert_array_equal(e.rewards.astype(np.float32), alone.rewards)
        np.testing.assert_array_equal(e.terminations, alone.terminations)
        np.testing.assert_array_equal(e.truncations, alone.truncations)
        p = policy.pursuits[e.index]
        if spec[2].name == "other_goal" and not e.terminations[-1] and not p.failed:
            assert p.suggested == DONE and e.truncations[-1] and len(e) < limit
            assert DONE not in e.actions.tolist()
            stopped += 1
    assert stopped >= 1


@pytest.mark.parametrize("behaviour", ALL, ids=lambda b: b.label)
def test_replay_reproduces_the_episode(behaviour):
    for level in (GOTO, PUTNEXT):
        for seed in range(5):
            ep = run_grid_episode(level, 10 + seed, behaviour, seed)
            images, dirs, rewards, terms, mission = _replay(ep)
            assert mission == ep.mission
            np.testing.assert_array_equal(images, ep.images)
            np.testing.assert_array_equal(dirs, ep.directions)
            np.testing.assert_array_equal(rewards, ep.rewards)
            np.testing.assert_array_equal(terms, ep.terminations)


def test_edge_cases():
    # The own mission is met at reset (facing the target): the bot's `done` takes the one step the verifier needs.
    ep = run_grid_episode("BabyAI-GoToObjDoor-v0", 107, GridBehaviour("bot"), 0)
    _check_well_formed(ep)
    assert ep.actions.tolist() == [6] and ep.success
    np.testing.assert_array_equal(_replay(ep)[0], ep.images)
    # No instruction other than the mission ("go to a grey door", all four doors grey and two locked):
    # one random step, truncated, counted as a bot failure.
    ep = run_grid_episode("BabyAI-GoToDoor-v0", 10287, GridBehaviour("other_goal"), 0)
    _check_well_formed(ep)
    assert len(ep) == 1 and ep.truncations[-1] and ep.bot_failed


def test_noisy_bot_replans_after_random_actions():
    noisy = GridBehaviour("noisy_bot", 0.5)
    eps = [run_grid_episode(PUTNEXT, s, noisy, s) for s in range(30)]
    bots = [run_grid_episode(PUTNEXT, s, GridBehaviour("bot"), s) for s in range(30)]
    assert sum(e.actions.tobytes() != b.actions.tobytes() for e, b in zip(eps, bots, strict=True)) >= 25
    # Told which action was really taken, the bot recovers; left to assume its own, it mostly fails.
    assert np.mean([e.success for e in eps]) >= 0.7


def test_behaviours_never_draw_from_the_env_generator(monkeypatch):
    import justask.families.language.env as babyai

    made = []
    monkeypatch.setattr(babyai, "make_grid_env", lambda *a, **k: made.append(make_grid_env(*a, **k)) or made[-1])
    for behaviour in ALL:
        ep = run_grid_episode(PUTNEXT, 1, behaviour, 2)
        fresh = make_grid_env(PUTNEXT)
        _replay(ep, fresh)
        assert made[-1].unwrapped.np_random.bit_generator.state == fresh.unwrapped.np_random.bit_generator.state


def test_behaviour_randomness_is_separate_from_the_env():
    noisy = GridBehaviour("noisy_bot", 0.5)
    a = run_grid_episode(PUTNEXT, 3, noisy, 1)
    b = run_grid_episode(PUTNEXT, 3, noisy, 2)
    np.testing.assert_array_equal(a.images[0], b.images[0])  # same level...
    assert a.actions.tobytes() != b.actions.tobytes()  # ...different behaviour
    c = run_grid_episode(PUTNEXT, 4, GridBehaviour("random"), 1)
    d = run_grid_episode(GOTO, 5, GridBehaviour("random"), 1)
    np.testing.assert_array_equal(c.actions[:20], d.actions[:20])  # random actions depend on behaviour_seed only


def _as_bytes(ep: GridEpisode) -> dict:
    return {k: v.tobytes() if isinstance(v, np.ndarray) else v for k, v in dataclasses.asdict(ep).items()}


def test_same_specs_same_episodes_whatever_the_workers():
    specs = [(level, s, b, 7 * s + 1) for level in (GOTO, PUTNEXT) for s in range(3) for b in ALL]
    done = []
    serial = collect_grid_episodes(specs, workers=1, progress=done.append)
    assert sum(done) == len(specs)
    parallel = collect_grid_episodes(specs, workers=2)
    assert [(e.level, e.env_seed, e.behaviour) for e in serial] == [(s[0], s[1], s[2].label) for s in specs]
    assert [_as_bytes(e) for e in serial] == [_as_bytes(e) for e in parallel]
    assert _as_bytes(run_grid_episode(*specs[5])) == _as_bytes(serial[5])


def test_room_objects():
    env = make_grid_env(GOTO)
    reset_quietly(env, 0)
    objs = room_objects(env)
    assert len(objs) == 8  # GoToLocal: 8 objects, no doors
    assert {t for _, t in objs} <= {"ball", "box", "key"}
    env = make_grid_env("BabyAI-OpenDoorColor-v0")
    reset_quietly(env, 0)
    assert sum(t == "door" for _, t in room_objects(env)) == 4
