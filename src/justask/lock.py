"""One pipeline run per checkout, and one stage process per family: file locks (``filelock``)
under ``.dvc/tmp/``.

DVC locks the repository only while it plans and commits, not while a stage's command runs, so two
``dvc repro`` started together can both run stages and overwrite each other's outputs. ``make run``
(through ``justask locked``) and the Prefect flow hold ``pipeline.lock`` for the whole run; every
``justask stage`` command (what DVC and the flow run, or a user by hand) holds
``stage-<family>.lock`` while it runs, so two stage processes never write one family's outputs or
Optuna study at once. A second holder stops at once with a message naming the first, which the
lock file holds while it is taken. The operating system frees a lock when its holder exits, even
when killed.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

LOCK = Path(".dvc") / "tmp" / "pipeline.lock"  # relative to the repository root


class PipelineBusy(RuntimeError):
    """Another pipeline run holds the repository's pipeline lock."""


def pipeline_lock(root: Path):
    """Hold ``root/.dvc/tmp/pipeline.lock``; raise :class:`PipelineBusy` at once if another run holds it."""
    return _exclusive(root / LOCK, "another pipeline run ({holder}) holds {path}: wait for it to finish, or stop it, "
                                   "and run again. Two runs on one checkout would race for DVC's lock and overwrite "
                                   "each other's outputs; to run two at once use two clones.")


def stage_lock(root: Path, family: str):
    """Hold ``root/.dvc/tmp/stage-<family>.lock`` while one stage of ``family`` runs; raise
    :class:`PipelineBusy` at once if another stage process of that family holds it."""
    return _exclusive(root / LOCK.with_name(f"stage-{family}.lock"),
                      f"another stage process of {family} ({{holder}}) holds {{path}}: wait for it to finish, or stop "
                      "it, and run again. Two stage processes on one family's outputs would overwrite each other's "
                      "files and Optuna trials; to run two at once use two clones.")


@contextmanager
def _exclusive(path: Path, busy: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = path.read_text().strip() if path.exists() else ""
        raise PipelineBusy(busy.format(holder=holder or "holder unknown", path=path)) from None
    try:
        path.write_text(f"pid {os.getpid()}: {shlex.join(sys.argv)}\n")
        yield
    finally:
        path.write_text("")
        lock.release()
