"""collect's ``summary.json``, as relabel and evaluate read it."""

from __future__ import annotations

import json

from justask.errors import StageFailed
from justask.paths import FamilyPaths


def collect_summary(paths: FamilyPaths) -> dict:
    """The summary collect wrote, checked to hold every behaviour's skill rating."""
    try:
        summary = json.loads(paths.collect_summary.read_text())
    except FileNotFoundError:
        raise StageFailed(f"{paths.collect_summary}: missing; run `dvc repro collect@return`") from None
    unrated = sorted(b for b, info in summary.get("behaviours", {}).items()
                     if "rating" not in info or "rating_episodes" not in info)
    if unrated:
        raise StageFailed(f"{paths.collect_summary}: no skill rating for {unrated} (written by an older collect); "
                          "run `dvc repro collect@return`")
    return summary
