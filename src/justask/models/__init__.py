"""Policies trained by the one supervised loop in :mod:`justask.train`.

Every model consumes the same window batch (see :func:`justask.models.batch.windows`) of
length ``model.context``; an MLP uses only the last position. Models expose

* ``loss(batch) -> Tensor``: mean action loss over valid positions;
* ``act(batch) -> Tensor``: the action for the last position of each window (greedy).
"""

from __future__ import annotations

import io
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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


class CheckpointError(ValueError):
    """A model file is unreadable, from another model family, or of another shape than expected."""


SPEC_KINDS = ("bc", "pct_bc", "rvs", "dt", "reward")  # what :func:`load_checkpoint` rebuilds
_KIND_SOURCE = {"bc": "return family", "pct_bc": "return family", "rvs": "return or reward family",
                "dt": "return or reward family", "reward": "reward family's learned reward",
                "instruction": "language family's instruction policy"}


def read_payload(path: Path, device: torch.device | str, kinds: Collection[str], family: str) -> dict:
    """The dict saved in a justask ``model.pt`` (``weights_only=True``), checked to hold a model of one
    of ``kinds`` (what the ``family``'s loader reads). :class:`CheckpointError` naming the file, what
    it holds and the fix otherwise; a ``FileNotFoundError`` passes through, so callers name the stage."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated zip, not a torch file, unsafe pickle
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e}). The file is "
                              "damaged or of another format; re-run the train stage that writes it.") from e
    kind = payload.get("kind") if isinstance(payload, dict) else None
    if kind is not None and kind not in kinds:
        source = _KIND_SOURCE.get(kind, "unknown model family")
        raise CheckpointError(
            f"{path}: not a justask {family} checkpoint: it holds a {kind!r} model ({source}), and only "
            f"{' / '.join(kinds)} models are read here. The file was copied from another family or stage: "
            "restore it with `dvc checkout` or re-run the train stage that writes it.")
    missing = [k for k in ("kind", "hp", "spec", "state_dict") if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise CheckpointError(f"{path}: not a justask checkpoint (no {', '.join(missing)}); re-run the train "
                              "stage that writes it.")
    return payload


def load_state(path: Path, model: torch.nn.Module, state: dict) -> None:
    """Load ``state`` into ``model``; :class:`CheckpointError` naming the first mismatched weight."""
    own = model.state_dict()
    for name, tensor in state.items():
        if name in own and tuple(own[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{path}: weight {name!r} has shape {tuple(tensor.shape)}, but the architecture its own "
                f"settings describe needs {tuple(own[name].shape)}: the weights and settings come from "
                "different models. Re-run the train stage that writes it.")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # missing or unexpected weight names
        raise CheckpointError(f"{path}: weights do not fit the model its settings describe ({e}). "
                              "Re-run the train stage that writes it.") from e


def env_expectation(env_cfg) -> dict[str, Any]:
    """The ``Spec`` fields a model acting in the env of ``env_cfg`` (an ``EnvConfig``) must have."""
    from gymnasium import spaces

    from justask.envs.lunar import make_env

    env = make_env(env_cfg.id, env_cfg.continuous, env_cfg.max_episode_steps)
    try:
        obs, act = env.observation_space, env.action_space
        discrete = isinstance(act, spaces.Discrete)
        return {"obs_dim": int(obs.shape[0]), "discrete": discrete,
                "act_dim": int(act.n) if discrete else int(act.shape[0])}
    finally:
        env.close()


def load_checkpoint(path: Path, device: torch.device | str = "cpu", kinds: Collection[str] = SPEC_KINDS,
                    env=None):
    """Rebuild a trained model from ``model.pt`` (safe: ``weights_only=True``).

    Raises :class:`CheckpointError` (naming the file, what it holds and the fix) when the file is
    damaged, holds a model kind outside ``kinds`` (e.g. the language family's policy), has weights of
    another shape than its settings, or, with ``env`` (an ``EnvConfig``), was trained for other
    observation or action spaces than that env's.
    """
    payload = read_payload(path, device, kinds, "return or reward family")
    try:
        spec = Spec(**{k: tuple(v) if isinstance(v, list) else v for k, v in payload["spec"].items()})
        model = build_model(payload["kind"], payload["hp"], spec)
    except (TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: its settings do not describe a {payload['kind']!r} model "
                              f"({type(e).__name__}: {e}); re-run the train stage that writes it.") from e
    if env is not None:
        want = env_expectation(env)
        got = {k: getattr(spec, k) for k in want}
        if got != want:
            raise CheckpointError(
                f"{path}: trained for {got}, but the configured env {env.id} (continuous={env.continuous}) "
                f"has {want}. Re-train for this env, or set the env in params.yaml to the one it was trained on.")
    load_state(path, model, payload["state_dict"])
    return model.to(device).eval(), payload
