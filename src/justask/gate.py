"""The pull-request gate: which measured figures a change made worse beyond their confidence intervals.

Every family's ``metrics/<family>.json`` holds its figures with 95% bootstrap CIs, in one of two
forms: ``X`` beside ``X_lo`` and ``X_hi`` (IQM scores and returns), or ``success`` beside
``ci: [lo, hi]`` (the language family's success rates). All of them are higher-is-better. A figure
*regressed* when the pull request's whole interval lies below the base's (``pr_hi < base_lo``):
an overlap is noise, not evidence. Both sides must run the same profile with the same seeds, so
an unchanged model gives the same bytes and no difference at all. :func:`plot_changes` draws the
figures that changed, per family, for the pull request's report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    path: str  # e.g. "return: datasets/medium-expert/models/dt/t0.9/score_iqm"
    value: float
    lo: float
    hi: float


@dataclass(frozen=True)
class Change:
    path: str
    base: Figure | None
    pr: Figure | None

    @property
    def kind(self) -> str:
        if self.base is None:
            return "new"
        if self.pr is None:
            return "gone"
        if self.pr.hi < self.base.lo:
            return "worse"
        if self.pr.lo > self.base.hi:
            return "better"
        return "same" if self.pr == self.base else "within CI"


def interval(f: Figure | None) -> str:
    """``value [lo, hi]`` to 3 significant digits; empty for a missing side."""
    return "" if f is None else f"{f.value:.3g} [{f.lo:.3g}, {f.hi:.3g}]"


def figures(metrics: dict, prefix: str = "") -> Iterator[Figure]:
    """Every figure with a confidence interval in a metrics dict, with its path."""
    if not isinstance(metrics, dict):
        return
    for key, value in metrics.items():
        lo, hi = metrics.get(f"{key}_lo"), metrics.get(f"{key}_hi")
        if isinstance(value, (int, float)) and isinstance(lo, (int, float)) and isinstance(hi, (int, float)):
            yield Figure(f"{prefix}{key}", float(value), float(lo), float(hi))
        elif key == "success" and isinstance(value, (int, float)) and isinstance(metrics.get("ci"), list):
            c_lo, c_hi = metrics["ci"]
            yield Figure(f"{prefix}{key}", float(value), float(c_lo), float(c_hi))
        elif isinstance(value, dict):
            yield from figures(value, f"{prefix}{key}/")


def read_metrics(folder: Path) -> dict[str, Figure]:
    """Path -> figure of every ``<family>.json`` in ``folder``; :class:`ValueError` naming a file that is not JSON."""
    out = {}
    for file in sorted(folder.glob("*.json")):
        try:
            data = json.loads(file.read_text())
        except ValueError as e:
            raise ValueError(f"{file}: not a metrics JSON ({e}); rerun `dvc repro` to rewrite it") from None
        out.update({f.path: f for f in figures(data, f"{file.stem}: ")})
    return out


def compare(base: dict[str, Figure], pr: dict[str, Figure]) -> list[Change]:
    """One change per figure path on either side, in path order."""
    return [Change(p, base.get(p), pr.get(p)) for p in sorted(base.keys() | pr.keys())]


PLOTTED = {"worse": "tab:red", "better": "tab:green", "within CI": "tab:blue"}  # kind -> the PR's colour
PLOT_CAP = 12  # panels per family; the rest are in the table


@dataclass(frozen=True)
class FamilyPlot:
    family: str
    file: Path | None  # None: no figure of the family changed
    shown: list[Change]  # worse first, then better, then within CI; largest moves first in each
    more: int  # changed figures past the cap


def split(path: str) -> tuple[str, str]:
    """A figure's path as :func:`read_metrics` writes it -> its family and its path in the family."""
    family, figure = path.split(": ", 1)
    return family, figure


def plot_changes(every: list[Change], folder: Path, cap: int = PLOT_CAP) -> list[FamilyPlot]:
    """Per family, ``folder/<family>.png``: each figure that changed (present on both sides), base
    vs pull request with its 95% CI, one panel per figure (returns, scores and rates differ in
    scale). A family with none gets no plot (and loses a stale one)."""
    # how far the value moved, in base CI widths: comparable across scales
    moved = lambda c: abs(c.pr.value - c.base.value) / max(c.base.hi - c.base.lo, 1e-12)  # noqa: E731
    plots = []
    for family in dict.fromkeys(split(c.path)[0] for c in every):
        changed = sorted((c for c in every if split(c.path)[0] == family and c.kind in PLOTTED),
                         key=lambda c: (list(PLOTTED).index(c.kind), -moved(c), c.path))
        file = folder / f"{family}.png"
        if changed:
            _draw(family, changed[:cap], file)
        else:
            file.unlink(missing_ok=True)
        plots.append(FamilyPlot(family, file if changed else None, changed[:cap], max(len(changed) - cap, 0)))
    return plots


def _draw(family: str, shown: list[Change], file: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from justask.render import figure_to

    fig, axes = plt.subplots(len(shown), 1, figsize=(6.5, 0.5 + 0.9 * len(shown)), squeeze=False)
    for ax, c in zip(axes[:, 0], shown, strict=True):
        ax.axvspan(c.base.lo, c.base.hi, color="0.9", zorder=0)
        for y, f, colour in ((1, c.base, "0.4"), (0, c.pr, PLOTTED[c.kind])):
            ax.errorbar([f.value], [y], xerr=[[f.value - f.lo], [f.hi - f.value]], fmt="o", color=colour, capsize=3)
        ax.set_yticks([0, 1], ["PR", "base"])
        ax.set_ylim(-0.7, 1.7)
        ax.tick_params(labelsize=7)
        ax.set_title(f"{split(c.path)[1]}: {c.kind}, {interval(c.base)} -> {interval(c.pr)}", fontsize=8, loc="left",
                     color=PLOTTED["worse"] if c.kind == "worse" else "black")
    fig.suptitle(f"{family}: figures changed by the PR, value and 95% CI (grey band: base CI)", fontsize=9)
    fig.tight_layout()
    figure_to(file, fig, metadata={"Software": None})


def plots_markdown(plots: list[FamilyPlot]) -> str:
    """The plot files and the figures each shows, worse ones in bold, for gate.md."""
    lines = ["Plots of the changed figures (base grey, pull request coloured: red worse beyond the 95% CI, "
             "green better, blue within it):", ""]
    for p in plots:
        if p.file is None:
            lines.append(f"- {p.family}: no figure changed, no plot")
            continue
        names = [f"**{split(c.path)[1]}**" if c.kind == "worse" else split(c.path)[1] for c in p.shown]
        more = f", and {p.more} more in the table" if p.more else ""
        lines.append(f"- `{p.file.name}`: {', '.join(names)}{more}")
    return "\n".join(lines)
