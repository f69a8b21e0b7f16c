"""The Prefect flow: the DVC pipeline's stages, in DAG order, as Prefect tasks.

Every task runs ``dvc repro --single-item <stage>@<family>``, so DVC still decides what is stale,
records ``dvc.lock`` and caches outputs; Prefect adds retries, logs, parameters and schedules
(the ``nightly`` deployment in prefect.yaml). No stage logic lives here.

Run it once, on a temporary local API (no server needed):

    .venv/bin/python flows/pipeline.py                  # the active profile (params.yaml)
    .venv/bin/python flows/pipeline.py --profile test   # switch params.yaml to the test profile

Profiles: if ``profile`` differs from the ``profile:`` key of the current params.yaml, the flow
first runs ``justask profile <profile>``, which REWRITES params.yaml from profiles/<profile>.yaml.
DVC sees that as a parameter change and reruns the affected stages (outputs of a profile that
ran before come back from DVC's run cache). The rewritten params.yaml stays in the workspace.

Tasks run one after another, never in parallel: one ``dvc`` process per workspace at a time. A run
holds ``.dvc/tmp/pipeline.lock`` (as ``make run`` does), so a second run on the same checkout stops
at once with a message instead of racing the first for DVC's lock and the outputs.

Retries: collect and evaluate are retried after a failure that may be transient (a crash, a killed
worker, an OSError, DVC busy), never after a deterministic one, which ``justask stage`` reports with
exit status 2 (bad params, a failed data check, damaged input): rerunning would fail the same way.
"""

import argparse
import logging
import os
import re
import shlex
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from justask.console import DETERMINISTIC_EXIT
from justask.lock import LOCK, PipelineBusy, pipeline_lock  # noqa: F401 (LOCK: re-exported)
from justask.settings import STAGES

REPO = Path(__file__).resolve().parents[1]
# The venv's bin dir: dvc and the `justask` command that dvc.yaml's stage commands call.
BIN = Path(sys.executable).parent

# Collect and evaluate step environments in worker processes; retry them on a transient failure.
# Validate/relabel/train are deterministic: a failure there is a real one, never retried.
RETRIES: dict[str, int] = {"collect": 2, "evaluate": 1}
RETRY_DELAY_SECONDS = 10
TAIL_LINES = 40
# How `dvc repro` reports the status of a stage command that failed.
_DVC_CMD_FAILED = re.compile(r"failed to run: .*, exited with (-?\d+)")


