"""Sections d (orchestration overhead) and e (peak memory per stage).

With ``data_scale`` (``justask bench --sections e --data-scale 10``), section e instead measures
memory at scale: in a fresh copy, every stage of each measured family runs directly on the
benchmarked params (the default profile) twice, with its data sizes as configured and multiplied
by ``data_scale`` (:func:`scaled_profile`: every episode count in a family's ``collect``; compute
cut to one training seed, no tuning, one evaluation's worth of steps per fit, no PPO, since memory
follows data, not steps). Each stage's peak RSS is reported beside its data sizes at both scales,
and how many MiB of memory each extra MiB of its input data costs.

Start-up costs are measured directly, each in a fresh interpreter (as every DVC stage is one):
the CLI, each stage's imports, MLflow set-up plus one run (fresh and existing SQLite), a GE
context + suite on a tiny step table, a trivial Prefect flow on the ephemeral API (first start
with its database migrations, then a warm one). DVC is measured in a fresh copy of the working
tree on the ``test`` profile: the full ``dvc repro`` once, then a no-op ``dvc repro``; then every
stage is run directly (``justask stage``) so DVC's own share is the difference, and each stage's
peak RSS (``RUSAGE_CHILDREN`` of a small launcher: the largest process among the stage and its
workers) is recorded next to
the size of its input and output data.

The overhead share of the *default* pipeline combines these per-stage costs with the wall time of
the recorded default runs (README.md, Results sections); the JSON marks which inputs are measured
now and which are recorded.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from justask.bench import Figure, Settings, family_benches
from justask.settings import STAGES

NOOP_TARGET_S = 5.0
OVERHEAD_TARGET = 0.10
MLFLOW_STAGES = ("train", "evaluate")  # the stages that call setup_mlflow
BIN = Path(sys.executable).parent

MLFLOW_PROBE = """
import sys, time
t0 = time.perf_counter()
from pathlib import Path
from justask.config import TrackingConfig
from justask.tracking import setup_mlflow
mlflow = setup_mlflow(TrackingConfig(mlflow_uri="sqlite:///mlflow.db", experiment="bench"), Path(sys.argv[1]))
with mlflow.start_run(run_name="bench"):
    mlflow.log_metric("x", 1.0)
print("BENCH_SECONDS", time.perf_counter() - t0)
"""
GE_PROBE = """
import time
t0 = time.perf_counter()
import numpy as np
from justask.validation import build_suite, step_table, validate_table
from justask.lunar.env import make_env
env = make_env(max_episode_steps=50)
episodes = []
for seed in (0, 1):
    obs, _ = env.reset(seed=seed)
    ep = {"observations": [obs], "actions": [], "rewards": [], "terminations": [], "truncations": []}
    done = False
    while not done:
        a = env.action_space.sample()
        obs, r, term, trunc, _ = env.step(a)
        for k, v in (("observations", obs), ("actions", a), ("rewards", r), ("terminations", term),
                     ("truncations", trunc)):
            ep[k].append(v)
        done = term or trunc
    episodes.append({k: np.asarray(v) for k, v in ep.items()})
suite = build_suite(env.observation_space, env.action_space, 50, 2)
report = validate_table(step_table(episodes), suite, "bench")
assert report.success, report.summary()
print("BENCH_SECONDS", time.perf_counter() - t0)
"""
PREFECT_PROBE = """
import time
t0 = time.perf_counter()
from prefect import flow

@flow
def noop():
    return 1

assert noop() == 1
print("BENCH_SECONDS", time.perf_counter() - t0)
"""


def bench_env(home: Path) -> dict[str, str]:
    """Environment of every subprocess: venv first on PATH, no analytics, a private PREFECT_HOME,
    no inherited MLflow or Prefect server settings."""
    env = dict(os.environ)
    env.update({"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "GX_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1", "PREFECT_HOME": str(home / "prefect"), "MLFLOW_DISABLE_TELEMETRY": "true",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90"})
    for var in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE"):
        env.pop(var, None)
    return env


# Runs a command and reports its children's peak RSS. The launcher is a small fresh interpreter:
# Linux keeps a forked child's pre-exec high-water mark, so measured straight from this (large)
# process, every stage would show at least this process's RSS.
LAUNCHER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
            "print('BENCH_MAXRSS_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")


def run_measured(cmd: list[str], cwd: Path, env: dict, log: Path) -> tuple[float, float, str]:
    """Run ``cmd``; (wall seconds, peak RSS MiB of its largest process, output). Raises with the
    output's tail if it fails."""
    with open(log, "w") as out:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], cwd=cwd, env=env, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode} in {cwd}:\n{text[-3000:]}")
    kib = next(float(line.split()[1]) for line in reversed(text.splitlines()) if line.startswith("BENCH_MAXRSS_KIB"))
    return seconds, kib / 1024, text


