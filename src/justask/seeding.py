"""One place for randomness: named seed streams, frozen evaluation seeds and deterministic torch."""

from __future__ import annotations

import json
import os
import random
import zlib
from pathlib import Path

import numpy as np

from justask.errors import StageFailed


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


def held_out_seeds(path: Path, n: int, collect_seeds: set[int]) -> list[int]:
    """The first ``n`` frozen evaluation seeds of ``path`` (``{"seeds": [...]}``), checked disjoint
    from the seeds collection used."""
    try:
        seeds = json.loads(Path(path).read_text())["seeds"]
    except FileNotFoundError:
        raise StageFailed(f"{path}: missing; restore the frozen inputs with `make data` (dvc pull data.dvc)") from None
    if len(seeds) < n:
        raise StageFailed(f"{path}: holds {len(seeds)} seeds but evaluate.episodes asks for {n}; "
                          "lower evaluate.episodes or add seeds to the file")
    overlap = set(seeds[:n]) & collect_seeds
    if overlap:
        raise StageFailed(f"{path}: evaluation seeds {sorted(overlap)[:5]} were used by collect; "
                          "evaluation must run on held-out seeds")
    return [int(s) for s in seeds[:n]]
