"""Profiles of missed targets: the figure's workload run once under py-spy (``--subprocesses``, so
spawn workers are sampled too), summarised as the functions with the most samples, on their own
(self) and including what they call (total), into ``benchmarks/profiles/<workload>.txt``.

``python -m justask.bench.profiling WORKLOAD PARAMS WORKERS QUICK`` runs one workload: what
py-spy records.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from justask.bench import Settings

TOP = 20
PROCESS = re.compile(r'^process \d+:"[^"]*";?')


def run_workload(name: str, settings: Settings) -> None:
    """Run the workload behind a figure once (no timing, no raw loop): ``collection-<family>`` or
    ``evaluate-<case key>`` (see :mod:`justask.bench.collection` and :mod:`justask.bench.evaluation`)."""
    from justask.bench import collection, evaluation

    kind, _, key = name.partition("-")
    if kind == "collection":
        with tempfile.TemporaryDirectory(prefix="justask-bench-") as tmp:
            found = [c for c in collection.cases(settings, Path(tmp)) if c.family == key]
            for case in found:
                case.collect()
    elif kind == "evaluate":
        found = [c for c in evaluation.cases(settings) if c.key == key]
        for case in found:
            case.run()
    else:
        found = []
    if not found:
        raise ValueError(f"no profile workload {name!r}; expected collection-<family> or evaluate-<case key>")


def summarise(raw: str, title: str) -> str:
    """Top functions of py-spy's raw (collapsed) stacks: one ``frame;frame;... count`` per line."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = imports = no_python = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        # py-spy --subprocesses puts `process PID:"command line"` first; the command may hold ';'
        frames = [f for f in PROCESS.sub("", stack).split(";") if f and not f.endswith('"')]  # rest of a label
        if not frames:
            no_python += n  # no Python frame in the sample (native code, process start)
            continue
        if any(f.startswith("_find_and_load ") for f in frames):
            imports += n  # module imports (process start-up), counted apart from the work
            continue
        samples += n
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    lines = [title, f"{samples} samples of work, all processes; {imports} more in module imports "
                    f"({100 * imports / max(samples + imports, 1):.0f}% of all samples) and {no_python} without a "
                    "Python frame, both left out below", "",
             f"top {TOP} by own samples (self %):"]
    lines += [f"  {100 * n / max(samples, 1):5.1f}%  {f}" for f, n in own.most_common(TOP)]
    lines += ["", f"top {TOP} by samples including callees (total %):"]
    lines += [f"  {100 * n / max(samples, 1):5.1f}%  {f}" for f, n in total.most_common(TOP)]
    return "\n".join(lines) + "\n"


def profile_missed(settings: Settings, report: dict, folder: Path) -> dict[str, str]:
    """Profile the workload of every missed figure that names one; returns figure -> summary file
    (or why it could not be profiled)."""
    from justask.io import write_text

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    done: dict[str, str] = {}
    profiled: set[str] = set()
    for f in report["figures"]:
        if f["met"] is not False or not f.get("profile") or f["profile"] in profiled:
            continue
        name = f["profile"]
        profiled.add(name)
        settings.log(f"bench: profiling {name} (missed: {f['name']})")
        with tempfile.TemporaryDirectory(prefix="justask-spy-") as tmp:
            raw = Path(tmp) / "raw.txt"
            cmd = [spy, "record", "--format", "raw", "--rate", "200", "--subprocesses", "--nonblocking", "-o",
                   str(raw), "--", sys.executable, "-m", "justask.bench.profiling", name,
                   str(settings.params_path), str(settings.workers or 0), str(int(settings.quick))]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0 or not raw.exists():
                done[f["name"]] = f"py-spy failed ({proc.returncode}): {proc.stderr.strip()[-500:]}"
                continue
            title = (f"{name}: {f['name']} = {f['value']:.3g} (target {f['op']} {f['target']:g}); "
                     f"machine {report['machine']['cpu']}, {report['machine']['cores']} cores, "
                     f"commit {report['git_commit'][:10]}, {report['date']}")
            path = write_text(folder / f"{name}.txt", summarise(raw.read_text(errors="replace"), title))
        done[f["name"]] = str(path)
    return done


def main(argv: list[str]) -> None:
    from justask.config import load_params

    name, params, workers, quick = argv
    settings = Settings(params=load_params(Path(params)), params_path=Path(params), root=Path("."),
                        workers=int(workers) or None, quick=bool(int(quick)), repeats=1)
    run_workload(name, settings)


if __name__ == "__main__":
    main(sys.argv[1:])