def probe(code: str, args: list[str], cwd: Path, env: dict, log: Path) -> float:
    """Seconds a snippet reports for itself (import + work, interpreter start excluded)."""
    _, _, out = run_measured([sys.executable, "-c", code, *args], cwd, env, log)
    return float(next(line.split()[1] for line in reversed(out.splitlines()) if line.startswith("BENCH_SECONDS")))


def copy_workspace(root: Path, dest: Path, env: dict, log: Path) -> Path:
    """A fresh git repo of the working tree (tracked and new, not ignored files), data/ restored
    from the committed remote, switched to the test profile (as tests/helpers.py's copy_repo)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        if (root / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, dest / rel)
    git_id = ["-c", "user.name=justask-bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false"]
    for cmd in (["git", "init", "-q", "-b", "main"], [str(BIN / "dvc"), "pull", "-q", "data.dvc"],
                [str(BIN / "justask"), "profile", "test"], ["git", "add", "-A"],
                ["git", *git_id, "commit", "-q", "--no-verify", "-m", "bench copy"]):
        run_measured(cmd, dest, env, log)
    return dest


def tree_mib(*paths: Path) -> float:
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total / 2**20


def stage_data(repo: Path, family: str, stage: str) -> tuple[float, float]:
    """(input MiB, output MiB) of a stage, from the paths the stages use."""
    from justask.paths import family_paths

    p = family_paths(family, repo)
    inputs = {"collect": [], "validate": [p.collect], "relabel": [p.collect], "train": [p.relabel],
              "evaluate": [p.train, p.relabel]}[stage]
    outputs = {"collect": [p.collect], "validate": [p.validate], "relabel": [p.relabel], "train": [p.train],
               "evaluate": [p.evaluate, p.metrics]}[stage]
    return tree_mib(*inputs), tree_mib(*outputs)


def stage_module(family: str, stage: str) -> str:
    from justask.families import get_family

    return f"{get_family(family).package}.{stage}"


def recorded_default_seconds(settings: Settings) -> dict[str, float]:
    """Wall time of each configured family's recorded default run (its ``bench.RECORDED_DEFAULT_SECONDS``)."""
    return {b.__name__.split(".")[-2]: b.RECORDED_DEFAULT_SECONDS for b in family_benches(settings)
            if hasattr(b, "RECORDED_DEFAULT_SECONDS")}


def startup_costs(settings: Settings, tmp: Path, env: dict) -> dict:
    """Per-process start-up costs, each measured in fresh interpreters (median of repeats)."""
    log, reps, root = tmp / "probe.log", settings.repeats, settings.root.absolute()

    def med(fn) -> float:
        return statistics.median(fn(i) for i in range(reps))

    out = {"cli_help_s": med(lambda i: run_measured([str(BIN / "justask"), "--help"], root, env, log)[0])}
    families = list(settings.params.families)[:1] if settings.quick else list(settings.params.families)
    imports = {}
    for fam in families:
        for stage in STAGES:
            code = (f"import time; t0 = time.perf_counter(); import justask.cli; from justask.config import "
                    f"load_params; load_params({str(settings.params_path.absolute())!r}); import "
                    f"{stage_module(fam, stage)}; print('BENCH_SECONDS', time.perf_counter() - t0)")
            imports[f"{stage}@{fam}"] = probe(code, [], root, env, log)
    out["stage_imports_s"] = imports
    fresh = [probe(MLFLOW_PROBE, [str(tmp / f"mlflow{i}")], root, env, log) for i in range(reps)]
    out["mlflow_fresh_db_s"] = statistics.median(fresh)
    out["mlflow_existing_db_s"] = med(lambda i: probe(MLFLOW_PROBE, [str(tmp / "mlflow0")], root, env, log))
    out["ge_s"] = med(lambda i: probe(GE_PROBE, [], root, env, log))
    first_env = env | {"PREFECT_HOME": str(tmp / "prefect-first")}
    out["prefect_first_start_s"] = probe(PREFECT_PROBE, [], root, first_env, log)
    out["prefect_warm_start_s"] = med(lambda i: probe(PREFECT_PROBE, [], root, first_env, log))
    out["python_s"] = med(lambda i: run_measured([sys.executable, "-c", "pass"], root, env, log)[0])
    return out


