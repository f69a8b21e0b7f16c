"""Scores, bootstrap IQMs and target-following statistics of evaluation rollouts (pure, no I/O).

Conventions:

* normalised score: ``100 * (R - ref_min) / (ref_max - ref_min)``; 0 is the random policy's mean
  return, 100 the heuristic expert's.
* a target fraction ``f`` asks for the normalised score ``100 * f``, i.e. the return
  ``ref_min + f * (ref_max - ref_min)`` (:func:`target_return`, the inverse of
  :func:`normalized_score`).
* IQMs and their confidence intervals follow rliable (Agarwal et al., 2021): a stratified
  bootstrap over training seeds (runs), computed on an ``(n_seeds, n_episodes)`` matrix.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

ANY = "any"  # target key of target-free models (bc, pct_bc)
TOP_SKILL = "top_skill"  # target key of skill-conditioned models, asked for the top skill
DECIMALS = 4  # floats in the summaries are rounded so metrics.json diffs stay readable


# --------------------------------------------------------------------------- scores and targets


def _check_refs(ref_min: float, ref_max: float) -> None:
    if not ref_max > ref_min:
        raise ValueError(f"ref_max ({ref_max}) must be greater than ref_min ({ref_min})")


def normalized_score(returns: ArrayLike, ref_min: float, ref_max: float) -> np.ndarray | float:
    """Map returns to normalised scores: 0 at ``ref_min`` (random), 100 at ``ref_max`` (expert)."""
    _check_refs(ref_min, ref_max)
    scores = 100.0 * (np.asarray(returns, dtype=float) - ref_min) / (ref_max - ref_min)
    return scores if scores.ndim else float(scores)


def target_return(fraction: ArrayLike, ref_min: float, ref_max: float) -> np.ndarray | float:
    """Return asked for by target ``fraction``: the return whose normalised score is ``100*f``."""
    _check_refs(ref_min, ref_max)
    target = ref_min + np.asarray(fraction, dtype=float) * (ref_max - ref_min)
    return target if target.ndim else float(target)


def target_key(fraction: float | None) -> str:
    """Key of a target in the summaries: ``"t0.5"`` for f = 0.5, ``"any"`` for no target."""
    if fraction is None or (isinstance(fraction, float) and math.isnan(fraction)):
        return ANY
    return f"t{fraction:g}"


# --------------------------------------------------------------------------- IQM with rliable


def iqm_with_ci(
    score_matrix: ArrayLike, reps: int, seed: int, confidence: float = 0.95, statistic: str = "iqm"
) -> tuple[float, float, float]:
    """Interquartile mean (or, with ``statistic="mean"``, e.g. for success rates, the mean) of all
    scores and its stratified-bootstrap percentile CI.

    ``score_matrix`` has shape ``(n_runs, n_episodes)`` (runs = training seeds); a 1-D array is
    one run. As in rliable, each episode column is a stratum whose runs are resampled with
    replacement, so the interval reflects seed-to-seed variation. Returns ``(iqm, lo, hi)``.

    rliable 1.2 draws its bootstrap indices from NumPy's *global* generator (its
    ``random_state`` argument does not reach ``np.random.choice``), so the global state is
    seeded with ``seed`` for the call and restored afterwards: same inputs and seed, same result,
    and no side effect on other users of ``np.random``.
    """
    scores = np.asarray(score_matrix, dtype=float)
    if scores.ndim == 1:
        scores = scores[None, :]
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(
            f"score_matrix must be a non-empty (runs, episodes) matrix, got {scores.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("score_matrix contains NaN or infinite values")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    from rliable import library as rly  # lazy: pulls in scipy/arch
    from rliable import metrics as rly_metrics

    if statistic not in ("iqm", "mean"):
        raise ValueError(f"statistic must be 'iqm' or 'mean', got {statistic!r}")
    agg = rly_metrics.aggregate_iqm if statistic == "iqm" else rly_metrics.aggregate_mean

    def aggregate(x: np.ndarray) -> np.ndarray:
        return np.array([agg(x)])

    saved = np.random.get_state()  # noqa: NPY002 (rliable samples from the global generator)
    try:
        np.random.seed(seed)  # noqa: NPY002
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # degenerate (constant) resamples
            point, interval = rly.get_interval_estimates(
                {"x": scores}, aggregate, reps=reps, confidence_interval_size=confidence
            )
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    lo, hi = interval["x"][:, 0]
    return float(point["x"][0]), float(lo), float(hi)


# --------------------------------------------------------------------------- summaries


def round_metric(x: Any) -> float | None:
    """Round to :data:`DECIMALS`; NaN/None become None (JSON null)."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, DECIMALS)


