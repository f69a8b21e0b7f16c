"""Pipeline stages: thin functions ``(params, root) -> None`` called by dvc.yaml (via the CLI)
and by the Prefect flow. The ``return`` family's stages live in ``justask.stages.<stage>``, other
families' in ``justask.stages.<family>.<stage>``. Imports are lazy so each stage loads only
what it needs."""

from __future__ import annotations

import importlib
from pathlib import Path

from justask.config import Params

STAGES = ("collect", "validate", "relabel", "train", "evaluate")
FAMILIES = ("return", "language", "reward")  # the `foreach` items of dvc.yaml


class StageFailed(RuntimeError):
    """A stage found a problem it reports to the user (non-zero exit, no traceback)."""


def run_stage(stage: str, params: Params, root: Path = Path("."), family: str = "return") -> None:
    """Run ``stage`` of ``family`` with validated ``params``, writing under ``root``."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    if family != "return" and getattr(params, family, None) is None:
        raise StageFailed(f"params.yaml has no `{family}` section; add one (see profiles/default.yaml)")
    module = f"justask.stages.{stage}" if family == "return" else f"justask.stages.{family}.{stage}"
    try:
        runner = getattr(importlib.import_module(module), stage)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise StageFailed(f"the {family} family has no {stage} stage yet") from None
    runner(params, root)

