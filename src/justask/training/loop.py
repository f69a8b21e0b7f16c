"""The one supervised training loop, used by every model of every family and every Optuna trial.

Reads top to bottom: build the model, sample batches of windows from the training data, minimise
the model's loss with AdamW under a warm-up + cosine schedule, evaluate a fixed validation set
every ``eval_every`` steps, keep the weights with the lowest validation loss (and, apart, the last
ones), stop early when it stops improving. The loop knows nothing of families, files or tracking: what to train comes in
as a model factory and typed settings; saving and logging are the caller's (see
:mod:`justask.training.runs`), resuming is :mod:`justask.training.resume`'s.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from justask.training.resume import FitState, Resume


class Batches(Protocol):
    """Training or validation data: ``rows`` (what a validation pass iterates over), ``windows``
    (the batch of given rows) and ``sample`` (a random batch), e.g. :class:`justask.steps.Steps`."""

    rows: torch.Tensor

    def __len__(self) -> int: ...

    def windows(self, rows: torch.Tensor, k: int) -> dict[str, torch.Tensor]: ...

    def sample(self, gen: torch.Generator, batch: int, k: int) -> dict[str, torch.Tensor]: ...


@dataclass(frozen=True)
class Optimisation:
    """How a model is optimised: AdamW's learning rate and weight decay, the batch size, the steps."""

    lr: float
    weight_decay: float
    batch_size: int
    steps: int


@dataclass(frozen=True)
class Loop:
    """How the loop runs: validation every ``eval_every`` steps, ``val_batch`` rows per validation
    pass, early stop after ``patience`` evaluations without improvement, the seed and the device."""

    eval_every: int
    patience: int
    seed: int
    device: torch.device
    val_batch: int = 4096


@dataclass
class FitResult:
    model: torch.nn.Module
    best_val_loss: float
    best_step: int
    steps_run: int
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    samples_per_second: float = 0.0
    last_state: dict | None = None  # the weights at the last step run ("last", against the selected "best")


def evaluate_loss(model, data: Batches, batch: int) -> float:
    """Mean validation loss over every row of ``data`` (deterministic, no sampling)."""
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), batch):
            ends = data.rows[i:i + batch]
            total += float(model.loss(data.windows(ends, model.context))) * len(ends)
            n += len(ends)
    model.train()
    return total / max(n, 1)


def fit(
    build: Callable[[], torch.nn.Module],
    train: Batches,
    val: Batches,
    opt_cfg: Optimisation,
    loop: Loop,
    *,
    report: Callable[[int, float], None] | None = None,
    log: Callable[[dict], None] | None = None,
    resume: Resume | None = None,
) -> FitResult:
    """Train the model ``build()`` returns; ``report(step, val_loss)`` may raise to stop early
    (Optuna pruning). With ``resume``, the full training state is saved at every evaluation and a
    fit with the same settings and data continues from it (see :mod:`justask.training.resume`)."""
    torch.manual_seed(loop.seed)
    gen = torch.Generator().manual_seed(loop.seed)
    device, steps = loop.device, opt_cfg.steps
    model = build().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay,
                            fused=device.type == "cuda")
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    state = FitState()
    if resume is not None:
        resume.begin(model, opt_cfg, loop, train, val)
        state = resume.restore(model, opt, sched, gen, device) or state

    start = time.perf_counter()
    first = state.step + 1
    for step in range(first, steps + 1) if not state.done else ():
        batch = train.sample(gen, opt_cfg.batch_size, model.context)
        with autocast:
            loss = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        state.step = step
        if step % loop.eval_every == 0 or step == steps:
            with autocast:
                val_loss = evaluate_loss(model, val, loop.val_batch)
            point = {"step": step, "train_loss": loss.item(), "val_loss": val_loss}
            state.curve.append(point)
            if log:
                log(point)
            if val_loss < state.best_loss - 1e-5:
                state.best_loss, state.best_step = val_loss, step
                state.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                state.bad_evals = 0
            else:
                state.bad_evals += 1
            if report:
                report(step, val_loss)
            state.done = state.bad_evals >= loop.patience or step == steps
            if resume is not None:
                resume.save(state, time.perf_counter() - start, model, opt, sched, gen, device)
            if state.done:
                break
    elapsed = time.perf_counter() - start
    last_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    ran = state.step - first + 1
    return FitResult(model, state.best_loss, state.best_step, state.step, state.curve, state.seconds + elapsed,
                     ran * opt_cfg.batch_size / max(elapsed, 1e-9) if ran > 0 else 0.0, last_state)
