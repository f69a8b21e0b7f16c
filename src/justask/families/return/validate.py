"""validate: check every collected dataset with Great Expectations before anything trains on it.

Writes ``artifacts/return/validate/<dataset>.json`` (what was checked and what failed) and the GX
Data Docs site under ``artifacts/return/validate-docs/``. A brought Minari dataset is checked like
the others, for the episode count collect found in it. Each folder is built next to the old one
and swapped in at the end, so it always holds one complete run. Any failure stops the pipeline
with a message naming the failed checks, example bad values and the HTML report.
"""

from __future__ import annotations

from pathlib import Path

from justask.config import Params
from justask.errors import StageFailed
from justask.lunar.datasets import validate_lunar_dataset
from justask.paths import family_paths
from justask.validation import ValidationReport, check_datasets, conclude

from .summary import collect_summary


def validate(params: Params, root: Path = Path(".")) -> dict[str, ValidationReport]:
    """Validate each dataset of ``families.return.collect.datasets``; raise :class:`StageFailed`
    (after writing all reports) if any is missing, from another env or fails a check."""
    fam = params.family("return")
    paths = family_paths("return", root)
    expected = {name: sum(b.episodes for b in mix) for name, mix in fam.collect.mixes.items()}
    if fam.collect.imported:
        counts = collect_summary(paths)["datasets"]
        stale = [name for name in fam.collect.imported if "source" not in counts.get(name, {})]
        if stale:
            raise StageFailed(f"{paths.collect_summary}: no record of the brought dataset(s) {stale} (written before "
                              "params named them); run `dvc repro collect@return`")
        expected |= {name: counts[name]["episodes"] for name in fam.collect.imported}
    reports = check_datasets(
        paths.validate, paths.validate_docs, {name: paths.dataset(name) for name in fam.collect.datasets},
        lambda name, path, docs: validate_lunar_dataset(path, fam.env, expected[name], "return",
                                                        fam.validate_.max_examples, docs))
    conclude(reports, paths.validate, paths.validate_docs,
             "Fix or re-collect the data (`dvc repro collect@return`) and run validate again.")
    return reports
