"""Errors a user can act on: each message names the file or field, what was found and the fix.

``justask stage`` turns any of them into a message and exit status 2 (no traceback), so the
Prefect flow knows a rerun would fail the same way and does not retry.
"""

from __future__ import annotations


class StageFailed(RuntimeError):
    """A stage found a problem it reports to the user (non-zero exit, no traceback)."""


class ParamsError(ValueError):
    """params.yaml is unreadable or invalid; the message names the file, field and fix."""


class DatasetError(ValueError):
    """A dataset on disk is missing, unreadable or not what the pipeline expects."""


class CheckpointError(ValueError):
    """A model file is unreadable, from another model family, or of another shape than expected."""


USER_ERRORS = (StageFailed, ParamsError, DatasetError, CheckpointError)
