"""Which of a stage's inputs no longer hold what was recorded when they were written.

When a stage fails in a way no check foresaw, the cause is often an input changed after it was
written: a truncated ``.npy``, a deleted ``conditions.json``, a hand-edited ``data/eval_seeds.json``.
DVC records the md5 of every stage output in ``dvc.lock`` (and of the frozen inputs in
``data.dvc``), and the md5 of each file of a directory output in the cache's ``.dir`` manifest, so
comparing an input with its writer's record names the damaged file. A stage's own entry in
``dvc.lock`` is not the reference: inside ``dvc repro`` an upstream stage that just ran has updated
its outputs' records, the downstream entry still holds the previous run's.

Reads only and takes no DVC lock (a stage runs inside ``dvc repro``, which holds it). A directory
whose manifest is not in the local cache is checked for presence only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

LOCK_FILE = "dvc.lock"
FROZEN_INPUTS = "data.dvc"


@dataclass(frozen=True)
class Damage:
    """An input file that differs from its record: ``found`` is "missing" or "changed"."""

    path: str  # relative to the repository root
    writer: str  # the stage that wrote it, or data.dvc for the frozen inputs
    found: str

    def describe(self) -> str:
        if self.writer == FROZEN_INPUTS:
            fix = f"`dvc checkout {FROZEN_INPUTS}` (or `make data`) restores it"
        else:
            fix = f"`dvc checkout {self.writer}` restores it from the cache, `dvc repro {self.writer}` rebuilds it"
        what = f"is missing (written by {self.writer})" if self.found == "missing" else \
            f"differs from the md5 recorded by {self.writer}"
        return f"{self.path} {what}: {fix}"


def _md5(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def recorded_outputs(root: Path, stages: dict) -> dict[str, tuple[str, dict]]:
    """Each output path recorded in ``stages`` (dvc.lock's) or data.dvc -> (its writer, its record:
    md5 and, for a directory, ``.dir``)."""
    out: dict[str, tuple[str, dict]] = {}
    for name, entry in stages.items():
        for record in entry.get("outs") or []:
            out[record["path"]] = (name, record)
    for record in _yaml(root / FROZEN_INPUTS).get("outs") or []:
        out[record["path"]] = (FROZEN_INPUTS, record)
    return out


def _manifest(root: Path, md5: str) -> list[dict] | None:
    """The cache's list of {relpath, md5} of a directory output, or None if the cache lacks it."""
    path = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _file_damage(root: Path, path: str, md5: str, writer: str) -> Damage | None:
    file = root / path
    if not file.is_file():
        return Damage(path, writer, "missing")
    return None if _md5(file) == md5 else Damage(path, writer, "changed")


def damaged_inputs(root: Path, stage: str) -> list[Damage]:
    """The input files of ``stage`` (e.g. ``train@language``; its deps as ``dvc.lock`` lists them,
    code excluded) that are missing or differ from what their writer recorded."""
    stages = _yaml(root / LOCK_FILE).get("stages") or {}
    entry = stages.get(stage) or {}
    outputs = recorded_outputs(root, stages)
    found: list[Damage] = []
    for dep in entry.get("deps") or []:
        path = dep["path"]
        owner = next((o for o in outputs if path == o or path.startswith(o.rstrip("/") + "/")), None)
        if owner is None:  # code, params: not written by a stage
            continue
        writer, record = outputs[owner]
        md5 = str(record.get("md5", ""))
        if not md5.endswith(".dir"):
            if path == owner and (d := _file_damage(root, path, md5, writer)):
                found.append(d)
            continue
        manifest = _manifest(root, md5)
        if manifest is None:
            if not (root / path).exists():
                found.append(Damage(path, writer, "missing"))
            continue
        inside = "" if path == owner else path[len(owner.rstrip("/")) + 1:].rstrip("/")
        for item in manifest:
            if not inside or item["relpath"] == inside or item["relpath"].startswith(inside + "/"):
                file = f"{owner.rstrip('/')}/{item['relpath']}"
                if d := _file_damage(root, file, item["md5"], writer):
                    found.append(d)
    return found
