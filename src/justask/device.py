"""Where models train and act: the CUDA device when asked for (or, with ``auto``, when one is
visible), else the CPU."""

from __future__ import annotations

import torch


def pick_device(pref: str = "auto") -> torch.device:
    if pref == "cuda" or (pref == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("train.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
        return torch.device("cuda")
    return torch.device("cpu")
