"""validate: check every collected dataset with Great Expectations before anything trains on it.

Writes ``artifacts/return/validate/<dataset>.json`` (what was checked and what failed) and the GX
Data Docs site under ``artifacts/return/validate/docs/``. The folder is built next to the old one
and swapped in at the end, so it always holds one complete run. Any failure stops the pipeline
with a message naming the failed checks, example bad values and the HTML report.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from justask.config import Params
from justask.data.atomic import atomic_dir, write_json
from justask.data.episodes import DatasetError
from justask.data.validation import ValidationReport, release_context, validate_dataset
from justask.paths import family_paths
from justask.stages import StageFailed


def _print_summary(reports: list[ValidationReport], console: Console) -> None:
    table = Table(title="validate: dataset checks (Great Expectations)")
    for col in ("dataset", "episodes", "steps", "checks", "result"):
        table.add_column(col, justify="right" if col in ("episodes", "steps", "checks") else "left")
    for r in reports:
        if r.error:
            result = "[red]not checked: see below[/]"
        elif r.success:
            result = "[green]pass[/]"
        else:
            result = f"[red]{len(r.failures)} failed[/]"
        table.add_row(r.dataset, str(r.episodes), str(r.steps), str(r.evaluated), result)
    console.print(table)


def validate(params: Params, root: Path = Path(".")) -> dict[str, ValidationReport]:
    """Validate each dataset of ``params.return.collect.datasets``; raise :class:`StageFailed`
    (after writing all reports) if any is missing, from another env or fails a check."""
    fam = params.return_
    paths = family_paths("return", root)
    reports: dict[str, ValidationReport] = {}
    out = paths.validate
    with atomic_dir(out) as tmp:
        docs = tmp / "docs"
        try:
            for name, mix in fam.collect.datasets.items():
                ds_path = paths.dataset(name)
                expected = sum(b.episodes for b in mix)
                try:
                    report = validate_dataset(ds_path, fam.env, expected,
                                              fam.validate_.max_examples, docs)
                except DatasetError as e:  # missing, unreadable or from another env
                    report = ValidationReport(name, str(ds_path), success=False, error=str(e))
                reports[name] = report
                write_json(tmp / f"{name}.json", report.to_dict())
        finally:
            release_context(docs)

    console = Console()
    _print_summary(list(reports.values()), console)
    failed = [r for r in reports.values() if not r.success]
    index = out / "docs" / "index.html"
    if not failed:
        console.print(f"[green]all {len(reports)} datasets pass[/]; report: {index}")
        return reports
    lines = [f"{len(failed)} of {len(reports)} datasets failed validation:"]
    for r in failed:
        lines.append(r.summary())
        if r.docs_page:
            lines.append(f"  HTML report: {out / 'docs' / r.docs_page}")
        lines.append(f"  JSON report: {out / (r.dataset + '.json')}")
    if index.exists():
        lines.append(f"All results (GX Data Docs): {index}")
    lines.append("Fix or re-collect the data (`dvc repro collect@return`) and run validate again.")
    raise StageFailed("\n".join(lines))
