"""Where each stage of a family reads and writes (one place, so dvc.yaml, stages and tests agree)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FamilyPaths:
    root: Path
    family: str

    @property
    def base(self) -> Path:
        return self.root / "artifacts" / self.family

    @property
    def collect(self) -> Path:
        return self.base / "collect"

    def dataset(self, name: str) -> Path:
        return self.collect / name

    @property
    def collect_summary(self) -> Path:
        return self.collect / "summary.json"

    @property
    def validate(self) -> Path:
        """The verdict of every data check (what DVC tracks and relabel depends on)."""
        return self.base / "validate"

    @property
    def validate_docs(self) -> Path:
        """Great Expectations' Data Docs of the last validate run: the human report, not tracked by
        DVC (its pages carry run times)."""
        return self.base / "validate-docs"

    @property
    def relabel(self) -> Path:
        return self.base / "relabel"

    def relabeled(self, name: str) -> Path:
        return self.relabel / name

    @property
    def conditions(self) -> Path:
        return self.relabel / "conditions.json"

    @property
    def train(self) -> Path:
        return self.base / "train"

    def run_dir(self, dataset: str, model: str, seed: int) -> Path:
        return self.train / dataset / model / f"seed{seed}"

    @property
    def checkpoints(self) -> Path:
        """Resume state of unfinished fits. Not a DVC output: DVC deletes a stage's outputs before
        rerunning it, and a killed train stage must find these to resume."""
        return self.root / "artifacts" / "checkpoints" / self.family

    def resume_file(self, dataset: str, model: str, seed: int) -> Path:
        return self.checkpoints / dataset / model / f"seed{seed}.pt"

    @property
    def evaluate(self) -> Path:
        return self.base / "evaluate"

    @property
    def metrics(self) -> Path:
        """``metrics/<family>.json``, git-tracked for ``dvc metrics diff``."""
        return self.root / "metrics" / f"{self.family}.json"

    @property
    def plot(self) -> Path:
        """``metrics/<family>.csv``: the evaluation's plot data, drawn by the family's ``plot.json``."""
        return self.root / "metrics" / f"{self.family}.csv"

    @property
    def inputs(self) -> Path:
        """``data/<family>/``: the family's versioned inputs (tracked by data.dvc), e.g. frozen seeds."""
        return self.root / "data" / self.family

    @property
    def eval_seeds(self) -> Path:
        return self.inputs / "eval_seeds.json"


def family_paths(family: str, root: str | Path = ".") -> FamilyPaths:
    return FamilyPaths(Path(root), family)
