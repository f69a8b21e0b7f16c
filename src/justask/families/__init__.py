"""The family registry: every package in this folder that declares ``FAMILY`` is an experiment
family, found here and nowhere else listed.

Params validation, the CLI (``stage``, ``results``, ``ask``, ``families``), the Prefect flow,
the Makefile (through ``justask families``), ``justask bench`` and the tests iterate over
:func:`families`. dvc.yaml runs the five stages of each family configured in params.yaml
(``foreach: ${families}``). The contract a family implements: :mod:`justask.family`.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING

from justask.errors import StageFailed
from justask.family import Family

if TYPE_CHECKING:
    from justask.config import Params


@functools.cache
def families() -> dict[str, Family]:
    """Name -> :class:`Family` of every family package, in alphabetical order."""
    found: dict[str, Family] = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        family = getattr(module, "FAMILY", None)
        if not isinstance(family, Family):
            raise TypeError(f"{module.__file__}: a family package must declare FAMILY = justask.family.Family(...)")
        if family.name != info.name or family.package != module.__name__:
            raise TypeError(f"{module.__file__}: FAMILY.name must be the folder's name {info.name!r} and "
                            f"FAMILY.package its __name__ {module.__name__!r}")
        found[family.name] = family
    return found


def get_family(name: str) -> Family:
    """The family called ``name``; :class:`StageFailed` naming the available ones otherwise."""
    try:
        return families()[name]
    except KeyError:
        raise StageFailed(f"unknown family {name!r}; available: {', '.join(families())} "
                          f"(packages in {Path(__file__).parent})") from None


def run_stage(stage: str, family: str, params: Params, root: Path = Path(".")) -> object:
    """Run ``stage`` of ``family`` with validated ``params``, writing under ``root``."""
    fam = get_family(family)
    if family not in params.families:
        raise StageFailed(f"params.yaml has no families.{family} section; add one (see profiles/default.yaml)")
    return fam.stage(stage)(params, root)