def pipeline_costs(settings: Settings, tmp: Path, env: dict) -> dict:
    """In a fresh copy on the test profile: full and no-op ``dvc repro``, then every stage run
    directly with its wall time, peak RSS and data sizes."""
    log = tmp / "pipeline.log"
    repo = copy_workspace(settings.root.absolute(), tmp / "repo", env, log)
    dvc = str(BIN / "dvc")
    settings.log("bench d: dvc repro (test profile, fresh copy)")
    full_s, _, _ = run_measured([dvc, "repro"], repo, env, log)
    noop = [run_measured([dvc, "repro"], repo, env, log)[0] for _ in range(settings.repeats)]
    stages = {}
    from justask.config import load_params

    for fam in load_params(repo / "params.yaml").families:  # the test profile's families
        for stage in STAGES:
            settings.log(f"bench e: justask stage {stage} {fam}")
            wall, rss, _ = run_measured([str(BIN / "justask"), "stage", stage, fam], repo, env, log)
            data_in, data_out = stage_data(repo, fam, stage)
            stages[f"{stage}@{fam}"] = {"wall_s": wall, "peak_rss_mib": rss, "input_mib": data_in,
                                        "output_mib": data_out}
    direct = sum(s["wall_s"] for s in stages.values())
    return {"dvc_repro_full_s": full_s, "dvc_repro_noop_s": statistics.median(noop), "dvc_repro_noop_runs": noop,
            "stages_direct_s": direct, "dvc_own_s": max(0.0, full_s - direct), "stages": stages}


DATA_KEYS = ("episodes", "demos", "episodes_per_noise", "reference_episodes", "rating_episodes")


def _scale_counts(node, factor: int):
    """``node`` with every integer under one of :data:`DATA_KEYS` multiplied by ``factor``."""
    if isinstance(node, dict):
        return {k: v * factor if k in DATA_KEYS and isinstance(v, int) and not isinstance(v, bool)
                else _scale_counts(v, factor) for k, v in node.items()}
    if isinstance(node, list):
        return [_scale_counts(v, factor) for v in node]
    return node


def _cut_steps(node, steps: int):
    """``node`` with every ``steps`` (a fit's length) at most ``steps``."""
    if isinstance(node, dict):
        return {k: min(v, steps) if k == "steps" and isinstance(v, int) else _cut_steps(v, steps)
                for k, v in node.items()}
    return node


def scaled_profile(cfg: dict, factor: int, families: list[str]) -> dict:
    """The params ``cfg`` (a YAML dict) for a memory measurement: only ``families``, each one's
    episode counts times ``factor``, its compute cut to what still touches all its data."""
    out = {**cfg, "families": {}}
    for name in families:
        fam = dict(cfg["families"][name])
        fam["collect"] = _scale_counts(fam["collect"], factor)
        train = dict(fam["train"])
        train["seeds"] = train["seeds"][:1]
        train["tune"] = {**train["tune"], "n_trials": 0}
        if "ppo" in train:
            train["ppo"] = None
        if "rounds" in train:
            train["rounds"] = {**train["rounds"], "rounds": 1}
        fam["train"] = _cut_steps(train, train["eval_every"])
        fam["evaluate"] = {**fam["evaluate"], "gif": False} if "gif" in fam["evaluate"] else fam["evaluate"]
        out["families"][name] = fam
    return out


def memory_costs(settings: Settings, tmp: Path, env: dict, factor: int, families: list[str]) -> dict:
    """Each stage of ``families`` run directly at the configured data sizes and at ``factor`` times
    them (:func:`scaled_profile`), each in its own fresh copy: wall time, peak RSS, data sizes."""
    import yaml

    from justask.config import load_params

    cfg = yaml.safe_load(settings.params_path.read_text())
    out: dict = {"data_scale": factor, "families": families, "stages": {}}
    for scale in (1, factor):
        log = tmp / f"memory-{scale}.log"
        repo = copy_workspace(settings.root.absolute(), tmp / f"memory-{scale}", env, log)
        (repo / "params.yaml").write_text(yaml.safe_dump(scaled_profile(cfg, scale, families), sort_keys=False))
        load_params(repo / "params.yaml")  # the scaled params pass the schema before anything runs
        for fam in families:
            for stage in STAGES:
                settings.log(f"bench e: justask stage {stage} {fam} at {scale}x the data")
                wall, rss, _ = run_measured([str(BIN / "justask"), "stage", stage, fam], repo, env, log)
                data_in, data_out = stage_data(repo, fam, stage)
                out["stages"].setdefault(f"{stage}@{fam}", {})[f"x{scale}"] = {
                    "wall_s": round(wall, 1), "peak_rss_mib": round(rss, 1), "input_mib": round(data_in, 2),
                    "output_mib": round(data_out, 2)}
        shutil.rmtree(repo, ignore_errors=True)
    for s in out["stages"].values():
        one, many = s["x1"], s[f"x{factor}"]
        grown = many["input_mib"] - one["input_mib"]
        s["rss_mib_per_input_mib"] = round((many["peak_rss_mib"] - one["peak_rss_mib"]) / grown, 2) \
            if grown > 0.5 else None
    return out


