"""The ``justask`` command: run a stage, switch profiles, show results, ask a trained model."""

from __future__ import annotations

import shutil
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

from justask.config import ParamsError, load_params
from justask.stages import FAMILIES

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()
err_console = Console(stderr=True)

# Exit status of `justask stage` for a failure that a rerun repeats (bad params, a failed data check,
# damaged input): the Prefect flow does not retry it. Any other non-zero status (a crash, a killed
# worker, an OSError) may be transient and is retried.
DETERMINISTIC_EXIT = 2


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


def _fail(title: str, error: Exception, code: int) -> NoReturn:
    """Print ``title`` and the error's message as written (no markup, no added line breaks); exit ``code``."""
    err_console.print(f"[red]{title}[/]")
    err_console.print(str(error), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code) from None


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
        _fail("invalid parameters", e, DETERMINISTIC_EXIT)
    from justask import stages

    # SIGTERM (Prefect cancelling, `kill`) unwinds like Ctrl-C, so half-written temporaries are removed.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        stages.run_stage(name.value, cfg, Path("."), family)
    except stages.StageFailed as e:
        _fail(f"{name.value} failed", e, DETERMINISTIC_EXIT)
    except ValueError as e:
        # Bad input files (damaged/foreign datasets, checkpoints): a message, no traceback. Imported
        # here, not at the top, so that stages that need neither do not pay for importing torch.
        from justask.data.episodes import DatasetError
        from justask.models import CheckpointError

        if not isinstance(e, DatasetError | CheckpointError):
            raise
        _fail(f"{name.value} failed", e, DETERMINISTIC_EXIT)


def _exit_on_signal(signum: int, frame) -> NoReturn:
    raise SystemExit(128 + signum)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def locked(ctx: typer.Context) -> None:
    """Run a command (``justask locked -- CMD ...``) holding the pipeline lock; `make run` uses it."""
    import subprocess

    from justask.lock import PipelineBusy, pipeline_lock

    if not ctx.args:
        err_console.print("[red]nothing to run[/]: justask locked -- CMD [ARGS...]")
        raise typer.Exit(2)
    try:
        with pipeline_lock(Path(".")):
            code = subprocess.call(ctx.args)
    except PipelineBusy as e:
        _fail("pipeline busy", e, 75)
    raise typer.Exit(code)


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
    from justask.models import CheckpointError

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
    except CheckpointError as e:
        _fail("cannot load the policy", e, 1)
    outcome = "[green]success[/]" if r.success else "[red]failed[/]"
    console.print(f"{r.model} (seed {r.train_seed}) asked {r.text!r} in {r.level}, env seed {r.env_seed}: "
                  f"{outcome} after {r.steps} steps" + (f" (judged as {r.instruction!r})" if r.instruction != r.text
                                                         else ""))
    if r.gif:
        console.print(f"GIF: {r.gif}")


@app.command()
def bench(
    out: Path = typer.Option(Path("benchmarks/results/latest.json"), help="where to write the JSON report"),
    quick: bool = typer.Option(False, help="seconds-long smoke run with tiny sizes (figures mean little)"),
    sections: str = typer.Option("a,b,c,d,e", help="a collection, b training, c evaluation, d orchestration, "
                                                    "e memory; comma-separated"),
    workers: int = typer.Option(None, min=1, help="collection processes (default: return.collect.workers)"),
    repeats: int = typer.Option(None, min=1, help="timed repeats per figure, median reported (default 3; quick 1)"),
    profile: bool = typer.Option(False, help="py-spy profile each missed target into benchmarks/profiles/"),
    params: Path = typer.Option(Path("profiles/default.yaml"), help="parameters whose sizes are measured"),
) -> None:
    """Measure throughput and overheads against their targets; print a table and write a JSON."""
    from justask.bench import SECTIONS, Settings, figures_markdown, figures_table, run_bench, write_report
    from justask.data.atomic import write_text

    chosen = [s.strip() for s in sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown or not chosen:
        err_console.print(f"[red]--sections {sections!r}[/]: unknown {unknown or 'empty'}; "
                          f"pick from {', '.join(f'{k} ({v})' for k, v in SECTIONS.items())}")
        raise typer.Exit(2)
    try:
        cfg = load_params(params)
    except ParamsError as e:
        _fail("invalid parameters", e, 2)
    settings = Settings(params=cfg, params_path=params, root=Path("."),
                        workers=workers or cfg.return_.collect.workers, quick=quick,
                        repeats=repeats or (1 if quick else 3), log=lambda m: err_console.print(m, style="dim"))
    report = run_bench(settings, chosen)
    if profile:
        from justask.bench.profiling import profile_missed

        report["profiles"] = profile_missed(settings, report, Path("benchmarks/profiles"))
    write_report(report, out)
    write_text(out.with_suffix(".md"), figures_markdown(report))
    console.print(figures_table(report))
    console.print(f"written: {out} and {out.with_suffix('.md')} (the table as markdown)")


def main() -> None:  # pragma: no cover
    sys.exit(app())
