"""``model.pt``: a trained model's weights plus what rebuilds it, loadable with ``weights_only=True``.

The payload is a dict ``{"kind", "hp", "spec", "provenance", "meta", "state_dict"}`` (a family
may add keys, e.g. a vocabulary). Files are written atomically and byte-stably: the same weights and
settings give the same bytes, so DVC's hash of a train stage's output is the same on every rerun.
Nothing run-specific (an MLflow run id, a time) goes in; MLflow records the file's hash instead.

The provenance (:func:`provenance`) says what the weights were trained for and on: family,
dataset, model kind, a digest of the stage's settings and one of the files the model learned from.
Whatever loads a checkpoint for a stage passes what that stage expects, so a file copied from
another family, dataset or run, or left behind by an older configuration, is refused by name
(:func:`check_provenance`) instead of being evaluated as if it were the model asked for.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Collection
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch

from justask.errors import CheckpointError
from justask.io import atomic_write, files_digest


def write_torch(path: Path, payload: dict) -> None:
    """``torch.save`` atomically and byte-stably: saved through a buffer, since a file's zip
    records are named after the (random) temporary file name."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, lambda p: p.write_bytes(buffer.getvalue()))


def save_checkpoint(path: Path, kind: str, hp: dict, spec: Any, model: torch.nn.Module, meta: dict,
                    provenance: dict | None = None, **extra: Any) -> None:
    """Write weights plus what rebuilds the model (kind, hyper-parameters, spec; ``extra`` keys
    after the spec) and where it comes from (:func:`provenance`) atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    write_torch(path, checkpoint_payload(kind, hp, spec, provenance, meta, state, **extra))


def checkpoint_payload(kind: str, hp: dict, spec: Any, provenance: dict | None, meta: dict, state: dict,
                       **extra: Any) -> dict:
    """The dict a ``model.pt`` holds, its keys in file order (the order is part of the bytes).

    Everything but the weights goes through JSON once: pickle writes an object seen twice as a
    reference, so without it the bytes would depend on which strings happen to be one object."""
    payload = {"kind": kind, "hp": hp, "spec": asdict(spec) if is_dataclass(spec) else dict(spec), **extra}
    if provenance is not None:
        payload["provenance"] = provenance
    return {**json.loads(json.dumps({**payload, "meta": meta})), "state_dict": state}


def digest(obj: Any) -> str:
    """SHA-256 of ``obj`` as canonical JSON (sorted keys): the same settings, the same digest."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def settings_digest(params, family: str, section: str = "train") -> str:
    """Digest of what a stage of ``family`` is configured with: the pipeline seed, the family's env
    and its ``section`` of params, as validated (defaults filled in)."""
    fam = params.family(family)
    return digest({"seed": params.seed, "env": fam.env.model_dump(mode="json"),
                   section: getattr(fam, section).model_dump(mode="json")})


def trained_on(params, family: str, data: Path, section: str = "train") -> dict:
    """The ``config`` and ``data`` of a provenance: the digest of ``family``'s ``section`` settings
    and that of ``data``, the files the model learned from (``FileNotFoundError`` when absent)."""
    return {"config": settings_digest(params, family, section), "data": files_digest(data)}


def provenance(family: str, dataset: str, kind: str, config: str, data: str) -> dict:
    """What a checkpoint was trained for and on: ``config`` a :func:`settings_digest`, ``data`` a
    :func:`justask.io.files_digest` of what it learned from."""
    return {"family": family, "dataset": dataset, "kind": kind, "config": config, "data": data}


PROVENANCE_FIXES = {
    "family": "it was copied from another family's outputs",
    "dataset": "it was copied from another dataset's slot",
    "kind": "it was copied from another model's slot",
    "config": "params.yaml's seed, env or train settings changed since it was trained",
    "data": "the data it was trained on changed since (or it comes from another run)",
}


def check_provenance(path: Path, payload: dict, expected: dict, rerun: str) -> None:
    """:class:`CheckpointError` unless ``payload``'s provenance equals ``expected``, naming each
    field that differs (both values), why it may differ, and the fix (``rerun``, e.g.
    ``dvc repro train@return``)."""
    got = payload.get("provenance")
    if not isinstance(got, dict):
        raise CheckpointError(f"{path}: records no provenance (it predates provenance checks or was written by "
                              f"hand), so it cannot be checked against {expected['family']}/{expected['dataset']}/"
                              f"{expected['kind']}. Re-run `{rerun}`.")
    wrong = [k for k in expected if got.get(k) != expected[k]]
    if wrong:
        def show(v):
            return repr(v[:12] + "...") if isinstance(v, str) and len(v) == 64 else repr(v)
        found = "; ".join(f"{k}: {show(got.get(k))} in the file, {show(expected[k])} expected "
                          f"({PROVENANCE_FIXES[k]})" for k in wrong)
        raise CheckpointError(f"{path}: not the model this stage expects: {found}. Restore the file with "
                              f"`dvc checkout` or re-run `{rerun}`.")


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
