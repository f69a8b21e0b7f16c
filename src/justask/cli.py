"""The ``justask`` command: run a stage, switch profiles, show results, ask a trained model."""

from __future__ import annotations

import shutil
import sys
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console

from justask.config import ParamsError, load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()
err_console = Console(stderr=True)


class StageName(str, Enum):
    collect = "collect"
    validate = "validate"
    relabel = "relabel"
    train = "train"
    evaluate = "evaluate"


FAMILIES = ("return", "language")


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        err_console.print(f"[red]unknown family {family!r}[/]; available: {', '.join(FAMILIES)}")
        raise typer.Exit(2)


@app.command()
def stage(
    name: StageName,
    family: str = typer.Argument("return", help="experiment family"),
    params: Path = typer.Option(Path("params.yaml"), help="parameters file"),
) -> None:
    """Run one pipeline stage (what `dvc repro` and the Prefect flow call)."""
    _check_family(family)
    try:
        cfg = load_params(params)
    except ParamsError as e:
        err_console.print(f"[red]invalid parameters[/]\n{e}")
        raise typer.Exit(2) from None
    from justask import stages

    try:
        stages.run_stage(name.value, cfg, Path("."), family)
    except stages.StageFailed as e:
        err_console.print(f"[red]{name.value} failed[/]\n{e}")
        raise typer.Exit(1) from None


@app.command()
def profile(name: str = typer.Argument(..., help="profile in profiles/, e.g. test")) -> None:
    """Make ``profiles/NAME.yaml`` the active params.yaml (validated first)."""
    src = Path("profiles") / f"{name}.yaml"
    if not src.exists():
        options = sorted(p.stem for p in Path("profiles").glob("*.yaml"))
        err_console.print(f"[red]no profile {src}[/]; available: {', '.join(options) or 'none'}")
        raise typer.Exit(2)
    try:
        load_params(src)
    except ParamsError as e:
        err_console.print(f"[red]invalid profile[/]\n{e}")
        raise typer.Exit(2) from None
    tmp = Path("params.yaml.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace("params.yaml")
    console.print(f"params.yaml <- {src}")


@app.command()
def results(family: str = typer.Argument("return")) -> None:
    """Print the results table of the last evaluation (metrics/FAMILY.json)."""
    _check_family(family)
    from justask.report import print_results

    if not print_results(family, Path("."), console):
        err_console.print(f"no metrics/{family}.json yet: run `dvc repro` first")
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    sys.exit(app())
