"""The ``justask`` command: run a stage, switch profiles, show results, ask a trained model."""

from __future__ import annotations

import shutil
import sys
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console

from justask.config import ParamsError, load_params
from justask.stages import FAMILIES

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()
err_console = Console(stderr=True)


class StageName(str, Enum):
    collect = "collect"
    validate = "validate"
    relabel = "relabel"
    train = "train"
    evaluate = "evaluate"




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


@app.command()
def ask(
    family: str = typer.Argument(..., help="experiment family (language)"),
    text: str = typer.Argument(..., help='what to ask for, e.g. "pick up the purple key"'),
    model: str = typer.Option(None, help="trained model (default: the first of language.train.models)"),
    train_seed: int = typer.Option(None, help="training seed of the model (default: the first)"),
    level: str = typer.Option(None, help="BabyAI level whose room to use (default: the first configured)"),
    seed: int = typer.Option(None, help="env seed to start the search for a room holding the objects "
                                        "(default: seeds never used for collection)"),
    means: str = typer.Option(None, help="TEXT in the instruction grammar, when TEXT is free wording "
                                         "(the verifier judges success on it)"),
    gif: bool = typer.Option(True, help="save the episode as a GIF"),
    params: Path = typer.Option(Path("params.yaml"), help="parameters file"),
) -> None:
    """Ask a trained policy, in words: roll it out once, print success and steps, save a GIF."""
    _check_family(family)
    if family != "language":
        err_console.print(f"[red]`ask` takes the language family[/]; for {family!r} see `justask results {family}`")
        raise typer.Exit(2)
    from justask.ask import AskError, ask_language

    try:
        cfg = load_params(params)
        r = ask_language(text, cfg, Path("."), model=model, train_seed=train_seed, level=level, env_seed=seed,
                         means=means, gif=gif)
    except ParamsError as e:
        err_console.print(f"[red]invalid parameters[/]\n{e}")
        raise typer.Exit(2) from None
    except AskError as e:
        err_console.print(f"[red]cannot ask that[/]\n{e}")
        raise typer.Exit(2) from None
    outcome = "[green]success[/]" if r.success else "[red]failed[/]"
    console.print(f"{r.model} (seed {r.train_seed}) asked {r.text!r} in {r.level}, env seed {r.env_seed}: "
                  f"{outcome} after {r.steps} steps" + (f" (judged as {r.instruction!r})" if r.instruction != r.text
                                                         else ""))
    if r.gif:
        console.print(f"GIF: {r.gif}")


def main() -> None:  # pragma: no cover
    sys.exit(app())
