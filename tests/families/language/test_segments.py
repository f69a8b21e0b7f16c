"""Goal-directed label segments: the shortest-path counts they rest on, the start rule, what
describe() gives bot and random-prefix episodes, and a loss that skips steps outside a segment."""

import contextlib
import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from minigrid.utils.baby_ai_bot import BabyAIBot

from justask.families.language.grammar import describe
from justask.families.language.segments import directed_start, shortest_actions
from justask.families.language.table import InstructionSteps, InstructionTable

GOTO = "BabyAI-GoToLocal-v0"


def test_shortest_actions_counts_turns_and_steps():
    free = np.ones((5, 5), bool)
    field = shortest_actions(free, (4, 2))  # face the cell (4, 2) from (3, 2) looking east
    assert field[3, 2, 0] == 0
    assert field[2, 2, 0] == 1  # one step forward
    assert field[3, 2, 2] == 2  # facing west: two turns
    assert field[3, 2, 1] == 1  # facing south: one left turn
    assert field[0, 2, 0] == 3
    assert field[4, 2].tolist() == [-1] * 4  # the target cell itself is never entered
    free[2, 1:4] = False  # a wall in the way: around it
    assert shortest_actions(free, (4, 2))[1, 2, 0] == 1 + 2 + 2 + 2 + 2  # turn, 2 up, turn, 2 across...


def test_directed_start():
    # from t the agent still took (end - t + 1) steps; the shortest path needed needed[t]
    needed = [4, 5, 5, 4, 4, 3, 2, 1]  # wandered for 4 steps, then walked straight there
    assert directed_start(needed, 7, slack=1.0, margin=0) == 4
    assert directed_start(needed, 7, slack=1.0, margin=4) == 0  # 8 <= 4 + 4 from the start
    assert directed_start(needed, 7, slack=2.0, margin=0) == 0
    assert directed_start(needed, 7, slack=None, margin=0) == 0  # plain hindsight prefix
    assert directed_start([-1, -1, 1], 2, slack=1.0, margin=0) == 2  # unreachable steps never start it


def _episode(seed: int, random_prefix: int):
    """``random_prefix`` random turns/steps, then the BabyAI bot on the mission; None if the random
    part ends the episode."""
    env = gym.make(GOTO)
    with contextlib.redirect_stdout(io.StringIO()):
        env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = []
    for _ in range(random_prefix):
        actions.append(int(rng.integers(3)))
        if env.step(actions[-1])[2]:
            return None
    bot = BabyAIBot(env.unwrapped)
    while True:
        actions.append(int(bot.replan()))
        _, _, term, trunc, _ = env.step(actions[-1])
        if term or trunc:
            return env.unwrapped.mission.replace("go to a ", "go to the "), actions


def test_a_bot_heading_for_its_goal_keeps_its_segment_a_random_prefix_is_cut():
    kept, cut = [], []
    for seed in range(12):
        for prefix, out in ((0, kept), (15, cut)):
            episode = _episode(seed, prefix)
            if episode is None:
                continue
            mission, actions = episode
            [label] = [a for a in describe(GOTO, seed, actions, 0, slack=2.0, margin=3) if a.text == mission]
            plain = [a for a in describe(GOTO, seed, actions, 0) if a.text == mission][0]
            assert plain.start == 0 and plain.step == label.step  # same achievement, same verdict
            out.append((label.start, prefix, label.step))
    assert len(kept) >= 8 and len(cut) >= 4
    assert all(start == 0 for start, _, _ in kept)  # the bot's whole episode demonstrates its mission
    assert sum(start for start, _, _ in cut) >= 0.5 * sum(p for _, p, _ in cut)  # most random steps go


def test_loss_skips_the_steps_before_a_segment():
    """Context frames before the segment are read, their actions are not supervised."""
    n = 6
    table = InstructionTable(
        images=np.zeros((n, 7, 7, 3), np.uint8), directions=np.zeros(n, np.int64), actions=np.arange(n) % 3,
        episode=np.zeros(n, np.int64), timesteps=np.arange(n), starts=np.array([0, n]), split=np.zeros(1, np.int8),
        label_episode=np.array([0]), label_start=np.array([3]), label_end=np.array([5]),
        label_instruction=np.array([0]))
    data = InstructionSteps(table, 0, {"tokens": np.array([[2, 3]])}, torch.device("cpu"))
    assert data.steps.tolist() == [3, 4, 5]
    w = data.windows(torch.tensor([0, 2]), 3)  # samples at rows 3 and 5
    assert w["mask"].all()
    assert w["supervised"].tolist() == [[False, False, True], [True, True, True]]


@pytest.mark.parametrize("slack", [None, 2.0])
def test_labels_stay_verified_whatever_the_segment(slack):
    """The segment rule moves only where a label starts: the set of labels and their end steps are
    minigrid's verdicts either way."""
    mission, actions = _episode(3, 10) or _episode(4, 10)
    a = describe(GOTO, 3, actions, 2)
    b = describe(GOTO, 3, actions, 2, slack=slack, margin=3)
    assert [(x.text, x.step) for x in a] == [(x.text, x.step) for x in b]
    assert all(0 <= x.start <= x.step for x in b)