def memory_figures(memory: dict) -> list[Figure]:
    k = memory["data_scale"]
    figures = []
    for name, s in memory["stages"].items():
        one, many = s["x1"], s[f"x{k}"]
        slope = s["rss_mib_per_input_mib"]
        figures.append(Figure(
            "e", f"peak RSS {name} at {k}x data", many["peak_rss_mib"], "MiB",
            note=f"1x: {one['peak_rss_mib']:.0f} MiB; data in {one['input_mib']:.1f} -> {many['input_mib']:.1f} MiB, "
                 f"out {one['output_mib']:.1f} -> {many['output_mib']:.1f} MiB"
                 + ("" if slope is None else f"; {slope:.2f} MiB of memory per extra MiB of input")))
    return figures


def run(settings: Settings, with_d: bool, with_e: bool) -> tuple[list[Figure], dict]:
    figures: list[Figure] = []
    details: dict = {}
    with tempfile.TemporaryDirectory(prefix="justask-bench-") as t:
        tmp = Path(t)
        env = bench_env(tmp)
        if with_e and settings.data_scale > 1:
            memory = memory_costs(settings, tmp, env, settings.data_scale,
                                  settings.families or list(settings.params.families))
            details["memory_at_scale"] = memory
            figures += memory_figures(memory)
            with_e = False
        pipe = None if settings.quick or not (with_d or with_e) else pipeline_costs(settings, tmp, env)
        if with_d:
            settings.log("bench d: start-up probes")
            start = startup_costs(settings, tmp, env)
            details["orchestration"] = {"startup": start, "pipeline_test_profile": pipe}
            figures += [Figure("d", "CLI start-up (`justask --help`)", start["cli_help_s"], "s"),
                        Figure("d", "MLflow set-up + one run (existing db)", start["mlflow_existing_db_s"], "s"),
                        Figure("d", "GE context + suite (tiny table)", start["ge_s"], "s"),
                        Figure("d", "Prefect ephemeral flow (warm)", start["prefect_warm_start_s"], "s")]
            if pipe is not None:
                share, parts = overhead_share(start, pipe, recorded_default_seconds(settings))
                details["orchestration"]["overhead"] = parts
                figures += [Figure("d", "no-op `dvc repro`", pipe["dvc_repro_noop_s"], "s", NOOP_TARGET_S, "<="),
                            Figure("d", "orchestration overhead / default pipeline wall", share, "", OVERHEAD_TARGET,
                                   "<=", note="start-ups measured now; pipeline wall time recorded (README)")]
        if with_e and pipe is not None:
            details["memory"] = pipe["stages"]
            for name, s in pipe["stages"].items():
                if name.endswith("@return"):
                    figures.append(Figure("e", f"peak RSS {name}", s["peak_rss_mib"], "MiB",
                                          note=f"data in {s['input_mib']:.2f} MiB, out {s['output_mib']:.2f} MiB"))
    return figures, details


def overhead_share(start: dict, pipe: dict, recorded_by_family: dict[str, float]) -> tuple[float, dict]:
    """Orchestration seconds of one default ``dvc repro`` (every stage's start-up, GE and MLflow
    where a stage uses them, DVC's own time, one Prefect start for the flow) over its recorded
    wall time (``recorded_by_family``: family -> seconds)."""
    families = list(recorded_by_family)
    stages = [f"{s}@{f}" for f in families for s in STAGES]
    first = next(iter(start["stage_imports_s"].values()))
    parts = {
        "stage_startups_s": sum(start["stage_imports_s"].get(s, first) + start["python_s"] for s in stages),
        "ge_s": start["ge_s"] * len(families),
        "mlflow_s": start["mlflow_existing_db_s"] * len(families) * len(MLFLOW_STAGES),
        "dvc_own_s": pipe["dvc_own_s"],
        "prefect_s": start["prefect_warm_start_s"],
    }
    total = sum(parts.values())
    recorded = sum(recorded_by_family.values())
    return total / recorded, parts | {
        "total_s": total, "recorded_default_wall_s": recorded, "recorded_default_wall_by_family_s":
        recorded_by_family,
        "measured_now": ["stage_startups_s", "ge_s", "mlflow_s", "prefect_s",
                         "dvc_own_s (test profile: full dvc repro minus the stages run directly)"],
        "recorded": ["recorded_default_wall_s (README.md Results: return 22 min 40 s, language 68 min 42 s, "
                     "reward 3 min 6 s, 2-core CPU)"],
    }
