"""The contract an experiment family implements (see docs/adding-a-family.md).

A family is one package, ``justask/families/<name>/``, whose ``__init__.py`` declares
``FAMILY = Family(...)``. By convention the package also holds:

* ``collect.py``, ``validate.py``, ``relabel.py``, ``train.py``, ``evaluate.py``: one function
  each, named like its module, ``(params: Params, root: Path) -> object``, reading its section
  ``params.families[<name>]`` and writing only under ``artifacts/<name>/<stage>/`` (evaluate also
  ``metrics/<name>.json`` and the plot data ``metrics/<name>.csv``);
* ``report.py``: ``print_results(metrics: dict, console)``, the tables of ``justask results <name>``;
* ``plot.json``: the Vega-Lite template ``dvc plots`` draws ``metrics/<name>.csv`` with;
* optionally ``ask.py`` (``command``: the typer command ``justask ask <name> ...``) and
  ``bench.py`` (the family's workloads for ``justask bench``).

Modules are imported only when used, so declaring a family costs its config schema alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from justask.errors import StageFailed
from justask.settings import STAGES, FamilySection


@dataclass(frozen=True)
class Family:
    """What one experiment family provides, declared once in its package's ``__init__.py``."""

    name: str  # params key families.<name>, artifacts/<name>/, metrics/<name>.json, stages <stage>@<name>
    package: str  # the declaring package's ``__name__``
    summary: str  # one line for `justask families`
    config: type[FamilySection]  # the schema of params.yaml's families.<name>
    models: Mapping[str, str] = field(default_factory=dict)  # model kinds it trains -> what each is
    ask: bool = False  # ask.py provides `justask ask <name>`

    def module(self, name: str) -> ModuleType:
        """The family's submodule ``name`` (e.g. ``relabel``), imported on first use."""
        return importlib.import_module(f"{self.package}.{name}")

    def stage(self, stage: str) -> Callable[[Any, Path], Any]:
        """The function that runs ``stage`` of this family."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        try:
            return getattr(self.module(stage), stage)
        except ModuleNotFoundError as e:
            if e.name != f"{self.package}.{stage}":
                raise
            raise StageFailed(f"the {self.name} family has no {stage} stage ({self.package}.{stage})") from None

    def print_results(self, metrics: dict, console) -> None:
        self.module("report").print_results(metrics, console)
