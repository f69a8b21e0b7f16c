"""One pipeline run per checkout: a file lock (``filelock``) on ``.dvc/tmp/pipeline.lock``.

DVC locks the repository only while it plans and commits, not while a stage's command runs, so two
``dvc repro`` started together can both run stages and overwrite each other's outputs. ``make run``
(through ``justask locked``) and the Prefect flow hold this lock for the whole run; a second run
stops at once with a message naming the holder, which the lock file holds while it is taken. The
operating system frees the lock when its holder exits, even when killed.
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


@contextmanager
def pipeline_lock(root: Path) -> Iterator[None]:
    """Hold ``root/.dvc/tmp/pipeline.lock``; raise :class:`PipelineBusy` at once if another run holds it."""
    path = root / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = path.read_text().strip() if path.exists() else ""
        raise PipelineBusy(
            f"another pipeline run ({holder or 'holder unknown'}) holds {path}: wait for it to finish, or stop it, "
            "and run again. Two runs on one checkout would race for DVC's lock and overwrite each "
            "other's outputs; to run two at once use two clones.") from None
    try:
        path.write_text(f"pid {os.getpid()}: {shlex.join(sys.argv)}\n")
        yield
    finally:
        path.write_text("")
        lock.release()
