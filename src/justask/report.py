"""Terminal tables of an experiment family's results (``metrics/FAMILY.json``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from justask.config import MODEL_KINDS
from justask.metrics import ANY

_MISSING = "[dim]–[/]"


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


def _num(x: float | None, digits: int = 0) -> str:
    return "?" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _cell_text(cell: dict[str, Any] | None, one_line: bool) -> str:
    """``IQM [lo, hi]`` of the normalised score; the interval goes below when space is short."""
    if cell is None:
        return _MISSING
    iqm, lo, hi = cell.get("score_iqm"), cell.get("score_iqm_lo"), cell.get("score_iqm_hi")
    sep = " " if one_line else "\n"
    return f"[bold]{_num(iqm)}[/]{sep}[dim]\\[{_num(lo)}, {_num(hi)}][/]"


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
        f"Normalised score IQM \\[95% CI]: 0 = random policy (return {_num(ref_min, 1)}), "
        f"100 = expert (return {_num(ref_max, 1)}). Columns: score asked for (target return = "
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
        label = f"data: {_num(data.get('score_min'))} … {_num(data.get('score_max'))}"
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
        table.add_row(name, _num(b.get("mean_return"), 1), _num(b.get("score"), 1))
    return table


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
                row.append(_MISSING)
                continue
            lo, hi = (100 * x for x in c["ci"])
            row.append(f"[bold]{100 * c['success']:.0f}%[/]{sep}[dim]\\[{lo:.0f}, {hi:.0f}][/]")
        table.add_row(*row)
    return table


def reward_tables(metrics: dict[str, Any]) -> list[Table]:
    """Two tables: the learned reward against the true one on held-out trajectories, and the true
    score of each policy (IQM [95% CI], vs the demonstrator)."""
    r = metrics["ranking"]
    better = r["better_than_demonstrator"]
    corr = Table(title="reward: learned vs true return on held-out trajectories", box=box.SIMPLE_HEAD,
                 caption=f"validation pair accuracy of the ranking ensemble: {_num(r['val_pair_accuracy'], 3)}")
    for col in ("trajectories", "episodes", "Spearman", "Pearson"):
        corr.add_column(col, justify="left" if col == "trajectories" else "right")
    corr.add_row("all held-out", str(r["episodes"]), _num(r["spearman"], 2), _num(r["pearson"], 2))
    corr.add_row(f"better than the demonstrator ({metrics['demonstrator']})", str(better["episodes"]),
                 _num(better["spearman"], 2), _num(better["pearson"], 2))
    corr.add_row("behaviour means", str(len(r["per_behaviour"])), _num(r.get("spearman_behaviour_means"), 2), "")
    for name, b in r["per_behaviour"].items():
        corr.add_row(f"[dim]{name}: mean true {_num(b['true_return_mean'])}, learned "
                     f"{_num(b['predicted_return_mean'])}[/]", str(b["episodes"]), "", "")
    scores = Table(title="reward: true score when asked for learned return (0 random, 100 expert)",
                   box=box.SIMPLE_HEAD,
                   caption=f"{len(metrics['seeds'])} training seeds x {metrics['episodes_per_target']} held-out env "
                           "seeds; asks are fractions of the data's learned-return range (1 = its best episode)")
    for col in ("policy", "asked", "score IQM [95% CI]", "x demonstrator"):
        scores.add_column(col, justify="left" if col == "policy" else "right")
    for model, cells in metrics["policies"]["models"].items():
        for key, c in cells.items():
            asked = "-" if key == ANY else f"{_fraction(key):g}"
            ratio = c.get("vs_demonstrator")
            scores.add_row(model, asked, f"[bold]{_num(c['score_iqm'])}[/] [dim]\\[{_num(c['score_iqm_lo'])}, "
                                         f"{_num(c['score_iqm_hi'])}][/]", "" if ratio is None else f"{ratio:.2f}")
    return [corr, scores]


def print_results(family: str, root: Path, console: Console) -> bool:
    """Print ``root/metrics/FAMILY.json`` as tables; False when the file does not exist yet."""
    path = Path(root) / "metrics" / f"{family}.json"
    if not path.exists():
        return False
    metrics = json.loads(path.read_text())
    if family == "language":
        console.print(language_table(metrics, console.width))
        return True
    if family == "reward":
        for table in reward_tables(metrics):
            console.print(table)
        return True
    console.print(results_table(metrics, console_width=console.width))
    if metrics.get("behaviours"):
        console.print(behaviours_table(metrics))
    return True
