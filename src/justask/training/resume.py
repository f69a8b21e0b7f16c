"""Resuming a killed fit: its full state saved atomically at every evaluation, outside DVC's outputs.

A :class:`Resume` is one file (``artifacts/checkpoints/<family>/...``; DVC deletes a stage's
outputs before rerunning it, so these live elsewhere) and the *key* of the fit it belongs to: the
model's architecture and initial weights, the optimisation and loop settings, the caller's
description and a digest of every tensor of the training and validation data. A saved state is
restored only under the same key, so a checkpoint is never resumed with other settings or data,
and a fit that resumes ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from justask.training.checkpoints import write_torch


@dataclass
class FitState:
    """What the loop carries from one evaluation to the next (besides model, optimiser, schedule
    and random streams)."""

    step: int = 0
    done: bool = False
    seconds: float = 0.0  # training time before this process (the resumed part)
    best_loss: float = math.inf
    best_step: int = 0
    best_state: dict | None = None
    curve: list[dict] = field(default_factory=list)
    bad_evals: int = 0


def data_digest(data) -> str:
    """SHA-256 of every tensor a data object holds (cached on the object): the resume key's data part."""
    cached = getattr(data, "_digest", None)
    if cached is None:
        h = hashlib.sha256()
        for name, value in sorted(vars(data).items()):
            tensors = value.items() if isinstance(value, dict) else [("", value)]
            for sub, t in sorted(tensors, key=lambda kv: kv[0]):
                if isinstance(t, torch.Tensor):
                    h.update(f"{name}.{sub}:{t.dtype}:{tuple(t.shape)}".encode())
                    h.update(t.detach().cpu().contiguous().numpy().tobytes())
        cached = data._digest = h.hexdigest()
    return cached


def _weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _cuda_rng(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.empty(0, dtype=torch.uint8)


@dataclass
class Resume:
    """The resume file of one fit; ``identity`` describes it beyond what the model shows (e.g. the
    model kind, its hyper-parameters and the data spec)."""

    path: Path
    identity: dict[str, Any] = field(default_factory=dict)
    key: str = ""

    def begin(self, model: torch.nn.Module, opt_cfg, loop, train, val) -> None:
        """Fix the key, from the freshly built model (before any step) and everything else the fit depends on."""
        desc = {"identity": self.identity, "model": repr(model), "init": _weights_digest(model),
                "optimisation": asdict(opt_cfg), "loop": {**asdict(loop), "device": loop.device.type},
                "train": data_digest(train), "val": data_digest(val)}
        self.key = hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()

    def restore(self, model, opt, sched, gen: torch.Generator, device: torch.device) -> FitState | None:
        """Load the saved state of this fit into the objects given; None if there is none (or an
        unreadable one, or one of another fit)."""
        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # a torn or foreign file: start over rather than fail the stage
            print(f"train: ignoring unreadable resume checkpoint {self.path} ({type(e).__name__}); starting over")
            return None
        if saved.get("key") != self.key:
            return None
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        gen.set_state(saved["gen"])
        torch.set_rng_state(saved["torch_rng"])
        if device.type == "cuda":
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        state = FitState(**saved["state"])
        print(f"train: resuming from step {state.step} ({self.path})")
        return state

    def save(self, state: FitState, seconds_here: float, model, opt, sched, gen: torch.Generator,
             device: torch.device) -> None:
        """Write the state after an evaluation atomically (``seconds_here``: trained in this process)."""
        write_torch(self.path, {
            "key": self.key, "state": {**vars(state), "seconds": state.seconds + seconds_here},
            "model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
            "gen": gen.get_state(), "torch_rng": torch.get_rng_state(), "cuda_rng": _cuda_rng(device)})
