"""Pictures of results: rollout GIFs and matplotlib figures, written atomically."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from justask.io import atomic_write


def write_gif(frames: list[np.ndarray], path: Path, duration_ms: int = 40) -> Path:
    """Write RGB ``frames`` as a looping GIF, atomically."""
    atomic_write(path, lambda p: iio.imwrite(p, np.stack(frames), extension=".gif", duration=duration_ms, loop=0))
    return path


def figure_to(path: Path, fig, metadata: dict | None = None) -> Path:
    """Save a matplotlib figure as PNG atomically and close it; ``metadata``: PNG text chunks
    (``{"Software": None}`` drops matplotlib's version, for bytes that only the picture decides)."""
    import matplotlib.pyplot as plt

    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight", metadata=metadata))
    plt.close(fig)
    return path
