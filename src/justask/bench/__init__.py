"""``justask bench``: throughput and overhead figures of the pipeline, each next to its target.

Sections (``--sections``):

* ``a`` collection: env steps/s of each family's real collection code vs the same env stepped
  with random actions in a bare loop, same processes (:mod:`justask.bench.collection`);
* ``b`` training: samples/s and tokens/s of the one training loop for every model at its default
  size, and the share of step time spent producing batches (:mod:`justask.bench.training`);
* ``c`` evaluation: episodes/s and env steps/s of the batched evaluation rollouts vs the raw
  vector-env rate (:mod:`justask.bench.evaluation`);
* ``d`` orchestration and ``e`` memory: start-up costs of DVC, the CLI, MLflow, GE and Prefect,
  a no-op ``dvc repro``, and each stage's peak RSS next to its data size, measured in a fresh
  clone on the test profile (:mod:`justask.bench.orchestration`).

Every measurement warms up first and reports the median of ``repeats`` runs. The JSON records
the machine, the git commit, the date and the params used; it is written atomically.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SECTIONS = {"a": "collection", "b": "training", "c": "evaluation", "d": "orchestration", "e": "memory"}


@dataclass
class Figure:
    """One reported number; ``met`` compares ``value`` with ``target`` (``op`` is ">=" or "<=")."""

    section: str
    name: str
    value: float
    unit: str
    target: float | None = None
    op: str = ">="
    note: str = ""
    profile: str = ""  # workload `--profile` runs under py-spy when the target is missed
    met: bool | None = field(init=False)

    def __post_init__(self) -> None:
        if self.target is None:
            self.met = None
        else:
            self.met = self.value >= self.target if self.op == ">=" else self.value <= self.target


@dataclass
class Settings:
    """What every section needs: sizes, processes, repeats."""

    params: Any  # justask.config.Params
    params_path: Path
    root: Path
    workers: int | None  # collection processes (None: each family's collect.workers)
    quick: bool
    repeats: int
    log: Callable[[str], None] = print
    data_scale: int = 1  # section e at this many times the params' data (orchestration.memory_costs)
    families: list[str] | None = None  # section e at scale: these families only (None: all configured)

    def workers_for(self, configured: int) -> int:
        return self.workers or configured


def family_benches(settings: Settings) -> list:
    """The ``bench`` modules (their workloads for each section) of the families ``settings.params``
    configures, in its order; a family without a ``bench.py`` offers none."""
    from justask.families import families

    out = []
    for name in settings.params.families:
        fam = families()[name]
        try:
            out.append(fam.module("bench"))
        except ModuleNotFoundError as e:
            if e.name != f"{fam.package}.bench":
                raise
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_run(fn: Callable[[], float], repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Call ``fn`` ``warmup`` times (discarded) then ``repeats`` times; (median, all values)."""
    for _ in range(warmup):
        fn()
    values = [float(fn()) for _ in range(repeats)]
    return statistics.median(values), values


def _git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine_info() -> dict:
    """CPU, cores, RAM, library versions, CUDA device (if any) and the load when the run started
    (a loaded machine is a shared one: its figures are lower bounds)."""
    import gymnasium
    import minigrid
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        ram = float("nan")
    return {
        "cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(ram, 1), "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__, "gymnasium": gymnasium.__version__,
        "minigrid": minigrid.__version__,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def run_bench(settings: Settings, sections: list[str]) -> dict:
    """Run the chosen sections; returns the report (figures, per-section details, provenance)."""
    from justask.bench import collection, evaluation, training

    runners: dict[str, Callable[[Settings], tuple[list[Figure], dict]]] = {
        "a": collection.run, "b": training.run, "c": evaluation.run,
    }
    report: dict = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": _git(settings.root, "rev-parse", "HEAD"),
        "git_dirty": bool(_git(settings.root, "status", "--porcelain", "--untracked-files=no")),
        "machine": machine_info(),
        "quick": settings.quick, "workers": settings.workers, "repeats": settings.repeats,
        "params_file": str(settings.params_path),
        "params": settings.params.model_dump(mode="json", by_alias=True),
        "sections": {}, "figures": [],
    }
    figures: list[Figure] = []
    t0 = time.perf_counter()
    done_d_e = False
    for s in sections:
        settings.log(f"bench: section {s} ({SECTIONS[s]})")
        if s in ("d", "e"):
            if done_d_e:
                continue
            # d and e share one fresh clone on the test profile (a pipeline run is the costly part).
            from justask.bench import orchestration

            figs, details = orchestration.run(settings, with_d="d" in sections, with_e="e" in sections)
            done_d_e = True
            report["sections"].update(details)
        else:
            figs, detail = runners[s](settings)
            report["sections"][SECTIONS[s]] = detail
        figures += figs
    report["figures"] = [asdict(f) for f in figures]
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def write_report(report: dict, path: Path) -> Path:
    """Write the report as JSON, atomically."""
    from justask.io import write_json

    return write_json(path, report)


def figures_table(report: dict):
    """A rich table of every figure with its target and whether it is met."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"justask bench ({report['machine']['cpu']}, {report['machine']['cores']} cores"
                        + (f", {report['machine']['cuda_device']}" if report['machine']['cuda_device'] else "")
                        + ")")
    for col in ("section", "figure", "value", "target", "met"):
        table.add_column(col, justify="right" if col in ("value", "target") else "left")
    for f in report["figures"]:
        target = "" if f["target"] is None else f"{f['op']} {f['target']:g}"
        met = {True: "[green]met[/]", False: "[red]not met[/]", None: ""}[f["met"]]
        # Figure names hold brackets ("[cpu]"): not markup.
        table.add_row(SECTIONS[f["section"]], escape(f["name"]), f"{f['value']:.4g} {f['unit']}", target, met)
    return table


def figures_markdown(report: dict) -> str:
    """The figures as a markdown table (figure, value, target, met), headed by the machine."""
    m = report["machine"]
    head = (f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, "
            f"{m['cuda_device'] or 'no GPU'}; torch {m['torch']}, gymnasium {m['gymnasium']}; load average "
            f"{m['load_average_at_start'][0]} at start, {m.get('load_average_at_end', ['?'])[0]} at end; "
            f"commit {report['git_commit'][:10]}{' (dirty tree)' if report['git_dirty'] else ''}; {report['date']}; "
            f"{'quick run; ' if report['quick'] else ''}median of {report['repeats']}.\n\n")
    rows = ["| section | figure | measured | target | met |", "|---|---|---|---|---|"]
    for f in report["figures"]:
        target = "" if f["target"] is None else f"{f['op']} {f['target']:g}"
        met = {True: "met", False: "**not met**", None: ""}[f["met"]]
        note = f" ({f['note']})" if f["note"] else ""
        value = f"{f['value']:.3g} {f['unit']}{note}"
        rows.append(f"| {SECTIONS[f['section']]} | {f['name']} | {value} | {target} | {met} |")
    return head + "\n".join(rows) + "\n"
