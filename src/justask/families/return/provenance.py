"""What the return family's checkpoints record of where they come from, and what evaluate and ask
expect them to record (:func:`justask.training.checkpoints.check_provenance`)."""

from __future__ import annotations

from justask.io import files_digest
from justask.paths import FamilyPaths
from justask.training.checkpoints import provenance, settings_digest


def trained_on(params, paths: FamilyPaths, dataset: str) -> dict:
    """The train settings' digest and that of ``dataset``'s relabeled data (``FileNotFoundError``
    when relabel has not run)."""
    return {"config": settings_digest(params, "return"), "data": files_digest(paths.relabeled(dataset))}


def expected_provenance(params, paths: FamilyPaths, dataset: str, kind: str) -> dict:
    """What the ``kind`` checkpoints of ``dataset`` must have been trained for and on."""
    return provenance("return", dataset, kind, **trained_on(params, paths, dataset))
