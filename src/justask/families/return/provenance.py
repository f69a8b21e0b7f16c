"""What the return family's checkpoints record of where they come from, and what evaluate and ask
expect them to record (:func:`justask.training.checkpoints.check_provenance`)."""

from __future__ import annotations

from justask.paths import FamilyPaths
from justask.training.checkpoints import provenance, trained_on


def expected_provenance(params, paths: FamilyPaths, dataset: str, kind: str) -> dict:
    """What the ``kind`` checkpoints of ``dataset`` must have been trained for and on."""
    return provenance("return", dataset, kind, **trained_on(params, "return", paths.relabeled(dataset)))
