"""validate: check every collected dataset with Great Expectations before anything trains on it.

Writes ``artifacts/return/validate/<dataset>.json`` (what was checked and what failed) and the GX
Data Docs site under ``artifacts/return/validate/docs/``. The folder is built next to the old one
and swapped in at the end, so it always holds one complete run. Any failure stops the pipeline
with a message naming the failed checks, example bad values and the HTML report.
"""

from __future__ import annotations

from collections.abc import Callable
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


Check = Callable[[str, Path, Path], ValidationReport]  # (name, dataset folder, Data Docs folder)


def check_datasets(out: Path, datasets: dict[str, Path], check: Check,
                   finish: Callable[[Path, dict[str, ValidationReport]], None] | None = None,
                   ) -> dict[str, ValidationReport]:
    """Run ``check(name, folder, docs)`` on each named dataset folder, writing ``<name>.json``
    and the GX Data Docs site ``docs/`` into a fresh ``out`` (built next to the old one and
    swapped in at the end).
    A dataset that cannot be checked at all (:class:`DatasetError`: missing, unreadable, other
    env) gets a report with its error. ``finish(folder, reports)`` may add files before the swap."""
    reports: dict[str, ValidationReport] = {}
    with atomic_dir(out) as tmp:
        docs = tmp / "docs"
        try:
            for name, ds_path in datasets.items():
                try:
                    report = check(name, ds_path, docs)
                except DatasetError as e:  # missing, unreadable or from another env
                    report = ValidationReport(name, str(ds_path), success=False, error=str(e))
                reports[name] = report
                write_json(tmp / f"{name}.json", report.to_dict())
        finally:
            release_context(docs)
        if finish is not None:
            finish(tmp, reports)
    return reports


def conclude(reports: dict[str, ValidationReport], out: Path, fix: str) -> None:
    """Print the summary table; raise :class:`StageFailed` naming every failed check, with
    examples and the reports' paths, if any dataset failed. ``fix`` ends the message."""
    console = Console()
    _print_summary(list(reports.values()), console)
    failed = [r for r in reports.values() if not r.success]
    index = out / "docs" / "index.html"
    if not failed:
        console.print(f"[green]all {len(reports)} datasets pass[/]; report: {index}")
        return
    lines = [f"{len(failed)} of {len(reports)} datasets failed validation:"]
    for r in failed:
        lines.append(r.summary())
        if r.docs_page:
            lines.append(f"  HTML report: {out / 'docs' / r.docs_page}")
        lines.append(f"  JSON report: {out / (r.dataset + '.json')}")
    if index.exists():
        lines.append(f"All results (GX Data Docs): {index}")
    lines.append(fix)
    raise StageFailed("\n".join(lines))


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
