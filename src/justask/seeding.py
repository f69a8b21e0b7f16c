"""One place for randomness: named seed streams and deterministic torch."""

from __future__ import annotations

import os
import random
import zlib

import numpy as np


def stream_seeds(base_seed: int, stream: str, n: int) -> list[int]:
    """``n`` 31-bit seeds for a named stream, e.g. ``collect/expert``: independent across streams,
    identical across runs, machines and worker counts."""
    ss = np.random.SeedSequence([base_seed, zlib.crc32(stream.encode())])
    return [int(s) for s in ss.generate_state(n, dtype=np.uint32) >> 1]


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; make torch deterministic (CPU and, where used, CUDA)."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (libraries that still use the global RNG)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