def correlation(kind: str, x: ArrayLike, y: ArrayLike) -> float | None:
    """Spearman or Pearson correlation; None if undefined (under 2 points, constant input)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    fn = stats.spearmanr if kind == "spearman" else stats.pearsonr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = fn(x, y)[0]
    return round_metric(rho)


def _episode_matrix(group: pd.DataFrame, column: str) -> np.ndarray:
    """``(n_seeds, n_episodes)`` matrix of ``column``; seeds must have equal episode counts."""
    counts = group.groupby("seed").size()
    if counts.nunique() != 1:
        raise ValueError(f"unequal episode counts per seed: {counts.to_dict()}")
    ordered = group.sort_values(["seed", "episode"])
    return ordered[column].to_numpy(dtype=float).reshape(len(counts), -1)


def _asks_skill(rows: pd.DataFrame) -> bool:
    return "asked_skill" in rows and bool(rows["asked_skill"].notna().any())


def _is_conditioned(rows: pd.DataFrame) -> bool:
    return bool(rows["target_fraction"].notna().any())


def _target_groups(rows: pd.DataFrame) -> list[tuple[float | None, pd.DataFrame]]:
    """(fraction, rows) per target in increasing order; ``(None, rows)`` for target-free models."""
    if not _is_conditioned(rows):
        return [(None, rows)]
    return [(float(f), g) for f, g in rows.groupby("target_fraction", sort=True)]


def _cell(
    rows: pd.DataFrame, ref_min: float, ref_max: float, reps: int, seed: int
) -> dict[str, float | int | None]:
    """Statistics of all episodes (all seeds) of one model at one target."""
    returns = rows["ret"].to_numpy(dtype=float)
    scores = normalized_score(returns, ref_min, ref_max)
    score_matrix = normalized_score(_episode_matrix(rows, "ret"), ref_min, ref_max)
    if len(score_matrix) == 1:
        # One run (e.g. a scripted demonstrator): resampling runs would give a zero-width
        # interval, so its episodes are resampled instead (runs of a single task).
        score_matrix = score_matrix.T
    iqm, lo, hi = iqm_with_ci(score_matrix, reps=reps, seed=seed)
    # The IQM and percentile CI are affine-equivariant, so the return-space values are exact.
    back = [float(target_return(s / 100.0, ref_min, ref_max)) for s in (iqm, lo, hi)]
    target = rows["target_return"].iloc[0] if _is_conditioned(rows) else None
    return {
        "target_return": round_metric(target),
        "return_mean": round_metric(returns.mean()),
        "return_std": round_metric(returns.std()),
        "score_mean": round_metric(scores.mean()),
        "score_std": round_metric(scores.std()),
        "score_iqm": round_metric(iqm),
        "score_iqm_lo": round_metric(lo),
        "score_iqm_hi": round_metric(hi),
        "return_iqm": round_metric(back[0]),
        "return_iqm_lo": round_metric(back[1]),
        "return_iqm_hi": round_metric(back[2]),
        "episodes": len(rows),
    }


def _in_range(targets: pd.Series, data_returns: np.ndarray) -> pd.Series:
    return (targets >= data_returns.min()) & (targets <= data_returns.max())


def _model_correlation(rows: pd.DataFrame, data_returns: np.ndarray) -> dict[str, Any]:
    """How well achieved returns follow the asked ones, over targets inside the data's range."""
    inside = rows[_in_range(rows["target_return"], data_returns)]
    means = inside.groupby("target_return", sort=True)["ret"].mean()
    return {
        "spearman_means": correlation("spearman", means.index, means.to_numpy()),
        "spearman_episodes": correlation("spearman", inside["target_return"], inside["ret"]),
        "pearson_means": correlation("pearson", means.index, means.to_numpy()),
        "targets_in_range": len(means),
    }


def _single_dataset(episodes: pd.DataFrame) -> None:
    names = episodes["dataset"].unique()
    if len(names) != 1:
        raise ValueError(f"summarize expects episodes of one dataset, got {list(names)}")