class StageError(RuntimeError):
    """A subprocess (dvc or justask) exited non-zero; the message ends with its last lines.

    ``stage_status`` is the exit status of the stage command itself when ``dvc repro`` reported it
    (dvc exits 255 whatever the command returned), else the subprocess's own status.
    """

    def __init__(self, message: str, status: int, stage_status: int | None = None):
        super().__init__(message)
        self.status = status
        self.stage_status = status if stage_status is None else stage_status

    @property
    def deterministic(self) -> bool:
        return self.stage_status == DETERMINISTIC_EXIT


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry unless the failure is a deterministic stage failure."""
    exc = state.data if isinstance(state.data, BaseException) else None
    return not (isinstance(exc, StageError) and exc.deterministic)


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # called outside a flow/task run (tests, scripts)
        return logging.getLogger("justask.flow")


def _exe(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    env["PYTHONUNBUFFERED"] = "1"  # stream stage output line by line
    return env


def run_logged(cmd: list[str], cwd: Path, logger: logging.Logger | logging.LoggerAdapter) -> None:
    """Run ``cmd`` (an argument list, no shell), logging each output line as it comes.

    Raises :class:`StageError` with the exit status and the last lines on a non-zero exit.
    """
    logger.info("$ %s  (in %s)", shlex.join(cmd), cwd)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with subprocess.Popen(
        cmd, cwd=cwd, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if line:
                tail.append(line)
                logger.info("%s", line)
    if proc.returncode != 0:
        reported = [int(m.group(1)) for line in tail if (m := _DVC_CMD_FAILED.search(line))]
        raise StageError(
            f"`{shlex.join(cmd)}` exited with status {proc.returncode}; last lines:\n"
            + "\n".join(tail),
            proc.returncode, reported[-1] if reported else None,
        )


def current_profile(root: Path) -> str | None:
    params = root / "params.yaml"
    if not params.exists():
        return None
    data = yaml.safe_load(params.read_text()) or {}
    return data.get("profile")


def configured_families(root: Path) -> list[str]:
    """The families params.yaml configures, in its order (what dvc.yaml's `foreach` runs)."""
    data = yaml.safe_load((root / "params.yaml").read_text()) or {}
    return list(data.get("families") or {})


def dvc_command(stage: str, family: str, force: bool = False) -> list[str]:
    cmd = [_exe("dvc"), "repro", "--single-item"]
    if force:
        cmd.append("--force")
    return [*cmd, f"{stage}@{family}"]


@task(name="apply-profile", cache_policy=NO_CACHE)
def apply_profile(profile: str, workdir: str) -> bool:
    """Make ``profile`` the active params.yaml; returns whether params.yaml was rewritten."""
    root = Path(workdir)
    logger = _logger()
    active = current_profile(root)
    if active == profile:
        logger.info("profile %r is already active", profile)
        return False
    logger.info("switching params.yaml from profile %r to %r", active, profile)
    run_logged([_exe("justask"), "profile", profile], root, logger)
    return True


@task(name="dvc-repro", cache_policy=NO_CACHE, task_run_name="{stage}@{family}")
def dvc_repro(stage: str, family: str, workdir: str, force: bool = False) -> float:
    """Run one DVC stage (if stale, or always with ``force``); returns its wall seconds."""
    t0 = time.perf_counter()
    run_logged(dvc_command(stage, family, force), Path(workdir), _logger())
    return round(time.perf_counter() - t0, 2)


def stage_task(stage: str):
    return dvc_repro.with_options(
        name=f"dvc-repro-{stage}",
        retries=RETRIES.get(stage, 0),
        retry_delay_seconds=RETRY_DELAY_SECONDS,
        retry_condition_fn=retry_if_transient,
    )


@flow(name="justask-pipeline")
def justask_pipeline(
    profile: str = "default",
    families: list[str] | None = None,
    force: bool = False,
    workdir: str | None = None,
) -> dict[str, float]:
    """Run collect -> validate -> relabel -> train -> evaluate for each family with DVC.

    profile: profile to run (profiles/<name>.yaml); switches params.yaml if it is not active.
    families: experiment families to run (default: every family the profile configures).
    force: rerun stages even when DVC finds them up to date.
    workdir: the repository to run in (default: the one holding this file).
    Returns wall seconds per stage, e.g. {"collect@return": 12.3, ...}.
    """
    root = Path(workdir).resolve() if workdir else REPO
    timings: dict[str, float] = {}
    with pipeline_lock(root):
        apply_profile(profile, str(root))
        for family in families or configured_families(root):
            for stage in STAGES:  # sequential: one dvc process at a time
                timings[f"{stage}@{family}"] = stage_task(stage)(stage, family, str(root), force)
    logger = _logger()
    logger.info(
        "wall time per stage:\n%s",
        "\n".join(f"  {name:<22} {secs:9.1f} s" for name, secs in timings.items()),
    )
    return timings


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description="Run the justask pipeline as a Prefect flow.")
    parser.add_argument("--profile", default=None,
                        help="profile to run (default: the active one in params.yaml)")
    parser.add_argument("--family", action="append", dest="families",
                        help="experiment family (repeatable; default: every family the profile configures)")
    parser.add_argument("--force", action="store_true", help="rerun up-to-date stages too")
    parser.add_argument("--workdir", default=None, help="repository to run in")
    args = parser.parse_args(argv)
    root = Path(args.workdir).resolve() if args.workdir else REPO
    profile = args.profile or current_profile(root) or "default"
    try:  # fail before starting Prefect if another run holds the lock (the flow takes it again)
        with pipeline_lock(root):
            pass
    except PipelineBusy as e:
        sys.exit(f"flows/pipeline.py: {e}")
    return justask_pipeline(profile=profile, families=args.families, force=args.force, workdir=str(root))


if __name__ == "__main__":
    main()
