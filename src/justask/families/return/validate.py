"""validate: check every collected dataset with Great Expectations before anything trains on it.

Writes ``artifacts/return/validate/<dataset>.json`` (what was checked and what failed) and the GX
Data Docs site under ``artifacts/return/validate-docs/``. Each folder is built next to the old one
and swapped in at the end, so it always holds one complete run. Any failure stops the pipeline
with a message naming the failed checks, example bad values and the HTML report.
"""

from __future__ import annotations

from pathlib import Path

from justask.config import Params
from justask.lunar.datasets import validate_lunar_dataset
from justask.paths import family_paths
from justask.validation import ValidationReport, check_datasets, conclude


def validate(params: Params, root: Path = Path(".")) -> dict[str, ValidationReport]:
    """Validate each dataset of ``families.return.collect.datasets``; raise :class:`StageFailed`
    (after writing all reports) if any is missing, from another env or fails a check."""
    fam = params.family("return")
    paths = family_paths("return", root)
    datasets = fam.collect.datasets
    reports = check_datasets(
        paths.validate, paths.validate_docs, {name: paths.dataset(name) for name in datasets},
        lambda name, path, docs: validate_lunar_dataset(path, fam.env, sum(b.episodes for b in datasets[name]),
                                                        "return", fam.validate_.max_examples, docs))
    conclude(reports, paths.validate, paths.validate_docs,
             "Fix or re-collect the data (`dvc repro collect@return`) and run validate again.")
    return reports
