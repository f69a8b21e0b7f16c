"""How training batches are drawn (:func:`justask.steps.row_weights`): per step, per episode, or
per return bin, so that a rare return is trained as often as a common one."""

import numpy as np
import pytest
import torch

from justask.steps import Steps, build_step_table, row_weights

CPU = torch.device("cpu")


def _table():
    """Three long low-return episodes, one short high-return one (the rare expert)."""
    eps = [{"observations": np.zeros((n + 1, 2), np.float32), "actions": np.zeros(n, np.int64),
            "rewards": np.full(n, r)} for n, r in ((100, 0.1), (100, 0.1), (100, 0.12), (10, 5.0))]
    return build_step_table(eps, np.zeros(4))


def _share(table, weights, episode):
    return float(weights[table.episode == episode].sum())


def test_step_sampling_is_uniform_over_steps():
    assert row_weights(_table(), np.arange(310), "step") is None


def test_episode_sampling_gives_every_episode_the_same_mass():
    table = _table()
    w = row_weights(table, np.arange(len(table)), "episode")
    assert w.sum() == pytest.approx(1.0)
    assert [_share(table, w, e) for e in range(4)] == pytest.approx([0.25] * 4)
    assert np.allclose(w[table.episode == 3], w[table.episode == 3][0])  # uniform within an episode


def test_return_sampling_gives_every_occupied_return_bin_the_same_mass():
    table = _table()
    w = row_weights(table, np.arange(len(table)), "return", bins=10)
    # returns 10, 10, 12 share the lowest bin; the expert's 50 is alone in the top one
    assert _share(table, w, 3) == pytest.approx(0.5)
    assert [_share(table, w, e) for e in range(3)] == pytest.approx([1 / 6] * 3)


def test_weights_cover_only_the_selected_rows():
    table = _table()
    rows = np.flatnonzero(table.episode != 1)
    w = row_weights(table, rows, "episode")
    assert len(w) == len(rows) and w.sum() == pytest.approx(1.0)
    assert float(w[table.episode[rows] == 3].sum()) == pytest.approx(1 / 3)


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="sampling must be one of"):
        row_weights(_table(), np.arange(10), "bins")


def test_steps_draw_batches_by_the_weights():
    table = _table()
    gen = torch.Generator().manual_seed(0)
    for sampling, expert_share in (("step", 10 / 310), ("episode", 0.25), ("return", 0.5)):
        steps = Steps(table, np.arange(4), CPU, sampling=sampling)
        picked = _picked_episodes(steps, gen, 20_000)
        assert (picked == 3).mean() == pytest.approx(expert_share, abs=0.015), sampling


def _picked_episodes(steps: Steps, gen: torch.Generator, n: int) -> np.ndarray:
    """The episode of each row ``steps.sample`` draws (read back from the observation it returns)."""
    steps.obs = torch.arange(len(steps.ep_start), dtype=torch.float32)[:, None].repeat(1, 2)  # obs = row index
    rows = steps.sample(gen, n, 1)["obs"][:, -1, 0].long().numpy()
    return np.searchsorted(np.unique(steps.ep_start.numpy()), rows, side="right") - 1
