"""``justask results improve``: in-context improvement on held-out goals, against the source learner."""

from __future__ import annotations

from rich import box
from rich.table import Table

from justask.report import num

NAMES = {"ad": "AD (frozen)", "hindsight": "AD, hindsight labels (frozen)", "ed": "expert distillation (frozen)",
         "learner": "source learner"}


def _ci(c: list[float]) -> str:
    return f"{num(c[0], 1)} [{num(c[1], 1)}, {num(c[2], 1)}]"


def print_results(metrics: dict, console) -> None:
    k = metrics["first_last"]
    table = Table(title="improve: Algorithm Distillation (AD) on held-out Dark Room goals", box=box.SIMPLE_HEAD,
                  caption=f"{metrics['held_out_goals']} held-out goals ({metrics['training_goals']} trained on) x "
                          f"{metrics['seeds_per_goal']} sampling seeds x {len(metrics['seeds'])} training seeds; "
                          f"IQM [95% CI] of the return per episode over the first and last {k} episodes, and "
                          "their difference (the in-context improvement); 0.9x at: the first episode whose "
                          "return reaches 0.9x the learner's final return; "
                          f"optimal {num(metrics['optimal_return'], 1)}; the frozen models "
                          f"run {metrics['episodes']} episodes, the source learner learns for "
                          f"{metrics['learner_episodes']}")
    for col in ("model", f"first {k}", f"last {k}", "last - first", "0.9x at"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=col == "model")
    order = [*(n for n in NAMES if n in metrics["models"]), *(n for n in metrics["models"] if n not in NAMES)]
    for name, res in ((n, metrics["models"][n]) for n in order):
        reached = res.get("episodes_to_target")
        table.add_row(NAMES.get(name, name), _ci(res["first"]), _ci(res["final"]), _ci(res["improvement"]),
                      "not reached" if reached is None else str(reached))
    console.print(table)
    # plain text: the highlighter would split "0.9x" into spans, and the HTML report would read "0. 9x"
    console.print(f"learner's final return {num(metrics['learner_final_return'], 1)} (0.9x: "
                  f"{num(metrics['target_return'], 1)})", highlight=False)
    for name, claim in metrics["claims"].items():
        console.print(f"{NAMES.get(name, name)}: improves in context {claim['improves']}; final return "
                      f"{num(claim['final_vs_learner'], 2)}x the learner's; reaches 0.9x of it in fewer episodes "
                      f"than the learner {claim['faster_than_learner']}", highlight=False)
    console.print(f"weights unchanged during evaluation: {metrics['weights_unchanged']}", highlight=False)
