"""Across-episode contexts: AD's episode subsampling, tokens whose previous action and reward cross
the episode boundary, windows that span consecutive episodes of one history (left-padded at its
start, never reaching into another) and a train/validation split by history."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from justask.families.improve.contexts import (
    NO_ACTION,
    Contexts,
    Windows,
    build_contexts,
    hindsight_labels,
    kept_episodes,
    optimal_actions,
)
from justask.families.improve.env import ACTIONS, move
from justask.families.improve.histories import Histories

CPU = torch.device("cpu")
SIZE, H = 5, 5  # room side, steps per episode


def histories(n=3, episodes=4, seed=0) -> Histories:
    """Random but distinguishable histories: every episode's last reward is 1 and its last action
    differs from the one before, so what crosses a boundary can be told apart."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, SIZE, (n, episodes, H + 1, 2))
    actions = rng.integers(0, ACTIONS, (n, episodes, H))
    actions[:, :, -1] = (actions[:, :, -2] + 1) % ACTIONS
    rewards = rng.integers(0, 2, (n, episodes, H)).astype(np.float32)
    rewards[:, :, -1], rewards[:, :, 0] = 1.0, 0.0
    goals = rng.integers(0, SIZE, (n, 2))
    return Histories(cells, actions, rewards, goals)


@pytest.mark.parametrize(("episodes", "skip", "expected"), [
    (10, 1, list(range(10))), (10, 3, [0, 3, 6, 9]), (10, 4, [1, 5, 9]), (3, 5, [2]), (12, 2, [1, 3, 5, 7, 9, 11]),
])
def test_kept_episodes_examples(episodes, skip, expected):
    assert kept_episodes(episodes, skip).tolist() == expected


