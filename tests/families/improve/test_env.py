"""Dark Room: the dynamics (moves clipped at the walls), the reward (1 for every step on the goal),
the best return against brute-force optimal play, the task list, the gymnasium env (start, time
limit, goal option) and the held-out goal split."""

from __future__ import annotations

from itertools import product
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from pydantic import ValidationError

from helpers import ROOT
from justask.config import load_params
from justask.families.improve.config import EnvConfig
from justask.families.improve.env import ACTIONS, ENV_ID, make_env, move, reward
from justask.families.improve.goals import best_return, check_goal_split, every_goal, start_cell, training_goals

STAY, UP, DOWN, LEFT, RIGHT = range(5)


def test_each_action_moves_one_cell_from_the_centre():
    centre = np.array([2, 2])
    expected = {STAY: (2, 2), UP: (1, 2), DOWN: (3, 2), LEFT: (2, 1), RIGHT: (2, 3)}
    assert ACTIONS == 5
    for a, cell in expected.items():
        assert tuple(move(centre, np.int64(a), 5)) == cell, a


def test_a_move_into_a_wall_stays_put():
    for (r, c), blocked in {(0, 0): (UP, LEFT), (0, 4): (UP, RIGHT), (4, 0): (DOWN, LEFT),
                            (4, 4): (DOWN, RIGHT)}.items():
        for a in blocked:
            assert tuple(move(np.array([r, c]), np.int64(a), 5)) == (r, c)
    # along a wall the other moves still work
    assert tuple(move(np.array([0, 2]), np.int64(LEFT), 5)) == (0, 1)
    assert tuple(move(np.array([0, 2]), np.int64(DOWN), 5)) == (1, 2)


def test_move_is_batched_and_stays_on_the_grid():
    rng = np.random.default_rng(0)
    size = 4
    cells = rng.integers(0, size, (200, 2))
    actions = rng.integers(0, ACTIONS, 200)
    out = move(cells, actions, size)
    assert out.shape == (200, 2)
    assert ((out >= 0) & (out < size)).all()
    assert (np.abs(out - cells).sum(-1) <= 1).all()
    assert (out[actions == STAY] == cells[actions == STAY]).all()
    for i in range(200):  # the batch gives the same as one cell at a time
        assert (out[i] == move(cells[i], actions[i], size)).all()


def test_reward_is_one_on_the_goal_cell_only():
    size = 5
    goal = np.array([1, 3])
    cells = np.array(list(product(range(size), repeat=2)))
    r = reward(cells, np.broadcast_to(goal, cells.shape))
    assert r.dtype == np.float32 and r.shape == (size * size,)
    assert r.sum() == 1.0 and tuple(cells[r == 1.0][0]) == (1, 3)
    assert set(np.unique(r).tolist()) == {0.0, 1.0}
    # broadcasting a (2,) goal over (E, H, 2) cells
    grid = cells.reshape(size, size, 2)
    assert reward(grid, goal).shape == (size, size) and reward(grid, goal)[1, 3] == 1.0


def _optimal_return(goal, size, horizon) -> float:
    """Brute force: backward induction over (cell, steps left), every action tried from every cell."""
    cells = np.array(list(product(range(size), repeat=2)))  # (S, 2), row by row
    nxt = move(cells[:, None, :], np.arange(ACTIONS)[None, :], size)  # (S, A, 2)
    paid = reward(nxt, np.array(goal))  # (S, A)
    to = nxt[..., 0] * size + nxt[..., 1]
    value = np.zeros(len(cells))
    for _ in range(horizon):
        value = (paid + value[to]).max(axis=1)
    s = start_cell(size)
    return float(value[s[0] * size + s[1]])


@pytest.mark.parametrize("size", [3, 4, 5, 6])
def test_best_return_matches_optimal_play(size):
    for goal in every_goal(size):
        for horizon in range(1, 2 * size + 1):
            assert best_return(goal, size, horizon) == _optimal_return(goal, size, horizon), (goal, horizon)


def test_best_return_is_zero_when_the_goal_is_out_of_reach():
    assert best_return((0, 0), 5, 3) == 0.0  # four moves away
    assert best_return((0, 0), 5, 4) == 1.0  # reached on the last step
    assert best_return((2, 3), 5, 10) == 10.0


@pytest.mark.parametrize("size", [3, 4, 5, 9])
def test_every_goal_is_every_cell_but_the_start(size):
    goals = every_goal(size)
    assert len(goals) == size * size - 1 == len(set(goals))
    assert start_cell(size) not in goals
    assert all(0 <= r < size and 0 <= c < size for r, c in goals)
    assert goals == sorted(goals)  # row by row


def test_training_goals_are_every_goal_but_the_held_out():
    cfg = EnvConfig(size=5, held_out_goals=[(0, 1), (4, 4)])
    train = training_goals(cfg)
    assert len(train) == 22 and (0, 1) not in train and (4, 4) not in train
    assert set(train) | {(0, 1), (4, 4)} == set(every_goal(5))


