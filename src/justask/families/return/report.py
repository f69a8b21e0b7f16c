"""``justask results return``: the tables of ``metrics/return.json``."""

from __future__ import annotations

import math
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from justask.metrics import ANY, TOP_SKILL
from justask.report import MISSING, num
from justask.settings import MODEL_KINDS


def _fraction(key: str) -> float:
    return float(key[1:])


def _columns(datasets: dict[str, Any]) -> list[str]:
    """Target keys over all datasets: asked returns by increasing fraction, then the top skill,
    then "any" (no target)."""
    keys: set[str] = set()
    for summary in datasets.values():
        for cells in summary["models"].values():
            keys.update(cells)
    asked = sorted(keys - {TOP_SKILL, ANY}, key=_fraction)
    return asked + [k for k in (TOP_SKILL, ANY) if k in keys]


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
        f"ρ = Spearman(target, mean return) over targets inside the dataset's return range. "
        f"'top skill' = the skill-conditioned model asked for the dataset's best-rated behaviour. "
        f"gap = conditioning gap (validation loss with the condition swapped between rows minus the "
        f"true one; 0 = condition ignored)."
    )


def results_table(metrics: dict[str, Any], console_width: int | None = None) -> Table:
    """One block per dataset, one row per model, one column per asked score (+ "any").

    Cells show ``IQM [lo, hi]`` of the normalised score; when the table would be wider than
    ``console_width`` the interval goes on a second line.
    """
    datasets: dict[str, Any] = metrics.get("datasets", {})
    columns = _columns(datasets)

    blocks = []  # (dataset, data-range label, [(model, cells, rho)])
    for name, summary in datasets.items():
        data = summary.get("data", {})
        label = f"data: {num(data.get('score_min'))} … {num(data.get('score_max'))}"
        models = summary.get("models", {})
        correlation = summary.get("correlation", {})
        gaps = summary.get("conditioning_gap", {})
        rows = [(m, models[m], _rho_text(correlation.get(m)), _gap_text(gaps.get(m))) for m in _ordered(models)]
        blocks.append((name, label, rows))

    header = ["dataset / model", *(_header(k) for k in columns), "ρ", "gap"]
    one_line_rows = [header] + [
        [f"  {m}", *(_cell_text(cells.get(k), True) for k in columns), rho, gap]
        for _, _, rows in blocks
        for m, cells, rho, gap in rows
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
    for title in header[1:-2]:
        table.add_column(title, justify="right", no_wrap=one_line)
    for title in header[-2:]:
        table.add_column(title, justify="right", no_wrap=True)

    blank = [""] * (len(columns) + 2)
    for b, (name, label, rows) in enumerate(blocks):
        table.add_row(f"[bold cyan]{name}[/]", *blank)
        table.add_row(f"[dim]{label}[/]", *blank)
        for r, (model, cells, rho, gap) in enumerate(rows):
            last = r == len(rows) - 1 and b < len(blocks) - 1
            row = [_cell_text(cells.get(k), one_line) for k in columns]
            table.add_row(f"  {model}", *row, rho, gap, end_section=last)
    return table


def _gap_text(gap: dict[str, Any] | None) -> str:
    return "" if gap is None else f"{gap['mean']:.3f}"


def last_table(metrics: dict[str, Any]) -> Table:
    """Per dataset and model, at the headline ask: each seed's mean score with the weights selected
    on validation loss and with the last ones, and the last weights' IQM [95% CI]."""
    table = Table(title="Selected on validation loss (best) vs end of training (last)", box=box.SIMPLE_HEAD,
                  pad_edge=False, caption="Per-seed mean normalised score at the ask shown; the results table "
                  "above uses the best weights.", caption_justify="left")
    for title in ("dataset", "model", "ask", "best, per seed", "last, per seed", "last IQM"):
        table.add_column(title, justify="left" if title in ("dataset", "model") else "right")
    for name, summary in metrics.get("datasets", {}).items():
        last = summary.get("last", {})
        for i, model in enumerate(_ordered(last)):
            cmp = last[model]
            table.add_row(name if i == 0 else "", model, _header(cmp["ask"]),
                          " ".join(num(x) for x in cmp["best_seed_scores"]),
                          " ".join(num(x) for x in cmp["last_seed_scores"]), _cell_text(cmp["last"], True),
                          end_section=i == len(last) - 1)
    return table


def _header(key: str) -> str:
    return {ANY: "any", TOP_SKILL: "top skill"}.get(key) or f"ask {100 * _fraction(key):g}"


def behaviours_table(metrics: dict[str, Any]) -> Table:
    """Mean return and normalised score of each behaviour policy, best first."""
    table = Table(title="Behaviour policies", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("behaviour")
    table.add_column("mean return", justify="right")
    table.add_column("score", justify="right")
    table.add_column("rating (score)", justify="right")
    behaviours = metrics.get("behaviours", {})
    for name, b in sorted(behaviours.items(), key=lambda kv: -(kv[1].get("score") or -math.inf)):
        table.add_row(name, num(b.get("mean_return"), 1), num(b.get("score"), 1), num(b.get("rating_score"), 1))
    return table


def print_results(metrics: dict[str, Any], console: Console) -> None:
    console.print(results_table(metrics, console_width=console.width))
    if any(d.get("last") for d in metrics.get("datasets", {}).values()):
        console.print(last_table(metrics))
    if metrics.get("behaviours"):
        console.print(behaviours_table(metrics))
