"""``justask results reward``: the tables of ``metrics/reward.json``."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from justask.metrics import ANY
from justask.report import num


def reward_tables(metrics: dict[str, Any]) -> list[Table]:
    """The learned reward against the true one on held-out trajectories, the true score of each
    policy (IQM [95% CI], vs the demonstrator), when there are improvement rounds the score per
    round, and each route's cost in env steps."""
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
                           "seeds; asks are quantiles of the learned returns of each policy's data (1 = its best "
                           "episode, above 1: past it by that many ranges)")
    for col in ("policy", "asked", "score IQM [95% CI]", "x demonstrator"):
        scores.add_column(col, justify="left" if col == "policy" else "right")
    for model, cells in metrics["policies"]["models"].items():
        for key, c in cells.items():
            asked = "-" if key == ANY else f"{float(key[1:]):g}"
            ratio = c.get("vs_demonstrator")
            scores.add_row(model, asked, f"[bold]{num(c['score_iqm'])}[/] [dim]\\[{num(c['score_iqm_lo'])}, "
                                         f"{num(c['score_iqm_hi'])}][/]", "" if ratio is None else f"{ratio:.2f}")
    tables = [corr, scores]
    rounds = metrics.get("rounds") or []
    if len(rounds) > 1:
        kinds = [k for k, v in rounds[0].items() if isinstance(v, dict)]
        asks = list(rounds[0][kinds[0]])
        headline = metrics.get("rounds_headline_ask")
        per_round = Table(title="reward: improvement rounds without RL (ask, roll out, relabel with the learned "
                                "reward, refit): true score, IQM [95% CI]", box=box.SIMPLE_HEAD,
                          caption=f"columns: the ask (quantile of the round's data; headline {headline}, declared "
                                  "before evaluation); added: the round's new episodes, learned / true return "
                                  "(the true one only reported)")
        for col in ("round", "asked (learned)", "episodes", "added: learned / true", *(
                f"{k} {a[1:]}" + (" *" if a == headline else "") for k in kinds for a in asks)):
            per_round.add_column(col, justify="right")
        for r in rounds:
            first = r["round"] == 0
            cells = [f"{num(r[k][a]['score_iqm'])} [dim]\\[{num(r[k][a]['score_iqm_lo'])}, "
                     f"{num(r[k][a]['score_iqm_hi'])}][/]" for k in kinds for a in asks]
            per_round.add_row(str(r["round"]), "-" if first else num(r["asked_learned_return"]),
                              "" if first else str(r["episodes"]),
                              "-" if first else f"{num(r['added_learned_return_mean'])} / "
                                                f"{num(r['added_true_return_mean'])}", *cells)
        tables.append(per_round)
    if metrics.get("cost"):
        cost = Table(title="reward: what each route cost in env steps", box=box.SIMPLE_HEAD,
                     caption="env steps: the collected demonstrations and noise levels every route starts from, "
                             "plus (extra) the rounds' rollouts or one PPO run's steps; * reads the env's reward")
        for col in ("policy", "env steps", "extra", "score IQM [95% CI]", "x demo"):
            cost.add_column(col, justify="left" if col == "policy" else "right")
        for c in metrics["cost"]:
            ratio = c.get("vs_demonstrator")
            name = c["model"] + ("" if c["ask"] is None else f" asked {c['ask'][1:]}")
            score = f"[bold]{num(c['score_iqm'])}[/] [dim]\\[{num(c['score_iqm_lo'])}, {num(c['score_iqm_hi'])}][/]"
            cost.add_row(name + (" *" if c["reads_env_reward"] else ""), f"{c['env_steps']:,}",
                         f"{c['extra_env_steps']:,}", score, "" if ratio is None else f"{ratio:.2f}")
        tables.append(cost)
    return tables


def print_results(metrics: dict[str, Any], console: Console) -> None:
    for table in reward_tables(metrics):
        console.print(table)
