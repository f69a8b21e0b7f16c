"""Policies trained by the one supervised loop in :mod:`justask.train`.

Every model consumes the same window batch (see :func:`justask.models.batch.windows`) of
length ``model.context``; an MLP uses only the last position. Models expose

* ``loss(batch) -> Tensor``: mean action loss over valid positions;
* ``act(batch) -> Tensor``: the action for the last position of each window (greedy).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from justask.data.atomic import atomic_write
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
    """Instantiate model ``kind`` (bc, pct_bc, rvs, dt; instruction; reward) with hyper-parameters ``hp``."""
    if kind == "dt":
        return DecisionTransformer(spec, hidden=hp["hidden"], layers=hp["layers"], heads=hp["heads"],
                                   context=hp["context"], dropout=hp["dropout"])
    if kind == "instruction":
        from justask.models.instruction_policy import InstructionPolicy

        return InstructionPolicy(spec, hidden=hp["hidden"], context=hp["context"], dropout=hp["dropout"])
    if kind == "reward":
        from justask.models.ranking import RewardNet

        return RewardNet(spec, hidden=hp["hidden"], layers=hp["layers"], dropout=hp["dropout"])
    if kind in ("bc", "pct_bc", "rvs"):
        return ConditionedMLP(spec, hidden=hp["hidden"], layers=hp["layers"], dropout=hp["dropout"],
                              conditioned=kind == "rvs")
    raise ValueError(f"unknown model kind {kind!r}")


def save_checkpoint(path: Path, kind: str, hp: dict, spec: Spec, model: torch.nn.Module, meta: dict) -> None:
    """Write weights plus what rebuilds the model (kind, hyper-parameters, spec) atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"kind": kind, "hp": hp, "spec": asdict(spec), "meta": meta, "state_dict": state}
    write_torch(path, payload)


def write_torch(path: Path, payload: dict) -> None:
    """``torch.save`` atomically and byte-stably: saved through a buffer, since a file's zip
    records are named after the (random) temporary file name."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, lambda p: p.write_bytes(buffer.getvalue()))


def load_checkpoint(path: Path, device: torch.device | str = "cpu"):
    """Rebuild a trained model from ``model.pt`` (safe: ``weights_only=True``)."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
        spec = Spec(**{k: tuple(v) if isinstance(v, list) else v for k, v in payload["spec"].items()})
        model = build_model(payload["kind"], payload["hp"], spec)
        model.load_state_dict(payload["state_dict"])
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(
            f"{path}: not a justask checkpoint of a compatible model ({type(e).__name__}: {e}). "
            "Re-run the stage that wrote it (e.g. `dvc repro train@return`) to rebuild it."
        ) from e
    return model.to(device).eval(), payload