def test_kept_episodes_keeps_every_skip_th_back_from_the_last():
    for episodes in range(1, 30):
        for skip in range(1, 12):
            kept = kept_episodes(episodes, skip)
            assert kept[-1] == episodes - 1  # the last always
            assert (np.diff(kept) == skip).all()  # every skip-th, in order
            assert 0 <= kept[0] < skip  # as far back as the history goes
            assert len(kept) == -(-episodes // skip)


def test_build_contexts_flattens_each_history_in_the_learners_order():
    h = histories()
    episodes = np.array([1, 2, 3])
    split = np.array([0, 1, 0])
    ctx = build_contexts(h, episodes, split, SIZE)
    n, e = len(h), len(episodes)
    assert len(ctx) == n * e * H and ctx.starts.tolist() == [0, 15, 30, 45]
    assert ctx.split.tolist() == [0, 1, 0] and np.array_equal(ctx.goals, h.goals)
    for s in range(n):
        rows = slice(ctx.starts[s], ctx.starts[s + 1])
        want_cells = h.cells[s, episodes, :-1]  # the cell each action was taken in, not the final one
        assert np.array_equal(ctx.cells[rows], (want_cells[..., 0] * SIZE + want_cells[..., 1]).reshape(-1))
        assert np.array_equal(ctx.actions[rows], h.actions[s, episodes].reshape(-1))
        assert np.array_equal(ctx.episode[rows], np.repeat(episodes, H))
        assert np.array_equal(ctx.timesteps[rows], np.tile(np.arange(H), e))


def test_the_previous_action_and_reward_cross_the_episode_boundary():
    h = histories()
    episodes = np.array([0, 2, 3])  # subsampled: episode 2 follows episode 0 in the sequence
    ctx = build_contexts(h, episodes, np.zeros(3), SIZE)
    for s in range(len(h)):
        first = ctx.starts[s]
        assert ctx.prev_actions[first] == NO_ACTION == ACTIONS and ctx.prev_rewards[first] == 0.0
        for k in range(1, len(episodes)):
            i = first + k * H  # the first step of the sequence's k-th episode
            assert ctx.timesteps[i] == 0
            assert ctx.prev_actions[i] == h.actions[s, episodes[k - 1], -1]
            assert ctx.prev_rewards[i] == h.rewards[s, episodes[k - 1], -1] == 1.0
        rows = np.arange(first + 1, ctx.starts[s + 1])
        assert np.array_equal(ctx.prev_actions[rows], ctx.actions[rows - 1])  # within and across episodes
        assert np.array_equal(ctx.prev_rewards[rows], h.rewards[s, episodes].reshape(-1)[:-1])
    assert (ctx.prev_actions == NO_ACTION).sum() == len(h)  # only at each sequence's start
    assert ctx.prev_actions.dtype == np.int64 and ctx.prev_rewards.dtype == np.float32


def _indexed(ctx: Contexts) -> tuple[Contexts, np.ndarray]:
    """``ctx`` with its cells replaced by row numbers, so a window says which rows it holds."""
    rows = np.arange(len(ctx), dtype=np.int64)
    marked = Contexts(**{n: getattr(ctx, n) for n in Contexts.ARRAYS})
    marked.cells = rows
    return marked, rows


def test_a_window_spans_consecutive_episodes_of_one_history():
    ctx = build_contexts(histories(n=3, episodes=4), np.arange(4), np.array([0, 1, 0]), SIZE)
    marked, _ = _indexed(ctx)
    win = Windows(marked, 0, CPU)
    end = int(ctx.starts[2]) + 2 * H + 3  # sequence 2, episode 2, step 3
    k = 12
    w = win.windows(torch.tensor([end]), k)
    assert set(w) == {"cells", "prev_actions", "prev_rewards", "timesteps", "actions", "mask"}
    assert w["mask"].all() and w["cells"].shape == (1, k)
    rows = w["cells"][0].numpy()
    assert rows.tolist() == list(range(end - k + 1, end + 1))  # consecutive, ending at the row asked for
    episode = ctx.episode[rows]
    assert (np.diff(episode) >= 0).all() and episode.tolist() == [0] * 3 + [1] * 5 + [2] * 4
    t = w["timesteps"][0].numpy()
    assert t.tolist() == [2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3]  # wraps from H - 1 to 0
    for f in ("prev_actions", "prev_rewards", "actions"):
        assert np.array_equal(w[f][0].numpy(), getattr(ctx, f)[rows])


def test_a_window_reaching_before_its_history_is_left_padded_and_never_mixes_histories():
    ctx = build_contexts(histories(n=3, episodes=4), np.arange(4), np.array([0, 0, 0]), SIZE)
    marked, _ = _indexed(ctx)
    win = Windows(marked, 0, CPU)
    k = 9
    ends = torch.arange(len(ctx))
    w = win.windows(ends, k)
    seq = np.repeat(np.arange(3), np.diff(ctx.starts))
    for end in range(len(ctx)):
        first = ctx.starts[seq[end]]
        real = min(k, end - first + 1)
        mask = w["mask"][end].numpy()
        assert mask.tolist() == [False] * (k - real) + [True] * real, end
        rows = w["cells"][end].numpy()
        assert rows[mask].tolist() == list(range(end - real + 1, end + 1))
        assert ((rows >= first) & (rows <= end)).all(), end  # padding too stays inside the history
    # the start of sequence 1: one real step, its tokens those of the sequence's first step
    end = int(ctx.starts[1])
    assert w["mask"][end].sum() == 1 and w["prev_actions"][end, -1] == NO_ACTION and w["prev_rewards"][end, -1] == 0


def test_windows_come_only_from_their_split():
    ctx = build_contexts(histories(n=4, episodes=3), np.arange(3), np.array([1, 0, 0, 1]), SIZE)
    marked, rows = _indexed(ctx)
    seq = np.repeat(np.arange(4), np.diff(ctx.starts))
    train, val = Windows(marked, 0, CPU), Windows(marked, 1, CPU)
    assert train.rows.tolist() == rows[np.isin(seq, [1, 2])].tolist()
    assert val.rows.tolist() == rows[np.isin(seq, [0, 3])].tolist()
    assert len(train) + len(val) == len(ctx)
    for windows, allowed in ((train, [1, 2]), (val, [0, 3])):
        batch = windows.sample(torch.Generator().manual_seed(0), 256, 7)
        held = batch["cells"].numpy()
        assert np.isin(seq[held], allowed).all()  # every row of every window, padding included
        ends = held[:, -1]
        assert len(np.unique(ends)) > 10
    fewer = Windows(marked, 0, CPU, max_rows=5)
    assert len(fewer) == 5 and set(fewer.rows.tolist()) <= set(train.rows.tolist())
    with pytest.raises(ValueError, match="no validation histories"):
        Windows(build_contexts(histories(n=2), np.arange(4), np.zeros(2), SIZE), 1, CPU)


def test_contexts_round_trip_through_disk(tmp_path):
    ctx = build_contexts(histories(), np.array([1, 3]), np.array([0, 1, 0]), SIZE)
    ctx.save(tmp_path / "ctx", {"size": SIZE})
    back, meta = Contexts.load(tmp_path / "ctx")
    assert meta == {"size": SIZE}
    for name in Contexts.ARRAYS:
        got, want = getattr(back, name), getattr(ctx, name)
        assert np.array_equal(got, want) and got.dtype == want.dtype, name


def test_optimal_actions_take_a_shortest_way_and_split_evenly_where_two_do():
    rng = np.random.default_rng(0)
    cells = rng.integers(0, SIZE, (4000, 2))
    goals = rng.integers(0, SIZE, (4000, 2))
    actions = optimal_actions(cells, goals, rng)
    before = np.abs(goals - cells).sum(1)
    after = np.abs(goals - move(cells, actions, SIZE)).sum(1)
    assert np.all(np.where(before == 0, actions == 0, after == before - 1))  # stay on the goal, else one closer
    both = (cells[:, 0] != goals[:, 0]) & (cells[:, 1] != goals[:, 1])
    vertical = np.isin(actions[both], (1, 2)).mean()
    assert 0.45 < vertical < 0.55  # either of the two shortening moves, evenly
    assert np.array_equal(optimal_actions(cells, goals, np.random.default_rng(1)),
                          optimal_actions(cells, goals, np.random.default_rng(1)))


def test_hindsight_labels_are_the_learners_until_the_sequence_is_rewarded_then_optimal():
    h = histories(n=3, episodes=4)
    h.rewards[:] = 0.0
    h.rewards[0, 1, 2] = 1.0  # sequence 0 is rewarded at episode 1, step 2; the others never
    ctx = build_contexts(h, np.arange(4), np.zeros(3, np.int8), SIZE)
    labels = hindsight_labels(ctx, SIZE, np.random.default_rng(0))
    first_after = ctx.starts[0] + 1 * H + 2 + 1  # the step after the reward sees it as its previous reward
    assert np.array_equal(labels[:first_after], ctx.actions[:first_after])
    rest = slice(first_after, ctx.starts[1])
    cells = np.stack([ctx.cells[rest] // SIZE, ctx.cells[rest] % SIZE], 1)
    goal = np.tile(h.goals[0], (len(cells), 1))
    closer = np.abs(goal - move(cells, labels[rest], SIZE)).sum(1)
    assert np.all(closer == np.maximum(np.abs(goal - cells).sum(1) - 1, 0))
    assert np.array_equal(labels[ctx.starts[1]:], ctx.actions[ctx.starts[1]:])  # never rewarded: the learner's