def _env_cfg(size=5, steps=6):
    return SimpleNamespace(size=size, max_episode_steps=steps)


def test_the_env_starts_in_the_centre_and_pays_each_step_on_the_goal():
    env = make_env(_env_cfg(5, 6), goal=(2, 4))
    assert env.spec.id == ENV_ID
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [2.0, 2.0]
    rewards = []
    for a in (RIGHT, RIGHT, STAY, RIGHT, STAY, STAY):  # reach the goal on step 2, then stay (or bump the wall)
        obs, r, terminated, truncated, _ = env.step(a)
        rewards.append(r)
        assert not terminated
    assert rewards == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert sum(rewards) == best_return((2, 4), 5, 6)
    assert obs.tolist() == [2.0, 4.0]
    env.close()


def test_the_env_truncates_at_max_episode_steps():
    env = make_env(_env_cfg(5, 4), goal=(0, 0))
    env.reset(seed=0)
    flags = [env.step(STAY)[2:4] for _ in range(4)]
    assert flags == [(False, False)] * 3 + [(False, True)]
    obs, _ = env.reset()  # a new episode starts again in the centre with a fresh limit
    assert obs.tolist() == [2.0, 2.0]
    env.step(UP)
    assert env.step(UP)[3] is False
    env.close()


def test_reset_options_set_the_goal():
    env = make_env(_env_cfg(5, 8), goal=(0, 0))
    env.reset(options={"goal": (4, 2)})
    assert tuple(env.unwrapped.goal) == (4, 2)
    rewards = [env.step(DOWN)[1] for _ in range(3)]
    assert rewards == [0.0, 1.0, 1.0]  # (3, 2), then (4, 2) twice (the wall)
    env.reset()  # without options the goal is kept
    assert tuple(env.unwrapped.goal) == (4, 2)
    env.close()


def test_gym_make_builds_the_registered_env():
    env = gym.make(ENV_ID, size=3, goal=(0, 0), max_episode_steps=2)
    obs, _ = env.reset()
    assert obs.tolist() == [1.0, 1.0] and env.action_space.n == ACTIONS
    assert env.render is not None and env.unwrapped.render().shape == (48, 48, 3)
    env.close()


def test_check_goal_split_refuses_overlapping_goals():
    with pytest.raises(ValueError, match=r"both training and held-out"):
        check_goal_split([(0, 0), (0, 1), (1, 0)], [(0, 1)], 5)


def test_check_goal_split_refuses_a_held_out_goal_in_a_region_never_trained():
    size = 5
    goals = every_goal(size)
    no_row0 = [g for g in goals if g[0] != 0]
    with pytest.raises(ValueError, match=r"\[0, 1\].*its row \(0\)"):
        check_goal_split(no_row0, [(0, 1)], size)
    no_col0 = [g for g in goals if g[1] != 0]
    with pytest.raises(ValueError, match=r"\[1, 0\].*its column \(0\)"):
        check_goal_split(no_col0, [(1, 0)], size)
    corners = {(0, 0), (0, 4), (4, 0), (4, 4)}  # the only cells 4 moves from the start
    no_far = [g for g in goals if g not in corners]
    with pytest.raises(ValueError, match=r"\[0, 0\].*distance from the start \(4\)"):
        check_goal_split(no_far, [(0, 0)], size)


def test_check_goal_split_passes_a_proper_split():
    size = 5
    held = [(0, 1), (1, 3), (3, 0), (4, 4)]
    check_goal_split([g for g in every_goal(size) if g not in held], held, size)


def test_the_default_and_test_profile_held_out_goals_pass_the_split_check():
    cfg = EnvConfig()
    assert cfg.size == 9 and len(cfg.held_out_goals) == 20
    check_goal_split(training_goals(cfg), [tuple(g) for g in cfg.held_out_goals], cfg.size)
    test_env = load_params(ROOT / "profiles" / "test.yaml").family("improve").env
    check_goal_split(training_goals(test_env), [tuple(g) for g in test_env.held_out_goals], test_env.size)


def test_env_config_refuses_bad_held_out_goals():
    with pytest.raises(ValidationError, match="start cell"):
        EnvConfig(size=5, held_out_goals=[(2, 2)])
    with pytest.raises(ValidationError, match="off the 5 x 5 grid"):
        EnvConfig(size=5, held_out_goals=[(0, 5)])
    with pytest.raises(ValidationError, match="listed twice"):
        EnvConfig(size=5, held_out_goals=[(0, 1), (0, 1)])


def test_params_refuse_a_held_out_goal_in_a_region_training_never_visits():
    with pytest.raises(ValueError, match="no training goal shares its row"):
        EnvConfig(size=5, held_out_goals=[(0, c) for c in range(5)])
