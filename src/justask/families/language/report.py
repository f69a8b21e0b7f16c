"""``justask results language``: the table of ``metrics/language.json``."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from justask.report import MISSING

LANGUAGE_GROUPS = {  # condition group -> column header
    "seen": "seen",
    "colour_object": "held-out colour x object",
    "verb_object": "held-out verb x object",
    "paraphrase": "reworded",
    "mission": "own missions",
}


def language_table(metrics: dict[str, Any], console_width: int | None = None) -> Table:
    """Success rate (mean over seeds x asks, 95% CI) per model and condition group; the CI goes
    on a second line when the console is narrow."""
    seeds = metrics.get("seeds", [])
    table = Table(title="language: success rate when asked, mean [95% CI]", box=box.SIMPLE_HEAD,
                  caption=f"{len(seeds)} training seeds x {metrics.get('asks_per_group', '?')} asks per group "
                          f"and level on held-out env seeds; levels: {', '.join(metrics.get('levels', []))}")
    groups = [g for g in LANGUAGE_GROUPS if any(g in cells for cells in metrics["models"].values())]
    table.add_column("model", no_wrap=True)
    sep = " " if console_width is None or console_width >= 120 else "\n"
    for g in groups:
        table.add_column(LANGUAGE_GROUPS[g], justify="right")
    for name, cells in metrics["models"].items():
        row = [name]
        for g in groups:
            c = cells.get(g)
            if c is None:
                row.append(MISSING)
                continue
            lo, hi = (100 * x for x in c["ci"])
            row.append(f"[bold]{100 * c['success']:.0f}%[/]{sep}[dim]\\[{lo:.0f}, {hi:.0f}][/]")
        table.add_row(*row)
    return table


def print_results(metrics: dict[str, Any], console: Console) -> None:
    console.print(language_table(metrics, console.width))
