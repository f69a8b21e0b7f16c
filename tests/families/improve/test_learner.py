"""The source learner (tabular Q-learning): seeded, well-formed histories whose rewards are the
env's, a learning curve that rises, and an exploration rate that decays linearly then stays."""

from __future__ import annotations

import numpy as np
import pytest

from justask.families.improve.config import LearnerConfig
from justask.families.improve.env import ACTIONS, move, reward
from justask.families.improve.goals import best_return, start_cell
from justask.families.improve.learner import epsilon_at, learn, learn_all

CFG = LearnerConfig(lr=0.3, epsilon=0.3, decay_episodes=60, planning=0)  # plain Q-learning, optimistic init 1.0


def test_learn_is_deterministic_for_a_seed_and_differs_across_seeds():
    a = learn((0, 4), 5, 10, 20, CFG, seed=3)
    b = learn((0, 4), 5, 10, 20, CFG, seed=3)
    c = learn((0, 4), 5, 10, 20, CFG, seed=4)
    for name in ("cells", "actions", "rewards"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.actions, c.actions)
    assert a.seed == 3 and c.seed == 4 and a.goal == (0, 4)


def test_a_history_is_well_formed_and_follows_the_dynamics():
    size, horizon, episodes = 5, 7, 15
    h = learn((1, 1), size, horizon, episodes, CFG, seed=0)
    assert h.cells.shape == (episodes, horizon + 1, 2) and h.cells.dtype == np.int64
    assert h.actions.shape == (episodes, horizon) and h.actions.dtype == np.int64
    assert h.rewards.shape == (episodes, horizon) and h.rewards.dtype == np.float32
    assert h.returns.shape == (episodes,) and np.array_equal(h.returns, h.rewards.sum(axis=1))
    assert ((h.actions >= 0) & (h.actions < ACTIONS)).all()
    assert (h.cells[:, 0] == start_cell(size)).all()  # every episode starts in the centre
    assert np.array_equal(h.cells[:, 1:], move(h.cells[:, :-1], h.actions, size))
    assert len(np.unique(h.actions)) == ACTIONS  # optimism and epsilon try every action


@pytest.mark.parametrize("goal", [(0, 0), (3, 4), (2, 3)])
def test_its_rewards_are_the_env_reward_of_its_cells(goal):
    h = learn(goal, 5, 10, 30, CFG, seed=1)
    assert np.array_equal(h.rewards, reward(h.cells[:, 1:], np.array(goal)))
    assert h.rewards.sum() > 0  # it found the goal, so the check compared some ones
    assert (h.returns <= best_return(goal, 5, 10)).all()


def test_the_learning_curve_rises():
    goals = [(0, 0), (0, 4), (4, 0), (4, 4), (1, 3), (3, 1)]
    returns = np.stack([learn(g, 5, 10, 60, CFG, seed=s).returns for g in goals for s in (0, 1)])
    first, last = returns[:, :10].mean(), returns[:, -10:].mean()
    assert last > first + 3.0, (first, last)
    optimal = np.mean([best_return(g, 5, 10) for g in goals])
    assert last > 0.6 * optimal, (last, optimal)


def test_epsilon_decays_linearly_then_stays():
    cfg = LearnerConfig(epsilon=0.5, epsilon_final=0.1, decay_episodes=8)
    values = np.array([epsilon_at(e, cfg) for e in range(20)])
    assert values[0] == pytest.approx(0.5)
    assert values[4] == pytest.approx(0.3)
    assert np.allclose(np.diff(values[:9]), -0.05)  # linear on the way down
    assert np.allclose(values[8:], 0.1)  # then constant
    assert epsilon_at(1000, cfg) == pytest.approx(0.1)
    assert epsilon_at(59, CFG) > epsilon_at(60, CFG) == pytest.approx(CFG.epsilon_final)


def test_dyna_q_planning_spreads_what_it_found():
    """Replaying remembered transitions (Dyna-Q) makes the same learner reach the goal sooner."""
    plain = LearnerConfig(lr=0.5, epsilon=0.1, decay_episodes=20, planning=0)
    dyna = plain.model_copy(update={"planning": 10})
    goals = [(0, 0), (0, 4), (4, 0), (4, 4), (1, 3), (3, 1)]

    def early(cfg):
        return np.mean([learn(g, 5, 10, 30, cfg, s).returns[:15].mean() for g in goals for s in (1, 2)])

    assert early(dyna) > early(plain) + 1.0


def test_learn_all_gives_each_task_its_own_history_in_order_wherever_it_ran():
    tasks = [((0, 4), 3), ((1, 1), 4), ((4, 0), 5), ((0, 4), 6), ((3, 3), 7)]
    one = [learn(g, 5, 10, 8, CFG, s) for g, s in tasks]
    for workers in (1, 2):
        got = learn_all(tasks, 5, 10, 8, CFG, workers=workers)
        assert [(h.goal, h.seed) for h in got] == [(g, s) for g, s in tasks]
        assert all(np.array_equal(a.cells, b.cells) and np.array_equal(a.actions, b.actions)
                   and np.array_equal(a.rewards, b.rewards) for a, b in zip(got, one, strict=True))
