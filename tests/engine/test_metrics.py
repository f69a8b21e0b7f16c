"""Unit tests of justask.metrics (scores, bootstrap IQM, summaries) and the return family's report."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from scipy import stats

from helpers import family_module
from justask.families import get_family
from justask.metrics import (
    achieved_vs_target_rows,
    best_and_last,
    iqm_with_ci,
    normalized_score,
    summarize,
    target_key,
    target_return,
)

results_table = family_module("return", "report").results_table

REF_MIN, REF_MAX = -100.0, 100.0  # score = (R + 100) / 2, easy to compute by hand


# --------------------------------------------------------------------------- scores and targets


def test_normalized_score_anchors_and_linearity():
    assert normalized_score(REF_MIN, REF_MIN, REF_MAX) == 0.0
    assert normalized_score(REF_MAX, REF_MIN, REF_MAX) == 100.0
    assert normalized_score(0.0, REF_MIN, REF_MAX) == 50.0
    got = normalized_score([-300.0, -100.0, 20.0, 300.0], REF_MIN, REF_MAX)
    np.testing.assert_allclose(got, [-100.0, 0.0, 60.0, 200.0])
    assert normalized_score(250.0, -150.0, 250.0) == 100.0


def test_normalized_score_rejects_bad_references():
    with pytest.raises(ValueError, match="ref_max"):
        normalized_score([1.0], 5.0, 5.0)


def test_target_return_is_inverse_of_normalized_score():
    assert target_return(0.0, REF_MIN, REF_MAX) == REF_MIN
    assert target_return(1.0, REF_MIN, REF_MAX) == REF_MAX
    assert target_return(1.2, -150.0, 250.0) == pytest.approx(330.0)  # beyond the expert
    fractions = np.array([-0.5, 0.0, 0.3, 0.9, 1.0, 1.2, 2.0])
    scores = normalized_score(target_return(fractions, -173.2, 251.7), -173.2, 251.7)
    np.testing.assert_allclose(scores, 100 * fractions)


def test_target_key():
    assert target_key(0.5) == "t0.5"
    assert target_key(1.0) == "t1"
    assert target_key(1.2) == "t1.2"
    assert target_key(float("nan")) == "any"
    assert target_key(None) == "any"


# --------------------------------------------------------------------------- IQM and its CI


def test_iqm_of_known_matrix():
    # Flattened 1..8: drop the lowest and highest quarter (1, 2, 7, 8), mean of 3..6 = 4.5.
    iqm, lo, hi = iqm_with_ci([[1, 2, 3, 4], [5, 6, 7, 8]], reps=200, seed=0)
    assert iqm == pytest.approx(4.5)
    assert lo <= iqm <= hi


def test_iqm_equals_scipy_trim_mean_on_flattened_scores():
    x = np.random.default_rng(3).normal(40.0, 25.0, size=(3, 10))
    iqm, _, _ = iqm_with_ci(x, reps=100, seed=0)
    assert iqm == pytest.approx(stats.trim_mean(x.ravel(), 0.25))


def test_ci_contains_iqm_and_is_deterministic_for_a_seed():
    x = np.random.default_rng(4).normal(60.0, 30.0, size=(3, 10))
    state = np.random.get_state()  # noqa: NPY002
    first = iqm_with_ci(x, reps=500, seed=7)
    assert first == iqm_with_ci(x, reps=500, seed=7)
    assert first != iqm_with_ci(x, reps=500, seed=8)
    iqm, lo, hi = first
    assert lo < iqm < hi
    # The global NumPy generator is restored after the bootstrap.
    after = np.random.get_state()  # noqa: NPY002
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


def test_ci_wider_at_lower_confidence_is_narrower():
    x = np.random.default_rng(5).normal(0.0, 10.0, size=(4, 8))
    _, lo95, hi95 = iqm_with_ci(x, reps=1000, seed=0, confidence=0.95)
    _, lo50, hi50 = iqm_with_ci(x, reps=1000, seed=0, confidence=0.5)
    assert hi50 - lo50 < hi95 - lo95


def test_ci_degenerate_cases():
    assert iqm_with_ci(np.full((3, 5), 42.0), reps=100, seed=0) == pytest.approx((42, 42, 42))
    # One run: resampling runs cannot change anything.
    assert iqm_with_ci([1.0, 2.0, 3.0, 4.0], reps=100, seed=0) == pytest.approx((2.5, 2.5, 2.5))


def test_iqm_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        iqm_with_ci([[1.0, math.nan]], reps=100, seed=0)


# --------------------------------------------------------------------------- summaries

FRACTIONS = [0.2, 0.5, 0.8, 1.2]  # target returns -60, 0, 60, 140 with REF_MIN/REF_MAX
DATA_RETURNS = np.array([-80.0, -20.0, 40.0, 90.0])  # range [-80, 90]: 1.2 (140) is outside


def _episodes() -> pd.DataFrame:
    """Two seeds x 4 episodes. bc: no target; rvs: follows targets; dt: ignores them."""
    rows = []

    def add(model, seed, fraction, rets):
        tr = math.nan if math.isnan(fraction) else target_return(fraction, REF_MIN, REF_MAX)
        for episode, ret in enumerate(rets):
            rows.append(
                {
                    "dataset": "mixed",
                    "model": model,
                    "seed": seed,
                    "target_fraction": fraction,
                    "target_return": tr,
                    "episode": episode,
                    "env_seed": 1000 + episode,
                    "ret": float(ret),
                    "length": 200,
                }
            )

    for seed in (0, 1):
        add("bc", seed, math.nan, [0.0, 20.0, 40.0, 60.0] if seed == 0 else [10, 30, 50, 70])
        for f in FRACTIONS:
            t = target_return(f, REF_MIN, REF_MAX)
            add("rvs", seed, f, [t - 3 + seed, t - 1 + seed, t + 1 + seed, t + 3 + seed])
            add("dt", seed, f, [25.0] * 4)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def summary() -> dict:
    return summarize(_episodes(), REF_MIN, REF_MAX, DATA_RETURNS, reps=200, seed=0)


def test_summarize_layout(summary):
    assert set(summary) == {"models", "correlation", "data"}
    assert set(summary["models"]) == {"bc", "dt", "rvs"}
    assert list(summary["models"]["bc"]) == ["any"]
    assert list(summary["models"]["rvs"]) == ["t0.2", "t0.5", "t0.8", "t1.2"]
    cell = summary["models"]["rvs"]["t0.5"]
    assert set(cell) == {
        "target_return",
        "return_mean",
        "return_std",
        "score_mean",
        "score_std",
        "score_iqm",
        "score_iqm_lo",
        "score_iqm_hi",
        "return_iqm",
        "return_iqm_lo",
        "return_iqm_hi",
        "episodes",
    }
    assert set(summary["correlation"]) == {"rvs", "dt"}  # conditioned models only
    json.dumps(summary)  # plain Python types only


def test_summarize_hand_computed_values(summary):
    bc = summary["models"]["bc"]["any"]
    # Returns 0..70 step 10: mean 35, population std sqrt(525) = 22.9129; score = (R+100)/2.
    assert bc["target_return"] is None
    assert bc["episodes"] == 8
    assert bc["return_mean"] == 35.0
    assert bc["return_std"] == 22.9129
    assert bc["score_mean"] == 67.5
    assert bc["score_std"] == 11.4564
    assert bc["score_iqm"] == 67.5  # trim 0, 10 and 60, 70 -> mean of 20..50 = 35 -> score 67.5
    assert bc["return_iqm"] == 35.0
    assert bc["score_iqm_lo"] <= 67.5 <= bc["score_iqm_hi"]
    assert bc["return_iqm_lo"] == pytest.approx(2 * bc["score_iqm_lo"] - 100, abs=1e-3)

    rvs = summary["models"]["rvs"]["t0.5"]  # target return 0; returns -3..3 and -2..4
    assert rvs["target_return"] == 0.0
    assert rvs["return_mean"] == 0.5
    assert rvs["score_mean"] == 50.25


def test_summarize_correlations(summary):
    rvs = summary["correlation"]["rvs"]
    assert rvs["targets_in_range"] == 3  # 140 is above the data's best return (90)
    assert rvs["spearman_means"] == 1.0
    assert rvs["pearson_means"] == 1.0
    assert 0.8 < rvs["spearman_episodes"] < 1.0  # episodes at neighbouring targets do not overlap
    dt = summary["correlation"]["dt"]  # constant achieved return: undefined correlation
    assert dt["spearman_means"] is None
    assert dt["spearman_episodes"] is None
    assert dt["pearson_means"] is None


def test_summarize_data_block(summary):
    assert summary["data"] == {
        "return_min": -80.0,
        "return_max": 90.0,
        "return_mean": 7.5,
        "return_std": 63.7868,  # sqrt((87.5² + 27.5² + 32.5² + 82.5²) / 4)
        "score_min": 10.0,
        "score_max": 95.0,
        "score_mean": 53.75,
        "episodes": 4,
    }


def test_summarize_rounds_and_is_deterministic(summary):
    again = summarize(_episodes(), REF_MIN, REF_MAX, DATA_RETURNS, reps=200, seed=0)
    assert again == summary
    for cells in summary["models"].values():
        for cell in cells.values():
            for value in cell.values():
                if isinstance(value, float):
                    assert value == round(value, 4)


def test_summarize_rejects_several_datasets():
    episodes = _episodes()
    episodes.loc[0, "dataset"] = "other"
    with pytest.raises(ValueError, match="one dataset"):
        summarize(episodes, REF_MIN, REF_MAX, DATA_RETURNS, reps=100, seed=0)


def test_a_single_run_gets_an_interval_over_its_episodes():
    """A baseline rolled out once (one "seed") must not get a zero-width CI."""
    one = _episodes().query("model == 'bc' and seed == 0")
    cell = summarize(one, REF_MIN, REF_MAX, DATA_RETURNS, reps=500, seed=0)["models"]["bc"]["any"]
    assert cell["score_iqm_lo"] < cell["score_iqm"] < cell["score_iqm_hi"]


def test_achieved_vs_target_rows():
    rows = achieved_vs_target_rows(_episodes(), {"mixed": DATA_RETURNS})
    assert {r["model"] for r in rows} == {"rvs", "dt"}
    by_key = {(r["model"], r["target_fraction"]): r for r in rows}
    r = by_key[("rvs", 0.8)]  # target 60; seed means 60 and 61
    assert r == {
        "dataset": "mixed",
        "model": "rvs",
        "target_fraction": 0.8,
        "target": 60.0,
        "achieved": 60.5,
        "achieved_lo": 60.0,
        "achieved_hi": 61.0,
        "in_data_range": True,
    }
    assert by_key[("rvs", 1.2)]["in_data_range"] is False
    assert achieved_vs_target_rows(_episodes(), DATA_RETURNS) == rows  # bare array, one dataset


# --------------------------------------------------------------------------- report


def _family_metrics(summary: dict) -> dict:
    return {
        "datasets": {"mixed": summary, "no-expert": summary},
        "behaviours": {
            "expert": {"mean_return": 100.0, "score": 100.0},
            "lazy-eps0.1": {"mean_return": 10.0, "score": 55.0},
        },
        "ref_min_score": REF_MIN,
        "ref_max_score": REF_MAX,
        "seeds": [0, 1],
        "episodes_per_target": 4,
    }


@pytest.mark.parametrize("width", [120, 80])
def test_results_table_renders(summary, width):
    console = Console(record=True, width=width)
    console.print(results_table(_family_metrics(summary), console_width=width))
    text = console.export_text()
    for name in ("mixed", "no-expert", "bc", "rvs", "dt", "ask 20", "ask 120", "any", "ρ"):
        assert name in text
    assert re.search(r"\b68\b", text)  # bc's IQM score, 67.5
    assert "+1.00" in text  # rvs's Spearman
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width


def test_print_results(tmp_path, summary, monkeypatch):
    from typer.testing import CliRunner

    from justask.cli import app

    monkeypatch.chdir(tmp_path)
    missing = CliRunner().invoke(app, ["results", "return"])
    assert missing.exit_code == 1, missing.output
    assert "no metrics/return.json yet" in " ".join(missing.output.split())
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "return.json").write_text(json.dumps(_family_metrics(summary)))
    shown = CliRunner().invoke(app, ["results", "return"])
    assert shown.exit_code == 0, shown.output
    assert "mixed" in shown.output and "Behaviour policies" in shown.output

    console = Console(record=True, width=120)
    get_family("return").print_results(_family_metrics(summary), console)
    text = console.export_text()
    assert "mixed" in text and "rvs" in text
    assert "Behaviour policies" in text and "lazy-eps0.1" in text
    assert "seed(s) [0, 1]" in text


def test_skill_model_gets_one_top_skill_cell_and_no_correlation():
    episodes = _episodes()
    skill = episodes[(episodes.model == "bc")].assign(model="skill", asked_skill=1.0)
    both = pd.concat([episodes.assign(asked_skill=math.nan), skill])
    out = summarize(both, REF_MIN, REF_MAX, DATA_RETURNS, reps=200, seed=0)
    assert list(out["models"]["skill"]) == ["top_skill"]
    assert out["models"]["skill"]["top_skill"] == out["models"]["bc"]["any"]  # same episodes, same cell
    assert "skill" not in out["correlation"]


def test_best_and_last_compares_each_seed_at_the_same_ask():
    best = _episodes()
    # Last weights: rvs asked for 0.5 only, 10 return points lower on every episode; bc unchanged.
    last = best[(best.model == "bc") | ((best.model == "rvs") & (best.target_fraction == 0.5))].copy()
    last.loc[last.model == "rvs", "ret"] -= 10.0
    out = best_and_last(best, last, REF_MIN, REF_MAX, reps=200, seed=0)
    assert set(out) == {"bc", "rvs"}
    rvs = out["rvs"]
    assert rvs["ask"] == "t0.5" and out["bc"]["ask"] == "any"
    target = target_return(0.5, REF_MIN, REF_MAX)
    # Seed s's best episodes are target - 3 + s, ..., target + 3 + s: mean target + s; score = (R + 100) / 2.
    assert rvs["best_seed_scores"] == pytest.approx([(target + 100) / 2, (target + 1 + 100) / 2])
    assert rvs["last_seed_scores"] == pytest.approx([(target - 10 + 100) / 2, (target - 9 + 100) / 2])
    assert rvs["best_score_mean"] - rvs["last_score_mean"] == pytest.approx(5.0)
    bc = out["bc"]
    assert bc["best_seed_scores"] == bc["last_seed_scores"] == pytest.approx([(30 + 100) / 2, (40 + 100) / 2])
    assert rvs["last"]["episodes"] == 8 and rvs["last"]["target_return"] == pytest.approx(target, abs=1e-3)
