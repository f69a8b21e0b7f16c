"""Return-conditioned policies over vector observations, trained by the one loop in
:mod:`justask.training` and shared by every family that asks for a return (``return``, ``reward``).

Every model consumes the same window batch (see :class:`justask.steps.Steps`) of length
``model.context``; an MLP uses only the last position. Models expose

* ``loss(batch) -> Tensor``: mean action loss over valid positions;
* ``act(batch) -> Tensor``: the action for the last position of each window (greedy).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch

from justask.errors import CheckpointError
from justask.models.conditioned_mlp import ConditionedMLP
from justask.models.decision_transformer import DecisionTransformer
from justask.settings import CONDITIONED, MODEL_KINDS, SKILL_CONDITIONED
from justask.steps import Spec
from justask.training.checkpoints import check_provenance, read_payload, rebuild
from justask.training.loop import Optimisation

__all__ = ["CONDITIONED", "MODEL_KINDS", "SKILL_CONDITIONED", "Spec", "build_model", "candidate", "condition_of",
           "load_model", "spec_of"]


def build_model(kind: str, hp: dict, spec: Spec) -> torch.nn.Module:
    """Instantiate model ``kind`` (bc, pct_bc, rvs, dt, skill) with hyper-parameters ``hp``."""
    if kind == "dt":
        return DecisionTransformer(spec, hidden=hp["hidden"], layers=hp["layers"], heads=hp["heads"],
                                   context=hp["context"], dropout=hp["dropout"],
                                   actions=hp.get("actions", True))
    if kind in ("bc", "pct_bc", "rvs", "skill"):
        return ConditionedMLP(spec, hidden=hp["hidden"], layers=hp["layers"], dropout=hp["dropout"],
                              condition=condition_of(kind))
    raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(MODEL_KINDS)}")


def condition_of(kind: str) -> str:
    """What model ``kind`` is asked for: ``return`` (a return-to-go, decremented by each reward),
    ``skill`` (a behaviour's skill rank, held for the whole episode) or ``none``."""
    return "return" if kind in CONDITIONED else "skill" if kind in SKILL_CONDITIONED else "none"


def candidate(kind: str, spec: Spec, hp: dict, steps: int) -> tuple[partial, Optimisation]:
    """What the training loop (and every Optuna trial, see :data:`justask.training.tune.Candidate`)
    needs to fit model ``kind`` with hyper-parameters ``hp`` for ``steps`` steps."""
    return (partial(build_model, kind, hp, spec),
            Optimisation(lr=hp["lr"], weight_decay=hp["weight_decay"], batch_size=hp["batch_size"], steps=steps))


def spec_of(payload: dict) -> Spec:
    return Spec(**{k: tuple(v) if isinstance(v, list) else v for k, v in payload["spec"].items()})


def load_model(path: Path, device: torch.device | str = "cpu", expect: dict[str, Any] | None = None,
               where: str = "the configured env", provenance: dict | None = None, rerun: str = "the train stage"):
    """Rebuild a trained policy from ``model.pt`` (safe: ``weights_only=True``); returns
    ``(model, payload)``.

    Raises :class:`CheckpointError` (naming the file, what it holds and the fix) when the file is
    damaged, holds another kind of model (e.g. the language family's policy), has weights of another
    shape than its settings, or, with ``expect`` (spec fields, e.g. from
    :func:`justask.lunar.env.model_expectation`), was trained for other observations or actions;
    with ``provenance``, was trained for another family, dataset, model, configuration or data
    (:func:`justask.training.checkpoints.check_provenance`; ``rerun`` names the fix).
    """
    payload = read_payload(path, device, MODEL_KINDS, "return-conditioned policy")
    if expect is not None:
        try:
            got = {k: payload["spec"][k] for k in expect}
        except (KeyError, TypeError):
            got = None
        if got != expect:
            raise CheckpointError(
                f"{path}: trained for {got}, but {where} has {expect}. Re-train for this env, or set the env "
                "in params.yaml to the one it was trained on.")
    if provenance is not None:
        check_provenance(path, payload, provenance, rerun)
    model = rebuild(path, payload, lambda p: build_model(p["kind"], p["hp"], spec_of(p)),
                    f"a {payload['kind']!r} model")
    return model.to(device).eval(), payload
