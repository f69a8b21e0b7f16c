"""One pipeline run per checkout: an OS file lock on ``.dvc/tmp/pipeline.lock``.

DVC locks the repository only while it plans and commits, not while a stage's command runs, so two
``dvc repro`` started together can both run stages and overwrite each other's outputs. ``make run``
(through ``justask locked``) and the Prefect flow hold this lock for the whole run; a second run
stops at once with a message. The kernel frees the lock when its holder exits, even when killed.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = Path(".dvc") / "tmp" / "pipeline.lock"  # relative to the repository root


class PipelineBusy(RuntimeError):
    """Another pipeline run holds the repository's pipeline lock."""


@contextmanager
def pipeline_lock(root: Path) -> Iterator[None]:
    """Hold ``root/.dvc/tmp/pipeline.lock``; raise :class:`PipelineBusy` at once if another run holds it."""
    path = root / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "holder unknown"
            raise PipelineBusy(
                f"another pipeline run ({holder}) holds {path}: wait for it to finish, or stop it, and "
                "run again. Two runs on one checkout would race for DVC's lock and overwrite each "
                "other's outputs; to run two at once use two clones.") from None
        f.truncate(0)
        f.write(f"pid {os.getpid()}: {shlex.join(sys.argv)}\n")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)
