"""``justask results reward``: the tables of ``metrics/reward.json``."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from justask.metrics import ANY
from justask.report import num


def reward_tables(metrics: dict[str, Any]) -> list[Table]:
    """Two tables: the learned reward against the true one on held-out trajectories, and the true
    score of each policy (IQM [95% CI], vs the demonstrator)."""
    r = metrics["ranking"]
    better = r["better_than_demonstrator"]
    corr = Table(title="reward: learned vs true return on held-out trajectories", box=box.SIMPLE_HEAD,
                 caption=f"validation pair accuracy of the ranking ensemble: {num(r['val_pair_accuracy'], 3)}")
    for col in ("trajectories", "episodes", "Spearman", "Pearson"):
        corr.add_column(col, justify="left" if col == "trajectories" else "right")
    corr.add_row("all held-out", str(r["episodes"]), num(r["spearman"], 2), num(r["pearson"], 2))
    corr.add_row(f"better than the demonstrator ({metrics['demonstrator']})", str(better["episodes"]),
                 num(better["spearman"], 2), num(better["pearson"], 2))
    corr.add_row("behaviour means", str(len(r["per_behaviour"])), num(r.get("spearman_behaviour_means"), 2), "")
    for name, b in r["per_behaviour"].items():
        corr.add_row(f"[dim]{name}: mean true {num(b['true_return_mean'])}, learned "
                     f"{num(b['predicted_return_mean'])}[/]", str(b["episodes"]), "", "")
    scores = Table(title="reward: true score when asked for learned return (0 random, 100 expert)",
                   box=box.SIMPLE_HEAD,
                   caption=f"{len(metrics['seeds'])} training seeds x {metrics['episodes_per_target']} held-out env "
                           "seeds; asks are fractions of the data's learned-return range (1 = its best episode)")
    for col in ("policy", "asked", "score IQM [95% CI]", "x demonstrator"):
        scores.add_column(col, justify="left" if col == "policy" else "right")
    for model, cells in metrics["policies"]["models"].items():
        for key, c in cells.items():
            asked = "-" if key == ANY else f"{float(key[1:]):g}"
            ratio = c.get("vs_demonstrator")
            scores.add_row(model, asked, f"[bold]{num(c['score_iqm'])}[/] [dim]\\[{num(c['score_iqm_lo'])}, "
                                         f"{num(c['score_iqm_hi'])}][/]", "" if ratio is None else f"{ratio:.2f}")
    return [corr, scores]


def print_results(metrics: dict[str, Any], console: Console) -> None:
    for table in reward_tables(metrics):
        console.print(table)
