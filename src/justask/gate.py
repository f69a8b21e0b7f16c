"""The pull-request gate: which measured figures a change made worse beyond their confidence intervals.

Every family's ``metrics/<family>.json`` holds its figures with 95% bootstrap CIs, in one of two
forms: ``X`` beside ``X_lo`` and ``X_hi`` (IQM scores and returns), or ``success`` beside
``ci: [lo, hi]`` (the language family's success rates). All of them are higher-is-better. A figure
*regressed* when the pull request's whole interval lies below the base's (``pr_hi < base_lo``):
an overlap is noise, not evidence. Both sides must run the same profile with the same seeds, so
an unchanged model gives the same bytes and no difference at all.
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
