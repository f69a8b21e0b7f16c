"""The ``justask`` command: run a stage, list the families, switch profiles, show results (a table or one
HTML page), ask a trained model, measure speed. Every family-wide command iterates the family registry."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import NoReturn

import typer

from justask.console import DETERMINISTIC_EXIT, console, err_console, fail, load_params_or_fail
from justask.errors import USER_ERRORS, ParamsError
from justask.families import families, get_family
from justask.settings import STAGES

__all__ = ["DETERMINISTIC_EXIT", "app"]

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
ask_app = typer.Typer(no_args_is_help=True, help="Ask a trained model of a family for something (`justask ask "
                                                  "FAMILY --help`).")
app.add_typer(ask_app, name="ask")
for _family in families().values():
    if _family.ask:
        _ask = _family.module("ask")
        _examples = getattr(_ask, "EXAMPLES", ())  # shown under --help, one per line
        ask_app.command(_family.name, epilog="\b\nExamples:\n" + "\n".join(f"  {e}" for e in _examples)
                        if _examples else None)(_ask.command)

StageName = Enum("StageName", {s: s for s in STAGES}, type=str)


def _family_or_exit(name: str):
    try:
        return get_family(name)
    except USER_ERRORS as e:
        fail("unknown family", e)


@app.command()
def stage(
    name: StageName,
    family: str = typer.Argument(..., help=f"experiment family ({', '.join(families())})"),
    params: Path = typer.Option(Path("params.yaml"), help="parameters file"),
) -> None:
    """Run one pipeline stage of one family (what `dvc repro` and the Prefect flow call)."""
    from justask.families import run_stage
    from justask.lock import PipelineBusy, stage_lock
    from justask.preflight import ServiceUnreachable, preflight

    _family_or_exit(family)
    cfg = load_params_or_fail(params)
    # SIGTERM (Prefect cancelling, `kill`) unwinds like Ctrl-C, so half-written temporaries are removed.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        with stage_lock(Path("."), family):
            preflight(name.value, family, cfg)
            run_stage(name.value, family, cfg, Path("."))
    except (PipelineBusy, ServiceUnreachable) as e:  # transient: exit 1, which the flow retries
        fail(f"{name.value} not started", e, 1)
    except USER_ERRORS as e:  # bad params, a failed data check, damaged or foreign input: a message, exit 2
        fail(f"{name.value} failed", e)
    except FileNotFoundError as e:  # an input no check named: deterministic too, a rerun would fail the same way
        fail(f"{name.value} failed", f"{e.filename}: missing ({e.strerror}). It is an input of {name.value}@{family}: "
             f"`dvc repro {name.value}@{family}` reruns the stages that write it first (or `dvc checkout` restores "
             "it, `make data` the frozen inputs under data/).")
    except ModuleNotFoundError as e:
        fail(f"{name.value} failed", f"the Python module {e.name!r} is not installed in this environment "
             f"({sys.executable}); `make venv` installs the pinned dependencies, or install it yourself.")
    except Exception as e:  # no check foresaw it: a damaged input is deterministic, anything else is a bug
        _fail_on_damaged_input(name.value, family, e)
        raise


def _fail_on_damaged_input(name: str, family: str, error: Exception) -> None:
    """If an input of the stage differs from what its writer recorded (:mod:`justask.integrity`),
    name it and exit 2, the traceback kept in a file; otherwise return (the error is a bug)."""
    import traceback

    from justask.integrity import damaged_inputs

    damaged = damaged_inputs(Path("."), f"{name}@{family}")
    if not damaged:
        return
    log = Path(".dvc/tmp") / f"{name}-{family}.traceback"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("".join(traceback.format_exception(error)))
        kept = f" (traceback in {log})"
    except OSError:
        kept = ""
    more = f"; and {len(damaged) - 5} more" if len(damaged) > 5 else ""
    lines = "; ".join(d.describe() for d in damaged[:5]) + more
    fail(f"{name} failed", f"{type(error).__name__}: {error}{kept}. Its inputs are not what "
         f"was recorded when they were written, the likely cause: {lines}.")


def _exit_on_signal(signum: int, frame) -> NoReturn:
    raise SystemExit(128 + signum)


@app.command(name="families")
def list_families(
    names: bool = typer.Option(False, "--names", help="print only the names of the families configured in "
                                                     "--params, one per line, in their order there"),
    params: Path = typer.Option(Path("params.yaml"), help="parameters file"),
) -> None:
    """List the experiment families: what each is, its models, whether it can be asked, whether
    params.yaml configures it."""
    if names:
        for name in load_params_or_fail(params).families:
            print(name)
        return
    from rich.table import Table

    try:
        from justask.config import load_params

        configured = set(load_params(params).families)
    except ParamsError:
        configured = set()
    table = Table(title=f"experiment families (src/justask/families/; configured in {params}: "
                        f"{', '.join(sorted(configured)) or 'none'})")
    for col in ("family", "what it is", "models", "ask", "configured"):
        table.add_column(col)
    for fam in families().values():
        table.add_row(fam.name, fam.summary, ", ".join(fam.models), "yes" if fam.ask else "",
                      "yes" if fam.name in configured else "")
    console.print(table)


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
        fail("pipeline busy", e, 75)
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
        from justask.config import load_params

        load_params(src)
    except ParamsError as e:
        fail("invalid profile", e)
    tmp = Path("params.yaml.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace("params.yaml")
    console.print(f"params.yaml <- {src}")


@app.command()
def results(family: str = typer.Argument(..., help=f"experiment family ({', '.join(families())})")) -> None:
    """Print the results tables of the family's last evaluation (metrics/FAMILY.json)."""
    from justask.paths import family_paths

    fam = _family_or_exit(family)
    path = family_paths(family, Path(".")).metrics
    if not path.exists():
        err_console.print(f"no {path} yet: run `dvc repro evaluate@{family}` first")
        raise typer.Exit(1)
    fam.print_results(json.loads(path.read_text()), console)


