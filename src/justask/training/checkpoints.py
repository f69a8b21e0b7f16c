"""``model.pt``: a trained model's weights plus what rebuilds it, loadable with ``weights_only=True``.

The payload is a dict ``{"kind", "hp", "spec", "meta", "state_dict"}`` (a family may add keys,
e.g. a vocabulary). Files are written atomically and byte-stably: the same weights and settings
give the same bytes, so DVC's hash of a train stage's output is the same on every rerun. Nothing
run-specific (an MLflow run id, a time) goes in; MLflow records the file's hash instead.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Collection
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch

from justask.errors import CheckpointError
from justask.io import atomic_write


def write_torch(path: Path, payload: dict) -> None:
    """``torch.save`` atomically and byte-stably: saved through a buffer, since a file's zip
    records are named after the (random) temporary file name."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, lambda p: p.write_bytes(buffer.getvalue()))


def save_checkpoint(path: Path, kind: str, hp: dict, spec: Any, model: torch.nn.Module, meta: dict,
                    **extra: Any) -> None:
    """Write weights plus what rebuilds the model (kind, hyper-parameters, spec; ``extra`` keys
    after the spec) atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"kind": kind, "hp": hp, "spec": asdict(spec) if is_dataclass(spec) else dict(spec), **extra,
               "meta": meta, "state_dict": state}
    write_torch(path, payload)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_payload(path: Path, device: torch.device | str, kinds: Collection[str], reader: str) -> dict:
    """The dict saved in a justask ``model.pt`` (``weights_only=True``), checked to hold a model of one
    of ``kinds`` (what ``reader``, e.g. "language", loads). :class:`CheckpointError` naming the file,
    what it holds and the fix otherwise; a ``FileNotFoundError`` passes through, so callers name the
    stage that writes the file."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated zip, not a torch file, unsafe pickle
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e}). The file is "
                              "damaged or of another format; re-run the train stage that writes it.") from e
    kind = payload.get("kind") if isinstance(payload, dict) else None
    if kind is not None and kind not in kinds:
        raise CheckpointError(
            f"{path}: not a justask {reader} checkpoint: it holds a {kind!r} model, and only "
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


def rebuild(path: Path, payload: dict, build, what: str) -> torch.nn.Module:
    """``build(payload)`` -> model with the payload's weights loaded; settings that do not describe
    the model give a :class:`CheckpointError` naming the file (``what``: the model, for the message)."""
    try:
        model = build(payload)
    except (TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: its settings do not describe {what} ({type(e).__name__}: {e}); "
                              "re-run the train stage that writes it.") from e
    load_state(path, model, payload["state_dict"])
    return model
