"""Pipeline stages: thin functions ``(params, root) -> None`` called by dvc.yaml (via the CLI)
and by the Prefect flow. Imports are lazy so each stage loads only what it needs."""

from __future__ import annotations

from pathlib import Path

from justask.config import Params


class StageFailed(RuntimeError):
    """A stage found a problem it reports to the user (non-zero exit, no traceback)."""


def collect(params: Params, root: Path) -> None:
    from justask.stages.collect import collect as run

    run(params, root)


def validate(params: Params, root: Path) -> None:
    from justask.stages.validate import validate as run

    run(params, root)


def relabel(params: Params, root: Path) -> None:
    from justask.stages.relabel import relabel as run

    run(params, root)


def train(params: Params, root: Path) -> None:
    from justask.stages.train import train as run

    run(params, root)


def evaluate(params: Params, root: Path) -> None:
    from justask.stages.evaluate import evaluate as run

    run(params, root)