def summarize(
    episodes: pd.DataFrame,
    ref_min: float,
    ref_max: float,
    data_returns: ArrayLike,
    reps: int,
    seed: int,
) -> dict[str, Any]:
    """Summarise the evaluation episodes of ONE dataset (the caller loops over datasets).

    ``episodes`` columns: dataset, model, seed, target_fraction (NaN for target-free models),
    target_return, episode, env_seed, ret, length. ``data_returns`` are the returns of the
    dataset's episodes. Returns::

        {"models": {model: {target_key: cell}},      # target_key "t0.5", ... or "any"
         "correlation": {model: {...}},              # conditioned models only
         "data": {"return_min", "return_max", "return_mean", "return_std",
                  "score_min", "score_max", "score_mean", "episodes"}}

    where a cell holds target_return (None for "any"), return_mean/std, score_mean/std,
    score_iqm(+_lo/_hi), return_iqm(+_lo/_hi) and episodes; the correlation entry holds
    spearman_means / pearson_means (target return vs mean achieved return), spearman_episodes
    (target return vs each episode's return), all over targets inside [min, max] of the data's
    returns and None where undefined, and targets_in_range. Floats are rounded to 4 decimals.
    """
    _single_dataset(episodes)
    data_returns = np.asarray(data_returns, dtype=float)
    if data_returns.size == 0:
        raise ValueError("data_returns is empty")
    models: dict[str, dict[str, Any]] = {}
    correlations: dict[str, dict[str, Any]] = {}
    for model, rows in episodes.groupby("model", sort=True):
        if _asks_skill(rows):
            models[model] = {TOP_SKILL: _cell(rows, ref_min, ref_max, reps, seed)}
            continue
        models[model] = {
            target_key(f): _cell(g, ref_min, ref_max, reps, seed) for f, g in _target_groups(rows)
        }
        if _is_conditioned(rows):
            correlations[model] = _model_correlation(rows, data_returns)
    data_scores = normalized_score(data_returns, ref_min, ref_max)
    data = {
        "return_min": round_metric(data_returns.min()),
        "return_max": round_metric(data_returns.max()),
        "return_mean": round_metric(data_returns.mean()),
        "return_std": round_metric(data_returns.std()),
        "score_min": round_metric(data_scores.min()),
        "score_max": round_metric(data_scores.max()),
        "score_mean": round_metric(data_scores.mean()),
        "episodes": int(data_returns.size),
    }
    return {"models": models, "correlation": correlations, "data": data}


def best_and_last(best: pd.DataFrame, last: pd.DataFrame, ref_min: float, ref_max: float, reps: int,
                  seed: int) -> dict[str, Any]:
    """The weights selected on validation loss against the last ones, per model of ONE dataset, at
    the one ask ``last`` holds for it: each training seed's mean score with either (same env
    seeds), their means, and the last weights' IQM cell (as :func:`summarize`'s). ``best`` holds
    the selected weights' episodes (every ask); ``last`` the last weights' (columns as there)."""
    out: dict[str, Any] = {}
    for model, rows in last.groupby("model", sort=True):
        f = rows["target_fraction"].iloc[0]
        mine = best[best["model"] == model]
        same = mine[mine["target_fraction"].isna()] if pd.isna(f) else mine[mine["target_fraction"] == f]
        seeds = {}
        for name, frame in (("best", same), ("last", rows)):
            per_seed = frame.groupby("seed", sort=True)["ret"].mean()
            seeds[name] = [round_metric(normalized_score(r, ref_min, ref_max)) for r in per_seed]
        key = TOP_SKILL if _asks_skill(rows) else target_key(None if pd.isna(f) else float(f))
        out[model] = {"ask": key, "best_seed_scores": seeds["best"], "last_seed_scores": seeds["last"],
                      "best_score_mean": round_metric(np.mean(seeds["best"])),
                      "last_score_mean": round_metric(np.mean(seeds["last"])),
                      "last": _cell(rows, ref_min, ref_max, reps, seed)}
    return out


def achieved_vs_target_rows(
    episodes: pd.DataFrame, data_returns: Mapping[str, ArrayLike] | ArrayLike
) -> list[dict[str, Any]]:
    """Rows of the achieved-vs-asked plot for conditioned models, one per (dataset, model, target).

    ``data_returns`` maps each dataset to its episode returns (a bare array is accepted when
    ``episodes`` holds one dataset). Row keys: dataset, model, target_fraction, target (return),
    achieved (mean return over all episodes), achieved_lo / achieved_hi (min / max over seeds of
    the per-seed mean return) and in_data_range (target inside the data's [min, max] return).
    """
    if not isinstance(data_returns, Mapping):
        _single_dataset(episodes)
        data_returns = {episodes["dataset"].iloc[0]: data_returns}
    conditioned = episodes[episodes["target_fraction"].notna()]
    rows = []
    keys = ["dataset", "model", "target_fraction"]
    for (dataset, model, fraction), g in conditioned.groupby(keys, sort=True):
        data = np.asarray(data_returns[dataset], dtype=float)
        target = float(g["target_return"].iloc[0])
        seed_means = g.groupby("seed")["ret"].mean()
        rows.append(
            {
                "dataset": dataset,
                "model": model,
                "target_fraction": float(fraction),
                "target": round_metric(target),
                "achieved": round_metric(g["ret"].mean()),
                "achieved_lo": round_metric(seed_means.min()),
                "achieved_hi": round_metric(seed_means.max()),
                "in_data_range": bool(data.min() <= target <= data.max()),
            }
        )
    return rows
