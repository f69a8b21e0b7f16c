"""``justask results return``: the tables of ``metrics/return.json``."""

from __future__ import annotations

import math
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from justask.metrics import ANY
from justask.report import MISSING, num
from justask.settings import MODEL_KINDS


def _fraction(key: str) -> float:
    return float(key[1:])


def _target_keys(datasets: dict[str, Any]) -> tuple[list[str], bool]:
    """Conditioned target keys over all datasets (by increasing fraction), and whether any
    model is target-free."""
    keys: set[str] = set()
    for summary in datasets.values():
        for cells in summary["models"].values():
            keys.update(cells)
    has_any = ANY in keys
    keys.discard(ANY)
    return sorted(keys, key=_fraction), has_any


def _cell_text(cell: dict[str, Any] | None, one_line: bool) -> str:
    """``IQM [lo, hi]`` of the normalised score; the interval goes below when space is short."""
    if cell is None:
        return MISSING
    iqm, lo, hi = cell.get("score_iqm"), cell.get("score_iqm_lo"), cell.get("score_iqm_hi")
    sep = " " if one_line else "\n"
    return f"[bold]{num(iqm)}[/]{sep}[dim]\\[{num(lo)}, {num(hi)}][/]"


def _rho_text(corr: dict[str, Any] | None) -> str:
    if corr is None:
        return ""
    rho = corr.get("spearman_means")
    return "n/a" if rho is None else f"{rho:+.2f}"


def _plain(markup: str) -> str:
    return Text.from_markup(markup).plain


def _fits_one_line(rows: list[list[str]], console_width: int | None) -> bool:
    """Whether the table fits ``console_width`` with each cell on one line."""
    if console_width is None:
        return True
    widths = [max(len(_plain(row[i])) for row in rows) for i in range(len(rows[0]))]
    return sum(widths) + 2 * len(widths) <= console_width


def _ordered(models: dict[str, Any]) -> list[str]:
    """Target-free baselines first, then conditioned models, in the order of MODEL_KINDS."""
    rank = {kind: i for i, kind in enumerate(MODEL_KINDS)}
    return sorted(models, key=lambda m: (rank.get(m, len(rank)), m))


def _caption(metrics: dict[str, Any]) -> str:
    ref_min, ref_max = metrics.get("ref_min_score"), metrics.get("ref_max_score")
    seeds = metrics.get("seeds", [])
    episodes = metrics.get("episodes_per_target", "?")
    return (
        f"Normalised score IQM \\[95% CI]: 0 = random policy (return {num(ref_min, 1)}), "
        f"100 = expert (return {num(ref_max, 1)}). Columns: score asked for (target return = "
        f"random + asked/100 × (expert − random)); 'any' = no target. "
        f"{len(seeds)} training seed(s) {seeds} × {episodes} episode(s) per target. "
        f"ρ = Spearman(target, mean return) over targets inside the dataset's return range."
    )


def results_table(metrics: dict[str, Any], console_width: int | None = None) -> Table:
    """One block per dataset, one row per model, one column per asked score (+ "any").

    Cells show ``IQM [lo, hi]`` of the normalised score; when the table would be wider than
    ``console_width`` the interval goes on a second line.
    """
    datasets: dict[str, Any] = metrics.get("datasets", {})
    keys, has_any = _target_keys(datasets)
    columns = keys + ([ANY] if has_any else [])

    blocks = []  # (dataset, data-range label, [(model, cells, rho)])
    for name, summary in datasets.items():
        data = summary.get("data", {})
        label = f"data: {num(data.get('score_min'))} … {num(data.get('score_max'))}"
        models = summary.get("models", {})
        correlation = summary.get("correlation", {})
        rows = [(m, models[m], _rho_text(correlation.get(m))) for m in _ordered(models)]
        blocks.append((name, label, rows))

    header = ["dataset / model", *(_header(k) for k in columns), "ρ"]
    one_line_rows = [header] + [
        [f"  {m}", *(_cell_text(cells.get(k), True) for k in columns), rho]
        for _, _, rows in blocks
        for m, cells, rho in rows
    ]
    one_line = _fits_one_line(one_line_rows, console_width)

    table = Table(
        title="Normalised score by asked score",
        caption=_caption(metrics),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column(header[0], no_wrap=True)
    for title in header[1:-1]:
        table.add_column(title, justify="right", no_wrap=one_line)
    table.add_column(header[-1], justify="right", no_wrap=True)

    blank = [""] * (len(columns) + 1)
    for b, (name, label, rows) in enumerate(blocks):
        table.add_row(f"[bold cyan]{name}[/]", *blank)
        table.add_row(f"[dim]{label}[/]", *blank)
        for r, (model, cells, rho) in enumerate(rows):
            last = r == len(rows) - 1 and b < len(blocks) - 1
            row = [_cell_text(cells.get(k), one_line) for k in columns]
            table.add_row(f"  {model}", *row, rho, end_section=last)
    return table


def _header(key: str) -> str:
    return "any" if key == ANY else f"ask {100 * _fraction(key):g}"


def behaviours_table(metrics: dict[str, Any]) -> Table:
    """Mean return and normalised score of each behaviour policy, best first."""
    table = Table(title="Behaviour policies", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("behaviour")
    table.add_column("mean return", justify="right")
    table.add_column("score", justify="right")
    behaviours = metrics.get("behaviours", {})
    for name, b in sorted(behaviours.items(), key=lambda kv: -(kv[1].get("score") or -math.inf)):
        table.add_row(name, num(b.get("mean_return"), 1), num(b.get("score"), 1))
    return table


def print_results(metrics: dict[str, Any], console: Console) -> None:
    console.print(results_table(metrics, console_width=console.width))
    if metrics.get("behaviours"):
        console.print(behaviours_table(metrics))
