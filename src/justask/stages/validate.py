"""validate: check every collected dataset with Great Expectations before anything trains on it.

Writes ``artifacts/return/validate/<dataset>.json`` (what was checked and what failed) and the GX
Data Docs site under ``artifacts/return/validate/docs/``. The folder is built next to the old one
and swapped in at the end, so it always holds one complete run. Any failure stops the pipeline
with a message naming the failed checks, example bad values and the HTML report.
"""

from __future__ import annotations

from pathlib import Path

from justask.config import Params
from justask.data.validation import ValidationReport, check_datasets, conclude, validate_dataset
from justask.paths import family_paths


def validate(params: Params, root: Path = Path(".")) -> dict[str, ValidationReport]:
    """Validate each dataset of ``params.return.collect.datasets``; raise :class:`StageFailed`
    (after writing all reports) if any is missing, from another env or fails a check."""
    fam = params.return_
    paths = family_paths("return", root)
    datasets = fam.collect.datasets
    reports = check_datasets(
        paths.validate, {name: paths.dataset(name) for name in datasets},
        lambda name, path, docs: validate_dataset(path, fam.env, sum(b.episodes for b in datasets[name]),
                                                  fam.validate_.max_examples, docs))
    conclude(reports, paths.validate,
             "Fix or re-collect the data (`dvc repro collect@return`) and run validate again.")
    return reports
