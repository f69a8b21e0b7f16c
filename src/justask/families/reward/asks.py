"""What the reward family's return-conditioned policies are asked for, where each improvement
round's data and policies live, and what each checkpoint's provenance must say (shared by train,
its rounds, evaluate and ask)."""

from __future__ import annotations

import numpy as np

from justask.paths import FamilyPaths
from justask.training.checkpoints import provenance, trained_on


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


def policy_provenance(params, paths: FamilyPaths, r: int, kind: str) -> dict:
    """What round ``r``'s ``kind`` policies must have been trained for and on."""
    return provenance("reward", "learned" if r == 0 else f"round{r}", kind,
                      **trained_on(params, "reward", paths.train / learned_folder(r)))


def oracle_provenance(params, paths: FamilyPaths) -> dict:
    return provenance("reward", "oracle", "pct_bc", **trained_on(params, "reward", paths.relabeled("oracle")))


def ranking_provenance(params, paths: FamilyPaths) -> dict:
    """Every ensemble member's: fitted on the relabel stage's snippets and pairs."""
    return provenance("reward", "ranking", "reward", **trained_on(params, "reward", paths.relabel))


def clone_provenance(params, paths: FamilyPaths) -> dict:
    """The demonstrator's BC clone's (written by collect): fitted on the demonstrations under the
    collect settings."""
    return provenance("reward", "demos", "bc", **trained_on(params, "reward", paths.dataset("demos"), "collect"))


def ppo_provenance(params, paths: FamilyPaths) -> dict:
    """PPO's: trained online on the learned reward, so its data is the ranking ensemble."""
    return provenance("reward", "ppo", "ppo", **trained_on(params, "reward", paths.train / "ranking"))
