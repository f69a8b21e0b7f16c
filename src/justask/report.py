"""Formatting shared by the families' result tables (``justask results <family>``)."""

from __future__ import annotations

import math

MISSING = "[dim]–[/]"


def num(x: float | None, digits: int = 0) -> str:
    """``x`` with ``digits`` decimals; ``?`` for a missing or NaN value."""
    return "?" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"
