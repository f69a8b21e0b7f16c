"""What the reward family's return-conditioned policies are asked for, and where each improvement
round's data and policies live (shared by train's rounds and evaluate)."""

from __future__ import annotations

import numpy as np


def quantile_target(q: float, returns) -> float:
    """Learned return asked for by quantile ``q`` of the data's episode ``returns``: the
    ``q``-quantile for ``q <= 1`` (1 = the best episode); above 1, ``(q - 1)`` times the data's
    range past the best."""
    returns = np.asarray(returns, dtype=float)
    if returns.size == 0:
        raise ValueError("no returns to take a quantile of")
    if q <= 1.0:
        return float(np.quantile(returns, q))
    return float(returns.max() + (q - 1.0) * (returns.max() - returns.min()))


def policy_folder(r: int) -> str:
    """Folder under ``train/`` of round ``r``'s policies (round 0: the policies fitted on the noise data)."""
    return "policies" if r == 0 else f"round{r}"


def learned_folder(r: int) -> str:
    """Folder under ``train/`` of round ``r``'s data with learned returns."""
    return "learned" if r == 0 else f"round{r}/learned"


def round_model(kind: str, r: int) -> str:
    """Name of round ``r``'s ``kind`` policies in the metrics ("rvs", "rvs-round1", ...)."""
    return kind if r == 0 else f"{kind}-round{r}"
