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
    "cross_level": "held-out across levels",
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


def level_table(metrics: dict[str, Any]) -> Table | None:
    """Held-out against seen success within each level (None for metrics written before it): a
    composition pair is judged where its words were trained, never against another level's rooms."""
    by_level = metrics.get("by_level")
    if not by_level:
        return None
    table = Table(title="language: held out vs seen in the same level, success %", box=box.SIMPLE_HEAD,
                  caption="ratio: held-out colour x object success / seen success in that level")
    for col in ("model", "level", "seen", "colour x object", "ratio", "across levels", "verb x object"):
        table.add_column(col, justify="left" if col in ("model", "level") else "right", no_wrap=col == "model")
    for name, levels in by_level.items():
        for level, cells in levels.items():
            def pct(group: str, c=cells) -> str:
                return f"{100 * c[group]['success']:.0f}" if group in c else MISSING
            seen, held = cells.get("seen", {}).get("success"), cells.get("colour_object", {}).get("success")
            ratio = f"{held / seen:.2f}" if seen and held is not None else MISSING
            table.add_row(name, level.removeprefix("BabyAI-"), pct("seen"), pct("colour_object"), ratio,
                          pct("cross_level"), pct("verb_object"))
    return table


CONTACT_HEADERS = {"target": "target", "same_colour": "its colour only", "same_type": "its type only",
                   "other": "neither", "none": "nothing"}


def contact_table(metrics: dict[str, Any]) -> Table | None:
    """Seen against held-out colour x object asks: which object each ask engaged first, against the
    one its first clause names (None for metrics written before it). A policy that binds words only
    loosely engages the same-colour or same-type distractor; one that treats the pair as unknown
    engages nothing."""
    rows = [(name, group, cells[group]["contact"]) for name, cells in metrics["models"].items()
            for group in ("seen", "colour_object") if "contact" in cells.get(group, {})]
    if not rows:
        return None
    table = Table(title="language: the first object engaged, % of asks", box=box.SIMPLE_HEAD,
                  caption="held-out: colour x object asks; go to: first object faced; pick up / put next to: first "
                          "picked up; open: first door toggled")
    table.add_column("model", no_wrap=True)
    table.add_column("asks")
    for header in CONTACT_HEADERS.values():
        table.add_column(header, justify="right")
    for name, group, contact in rows:
        asks = "seen" if group == "seen" else "held-out"
        table.add_row(name, asks, *(f"{100 * contact[k]:.0f}" for k in CONTACT_HEADERS))
    return table


def print_results(metrics: dict[str, Any], console: Console) -> None:
    console.print(language_table(metrics, console.width))
    for table in (level_table(metrics), contact_table(metrics)):
        if table is not None:
            console.print(table)
