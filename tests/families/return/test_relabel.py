"""Return-to-go, episode splits and the relabeled step table."""

import numpy as np
import pytest

from helpers import ROOT
from justask.config import load_params
from justask.datasets import split_episodes
from justask.errors import StageFailed
from justask.families import run_stage
from justask.steps import StepTable, build_step_table, returns_to_go


def test_returns_to_go_hand_computed():
    np.testing.assert_allclose(returns_to_go([1.0, 2.0, 3.0]), [6.0, 5.0, 3.0])
    np.testing.assert_allclose(returns_to_go([-1.0, 0.5]), [-0.5, 0.5])
    assert returns_to_go([4.0])[0] == 4.0


def test_returns_to_go_first_step_is_episode_return():
    r = np.random.default_rng(0).normal(size=50)
    rtg = returns_to_go(r)
    assert rtg[0] == pytest.approx(r.sum())
    np.testing.assert_allclose(rtg[:-1] - rtg[1:], r[:-1])


def test_split_is_deterministic_disjoint_and_complete():
    tr, va = split_episodes(100, 0.1, seed=3)
    tr2, va2 = split_episodes(100, 0.1, seed=3)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(va, va2)
    assert len(va) == 10 and len(tr) == 90
    assert set(tr).isdisjoint(va) and set(tr) | set(va) == set(range(100))
    assert not np.array_equal(va, split_episodes(100, 0.1, seed=4)[1])


def test_split_keeps_both_sides_non_empty():
    tr, va = split_episodes(2, 0.01, seed=0)
    assert len(tr) == 1 and len(va) == 1
    with pytest.raises(ValueError, match="at least 2 episodes"):
        split_episodes(1, 0.1, seed=0)


def _episode(n, reward=1.0):
    return {"observations": np.arange((n + 1) * 8, dtype=np.float32).reshape(n + 1, 8),
            "actions": np.arange(n) % 4, "rewards": np.full(n, reward)}


def test_step_table_layout_and_roundtrip(tmp_path):
    eps = [_episode(3), _episode(2, reward=2.0)]
    table = build_step_table(eps, np.array([0, 1]))
    np.testing.assert_array_equal(table.starts, [0, 3, 5])
    np.testing.assert_array_equal(table.episode, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(table.timesteps, [0, 1, 2, 0, 1])
    np.testing.assert_allclose(table.rtg, [3, 2, 1, 4, 2])
    np.testing.assert_allclose(table.returns, [3, 4])
    assert table.observations.shape == (5, 8)  # the final observation of each episode is dropped
    table.save(tmp_path / "t", {"x": 1})
    loaded, meta = StepTable.load(tmp_path / "t")
    assert meta == {"x": 1}
    for name in StepTable.ARRAYS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(table, name))


def test_load_incomplete_table_names_the_fix(tmp_path):
    (tmp_path / "t").mkdir()
    with pytest.raises(FileNotFoundError, match=r"t: relabeled data incomplete .*run `dvc repro relabel@return`"):
        StepTable.load(tmp_path / "t", "dvc repro relabel@return")
    # The return family's stages name that fix when its relabeled tables are missing.
    with pytest.raises(StageFailed, match="medium-expert: relabeled data incomplete .*dvc repro relabel@return"):
        run_stage("train", "return", load_params(ROOT / "profiles" / "test.yaml"), tmp_path)
