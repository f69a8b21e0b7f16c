"""Policies trained by the one supervised loop in :mod:`justask.train`.

Every model consumes the same window batch (see :func:`justask.models.batch.windows`) of
length ``model.context``; an MLP uses only the last position. Models expose

* ``loss(batch) -> Tensor``: mean action loss over valid positions;
* ``act(batch) -> Tensor``: the action for the last position of each window (greedy).
"""

from __future__ import annotations

from dataclasses import dataclass

from justask.models.conditioned_mlp import ConditionedMLP
from justask.models.decision_transformer import DecisionTransformer


@dataclass(frozen=True)
class Spec:
    """What a model needs to know about the data it is trained on."""

    obs_dim: int
    act_dim: int  # number of discrete actions, or the continuous action size
    discrete: bool
    max_timestep: int
    obs_mean: tuple[float, ...]
    obs_std: tuple[float, ...]
    return_scale: float  # return-to-go is divided by this before entering a model


CONDITIONED = {"rvs", "dt"}


def build_model(kind: str, hp: dict, spec: Spec):
    """Instantiate model ``kind`` (bc, pct_bc, rvs, dt; instruction) with hyper-parameters ``hp``."""
    if kind == "dt":
        return DecisionTransformer(spec, hidden=hp["hidden"], layers=hp["layers"], heads=hp["heads"],
                                   context=hp["context"], dropout=hp["dropout"])
    if kind == "instruction":
        from justask.models.instruction_policy import InstructionPolicy

        return InstructionPolicy(spec, hidden=hp["hidden"], context=hp["context"], dropout=hp["dropout"])
    if kind in ("bc", "pct_bc", "rvs"):
        return ConditionedMLP(spec, hidden=hp["hidden"], layers=hp["layers"], dropout=hp["dropout"],
                              conditioned=kind == "rvs")
    raise ValueError(f"unknown model kind {kind!r}")