@app.command()
def report(
    out: Path = typer.Option(Path("artifacts/report.html"), help="where to write the page"),
    params: Path = typer.Option(Path("params.yaml"), help="parameters file (which families, which profile)"),
) -> None:
    """Write one static HTML page of every family's results (tables, plots, GIFs, images embedded)
    from the last run's metrics/ and artifacts/; it opens from disk, no server needed."""
    from justask.io import write_text
    from justask.webpage import build_page

    cfg = load_params_or_fail(params)
    write_text(out, build_page(Path("."), list(cfg.families), cfg.profile))
    console.print(f"written: {out} ({out.stat().st_size // 1024} KB, images embedded; open it in a browser)")


@app.command()
def gate(
    base: Path = typer.Argument(..., help="the base branch's metrics folder (its metrics/<family>.json)"),
    pr: Path = typer.Argument(Path("metrics"), help="the pull request's metrics folder"),
    out: Path = typer.Option(None, help="also write the table as markdown here (e.g. for a PR comment)"),
    plots: Path = typer.Option(None, help="also write <family>.png here per family with changed figures: "
                                          "base vs pull request, each with its 95% CI (listed after the table)"),
) -> None:
    """Compare two runs' metrics on the same profile: exit 1 if any figure got worse beyond its
    95% CI (the pull request's interval wholly below the base's), listing every change."""
    from justask.gate import compare, interval, plot_changes, plots_markdown, read_metrics
    from justask.io import write_text

    try:
        sides = [read_metrics(folder) for folder in (base, pr)]
    except ValueError as e:
        fail("cannot compare", e)
    for folder, side in zip((base, pr), sides, strict=True):
        if not side:
            fail("cannot compare", f"{folder}: no metrics/<family>.json with confidence intervals; run the "
                 "pipeline there first (`dvc repro`)")
    every = compare(*sides)
    changes = [c for c in every if c.kind != "same"]
    worse = [c for c in changes if c.kind == "worse"]
    rows = ["| figure | base | pull request | change |", "|---|---|---|---|"]
    rows += [f"| {c.path} | {interval(c.base)} | {interval(c.pr)} | {'**worse**' if c.kind == 'worse' else c.kind} |"
             for c in changes]
    same = len(every) - len(changes)
    verdict = (f"{len(worse)} figure(s) worse beyond their 95% CI" if worse else
               "no figure worse beyond its 95% CI") + f"; {same} identical, {len(changes) - len(worse)} other changes"
    text = "\n".join([verdict, "", *rows]) if changes else verdict
    if plots is not None:
        text += "\n\n" + plots_markdown(plot_changes(every, plots))
    if out is not None:
        write_text(out, text + "\n")
    console.print(text, markup=False)
    if worse:
        raise typer.Exit(1)


@app.command()
def bench(
    out: Path = typer.Option(Path("benchmarks/results/latest.json"), help="where to write the JSON report"),
    quick: bool = typer.Option(False, help="seconds-long smoke run with tiny sizes (figures mean little)"),
    sections: str = typer.Option("a,b,c,d,e", help="a collection, b training, c evaluation, d orchestration, "
                                                    "e memory; comma-separated"),
    workers: int = typer.Option(None, min=1, help="collection processes (default: each family's collect.workers)"),
    repeats: int = typer.Option(None, min=1, help="timed repeats per figure, median reported (default 3; quick 1)"),
    profile: bool = typer.Option(False, help="py-spy profile each missed target into benchmarks/profiles/"),
    params: Path = typer.Option(Path("profiles/default.yaml"), help="parameters whose sizes are measured"),
    data_scale: int = typer.Option(1, min=1, help="section e: peak memory of every stage at the params' data "
                                                  "sizes and at this many times them (compute cut); 1: the "
                                                  "test-profile stages"),
    families: str = typer.Option(None, help="section e at --data-scale: these families only, comma-separated"),
) -> None:
    """Measure throughput and overheads against their targets; print a table and write a JSON."""
    from justask.bench import SECTIONS, Settings, figures_markdown, figures_table, run_bench, write_report
    from justask.io import write_text

    chosen = [s.strip() for s in sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown or not chosen:
        err_console.print(f"[red]--sections {sections!r}[/]: unknown {unknown or 'empty'}; "
                          f"pick from {', '.join(f'{k} ({v})' for k, v in SECTIONS.items())}")
        raise typer.Exit(2)
    cfg = load_params_or_fail(params)
    chosen_families = [f.strip() for f in families.split(",") if f.strip()] if families else None
    strange = [f for f in chosen_families or [] if f not in cfg.families]
    if strange:
        err_console.print(f"[red]--families {families!r}[/]: {', '.join(strange)} not configured in {params}; "
                          f"pick from {', '.join(cfg.families)}")
        raise typer.Exit(2)
    settings = Settings(params=cfg, params_path=params, root=Path("."), workers=workers, quick=quick,
                        repeats=repeats or (1 if quick else 3), log=lambda m: err_console.print(m, style="dim"),
                        data_scale=data_scale, families=chosen_families)
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
