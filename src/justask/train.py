"""The one supervised training loop, used by every model and every Optuna trial.

Reads top to bottom: put the relabeled table on the device, sample windows of K steps by index
arithmetic (no Python loop over samples), minimise the action loss with AdamW, evaluate a fixed
validation set every ``eval_every`` steps, keep the weights with the lowest validation loss, stop
early when it stops improving.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from justask.data.atomic import write_text
from justask.data.relabel import StepTable
from justask.models import Spec, build_model, save_checkpoint, write_torch
from justask.registry import register
from justask.stages import StageFailed


def pick_device(pref: str = "auto") -> torch.device:
    if pref == "cuda" or (pref == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("train.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
        return torch.device("cuda")
    return torch.device("cpu")


def data_spec(table: StepTable, meta: dict) -> Spec:
    """Model input spec from the training rows of a relabeled table."""
    train_rows = table.split[table.episode] == 0
    obs = table.observations[train_rows]
    discrete = table.actions.ndim == 1
    return Spec(
        obs_dim=obs.shape[1],
        act_dim=int(table.actions.max()) + 1 if discrete else table.actions.shape[1],
        discrete=discrete,
        max_timestep=int(meta["max_episode_steps"]),
        obs_mean=tuple(float(x) for x in obs.mean(0)),
        obs_std=tuple(float(x) for x in obs.std(0)),
        return_scale=float(max(1.0, meta["ref_max_score"] - meta["ref_min_score"])),
    )


class Steps:
    """A relabeled table on the device, restricted to some episodes, sampled as windows."""

    def __init__(self, table: StepTable, episodes: np.ndarray, device: torch.device,
                 max_rows: int | None = None):
        rows = np.flatnonzero(np.isin(table.episode, episodes))
        if len(rows) == 0:
            raise ValueError("no steps selected for training; check the split and top_fraction")
        if max_rows is not None and len(rows) > max_rows:  # evenly spaced, deterministic subset
            rows = rows[np.linspace(0, len(rows) - 1, max_rows).astype(np.int64)]
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=device)  # noqa: E731
        self.rows = t(rows)
        self.obs, self.actions = t(table.observations), t(table.actions)
        self.rtg, self.timesteps = t(table.rtg), t(table.timesteps)
        self.ep_start = t(table.starts[table.episode])
        self.device = device

    def __len__(self) -> int:
        return len(self.rows)

    def windows(self, ends: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        """Windows of ``k`` steps ending at table rows ``ends``, left-padded at episode starts."""
        idx = ends[:, None] - torch.arange(k - 1, -1, -1, device=self.device)
        mask = idx >= self.ep_start[ends][:, None]
        idx = torch.where(mask, idx, ends[:, None])
        m = mask.unsqueeze(-1)
        act = self.actions[idx]
        return {
            "obs": self.obs[idx] * m,
            "actions": act * (mask if act.ndim == 2 else m),
            "rtg": self.rtg[idx] * mask,
            "timesteps": self.timesteps[idx] * mask,
            "mask": mask,
        }

    def sample(self, gen: torch.Generator, batch: int, k: int) -> dict[str, torch.Tensor]:
        pick = torch.randint(len(self.rows), (batch,), generator=gen, device="cpu").to(self.device)
        return self.windows(self.rows[pick], k)


class InstructionSteps:
    """Hindsight-labelled BabyAI samples (step, instruction) on the device, sampled as windows.

    A sample is one labelled step; its window holds the K steps up to it from the same episode,
    all of which belong to the same label's segment (labels cover steps 0..end). The instruction
    enters as token ids (word encoder) or a precomputed sentence embedding (frozen encoder).

    With ``mirror``, :meth:`sample` reflects a random half of the windows: the same episode in the
    mirror-image room is just as valid a demonstration of the same instruction (the grammar has no
    left/right words), so it doubles the rooms a policy sees without inventing labels.
    """

    def __init__(self, table, split: int, instructions: dict[str, np.ndarray], device: torch.device,
                 max_rows: int | None = None, mirror: bool = False):
        steps, instr = table.samples(split)
        if len(steps) == 0:
            raise ValueError(f"no labelled steps in split {split}; collect more episodes or hold out less")
        if max_rows is not None and len(steps) > max_rows:  # evenly spaced, deterministic subset
            keep = np.linspace(0, len(steps) - 1, max_rows).astype(np.int64)
            steps, instr = steps[keep], instr[keep]
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=device)  # noqa: E731
        self.steps, self.instr = t(steps), t(instr)
        self.rows = torch.arange(len(steps), device=device)
        self.images, self.directions, self.actions = t(table.images), t(table.directions), t(table.actions)
        self.ep_start = t(table.starts[table.episode])
        self.instructions = {k: t(v) for k, v in instructions.items()}  # e.g. tokens (I, L) or sentence (I, 384)
        self.device, self.mirror = device, mirror

    def __len__(self) -> int:
        return len(self.rows)

    def windows(self, samples: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        ends = self.steps[samples]
        idx = ends[:, None] - torch.arange(k - 1, -1, -1, device=self.device)
        mask = idx >= self.ep_start[ends][:, None]
        idx = torch.where(mask, idx, ends[:, None])
        batch = {
            "images": self.images[idx] * mask[..., None, None, None],
            "directions": self.directions[idx] * mask,
            "actions": self.actions[idx] * mask,
            "mask": mask,
        }
        return batch | {k_: v[self.instr[samples]] for k_, v in self.instructions.items()}

    def sample(self, gen: torch.Generator, batch: int, k: int) -> dict[str, torch.Tensor]:
        pick = torch.randint(len(self.rows), (batch,), generator=gen, device="cpu").to(self.device)
        out = self.windows(pick, k)
        if self.mirror:
            out = mirror_windows(out, torch.rand(batch, generator=gen).to(self.device) < 0.5)
        return out


# minigrid's actions: 0 turn left, 1 turn right; the others (forward, pickup, drop, toggle, done)
# are their own mirror images.
TURN_LEFT, TURN_RIGHT = 0, 1


def mirror_windows(batch: dict[str, torch.Tensor], flip: torch.Tensor) -> dict[str, torch.Tensor]:
    """Reflect the rows ``flip`` of a window batch through a north-south mirror of the room.

    In the agent's egocentric 7x7 view (axis 0 runs left to right) a reflection of the world is a
    left-right flip of the view; turning left becomes turning right; the absolute direction
    (0 east, 1 south, 2 west, 3 north) swaps east and west. Padded steps stay zero.
    """
    f = flip[:, None]
    mask = batch["mask"]
    actions = batch["actions"]
    swapped = torch.where(actions == TURN_LEFT, TURN_RIGHT, torch.where(actions == TURN_RIGHT, TURN_LEFT, actions))
    return batch | {
        "images": torch.where(flip[:, None, None, None, None], batch["images"].flip(2), batch["images"]),
        "directions": torch.where(f, (2 - batch["directions"]) % 4, batch["directions"]) * mask,
        "actions": torch.where(f, swapped, actions) * mask,
    }


@dataclass
class FitResult:
    model: torch.nn.Module
    best_val_loss: float
    best_step: int
    steps_run: int
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    samples_per_second: float = 0.0


def evaluate_loss(model, data: Steps, batch: int) -> float:
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


def data_digest(data) -> str:
    """SHA-256 of every tensor a training set holds (cached on the object): the resume key's
    data part, so a checkpoint is never resumed on different data."""
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


def resume_key(kind: str, hp: dict, spec, train, val, **settings) -> str:
    """What a resumable fit depends on: model, hyper-parameters, spec, data and loop settings."""
    desc = json.dumps({"kind": kind, "hp": hp, "spec": repr(spec), "settings": settings,
                       "train": data_digest(train), "val": data_digest(val)}, sort_keys=True, default=str)
    return hashlib.sha256(desc.encode()).hexdigest()


def _load_resume(path: Path | None, key: str) -> dict | None:
    """The saved state of an interrupted (or finished) fit with this key, else None."""
    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file: start over rather than fail the stage
        print(f"train: ignoring unreadable resume checkpoint {path} ({type(e).__name__}); starting over")
        return None
    return state if state.get("key") == key else None


def _cuda_rng(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.empty(0, dtype=torch.uint8)


def fit(
    kind: str,
    hp: dict,
    spec: Spec,
    train: Steps,
    val: Steps,
    *,
    steps: int,
    eval_every: int,
    patience: int,
    seed: int,
    device: torch.device,
    report: Callable[[int, float], None] | None = None,
    log: Callable[[dict], None] | None = None,
    resume: Path | None = None,
) -> FitResult:
    """Train one model; ``report(step, val_loss)`` may raise to stop early (Optuna pruning).

    With ``resume`` (a file path), the full training state (weights, optimizer, schedule, random
    streams, best weights so far, curve) is saved there atomically at every evaluation, and a fit
    with the same settings and data continues from it: a killed run resumes from its last
    evaluation and ends with the same weights as an uninterrupted one.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model(kind, hp, spec).to(device)
    fused = device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"], fused=fused)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    best = (math.inf, 0, None)
    curve: list[dict] = []
    bad_evals, step, done, seconds = 0, 0, False, 0.0
    key = resume_key(kind, hp, spec, train, val, steps=steps, eval_every=eval_every, patience=patience,
                     seed=seed, device=device.type) if resume is not None else ""
    saved = _load_resume(resume, key)
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        gen.set_state(saved["gen"])
        torch.set_rng_state(saved["torch_rng"])
        if device.type == "cuda":
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        best = (saved["best_loss"], saved["best_step"], saved["best_state"])
        curve, bad_evals, step, done, seconds = (saved["curve"], saved["bad_evals"], saved["step"],
                                                 saved["done"], saved["seconds"])
        print(f"train: resuming {kind} seed {seed} from step {step} ({resume})")

    def checkpoint(finished: bool) -> None:
        write_torch(resume, {
            "key": key, "step": step, "done": finished, "seconds": seconds + time.perf_counter() - start,
            "model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
            "gen": gen.get_state(), "torch_rng": torch.get_rng_state(), "cuda_rng": _cuda_rng(device),
            "best_loss": best[0],
            "best_step": best[1], "best_state": best[2], "curve": curve, "bad_evals": bad_evals})

    start = time.perf_counter()
    first = step + 1
    for step in range(first, steps + 1) if not done else ():
        batch = train.sample(gen, hp["batch_size"], model.context)
        with autocast:
            loss = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % eval_every == 0 or step == steps:
            with autocast:
                val_loss = evaluate_loss(model, val, 4096)
            point = {"step": step, "train_loss": loss.item(), "val_loss": val_loss}
            curve.append(point)
            if log:
                log(point)
            if val_loss < best[0] - 1e-5:
                best = (val_loss, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
                bad_evals = 0
            else:
                bad_evals += 1
            if report:
                report(step, val_loss)
            stop = bad_evals >= patience or step == steps
            if resume is not None:
                checkpoint(stop)
            if stop:
                break
    elapsed = time.perf_counter() - start
    if best[2] is not None:
        model.load_state_dict(best[2])
    model.eval()
    return FitResult(model, best[0], best[1], step, curve, seconds + elapsed,
                     (step - first + 1) * hp["batch_size"] / max(elapsed, 1e-9) if not done else 0.0)


CURVE_FIELDS = ["dataset", "model", "seed", "step", "train_loss", "val_loss"]


def curves_csv(rows: list[dict]) -> str:
    """Training curves as CSV (``CURVE_FIELDS``), the ``dvc plots`` source of every family."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in CURVE_FIELDS})
    return buf.getvalue()


def fit_and_save(mlflow, kind, hp, spec, train_data, val_data, steps, tcfg, seed, device, dataset,
                 run_dir: Path, registry_name: str, resume: Path | None = None) -> list[dict]:
    """Fit one seed as a nested MLflow run, save ``model.pt`` and ``curve.csv`` in ``run_dir``,
    register the model as ``registry_name``; returns the curve rows. ``resume``: see :func:`fit`."""
    with mlflow.start_run(run_name=f"{dataset}-{kind}-seed{seed}", nested=True) as run:
        mlflow.log_params({**hp, "seed": seed, "steps": steps, "device": device.type})
        result = fit(kind, hp, spec, train_data, val_data, steps=steps, eval_every=tcfg.eval_every,
                     patience=tcfg.patience, seed=seed, device=device, resume=resume,
                     log=lambda p: mlflow.log_metrics({"val_loss": p["val_loss"], "train_loss": p["train_loss"]},
                                                      step=p["step"]))
        if not np.isfinite(result.best_val_loss):
            raise StageFailed(f"{dataset}/{kind}/seed{seed}: validation loss is not finite; "
                              f"lower the {kind} model's lr in params.yaml or check the relabeled data")
        mlflow.log_metrics({"best_val_loss": result.best_val_loss, "best_step": result.best_step,
                            "train_seconds": result.seconds, "samples_per_second": result.samples_per_second})
        meta = {"dataset": dataset, "seed": seed, "best_val_loss": result.best_val_loss,
                "best_step": result.best_step, "mlflow_run_id": run.info.run_id}
        ckpt = run_dir / "model.pt"
        save_checkpoint(ckpt, kind, hp, spec, result.model, meta)
        rows = [{"dataset": dataset, "model": kind, "seed": seed, **p} for p in result.curve]
        write_text(run_dir / "curve.csv", curves_csv(rows))
        register(mlflow, ckpt, registry_name)
    return rows
