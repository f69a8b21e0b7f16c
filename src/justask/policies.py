"""Fitting return-conditioned policies (:mod:`justask.models`) on a relabeled step table: what the
train stages of every family that asks for a return share.

Per model kind: the episodes it learns from (%BC keeps the top fraction by return) and the
condition it reads (return-to-go, or the behaviour's skill label), Optuna first when the model is
return-conditioned and ``tune: true``, then one tracked, saved and registered fit per training seed
(:func:`justask.training.runs.fit_and_save`), keeping the selected and the last weights and the
conditioning gap (:func:`conditioning_gap`) of every conditioned model.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from justask.models import CONDITIONED, Spec, candidate, condition_of
from justask.paths import FamilyPaths
from justask.registry import policy_entry
from justask.settings import FitConfig, PolicyConfig
from justask.steps import Steps, StepTable
from justask.training.checkpoints import provenance, save_checkpoint
from justask.training.loop import Loop
from justask.training.resume import Resume
from justask.training.runs import fit_and_save
from justask.training.tune import tune


def episodes_for(kind: str, table: StepTable, split: int, top_fraction: float) -> np.ndarray:
    """Episodes a model trains (split 0) or validates (split 1) on; %BC keeps the top fraction
    of each split by return."""
    eps = np.flatnonzero(table.split == split)
    if kind != "pct_bc":
        return eps
    keep = max(1, int(round(top_fraction * len(eps))))
    return np.sort(eps[np.argsort(-table.returns[eps], kind="stable")][:keep])


def policy_data(kind: str, table: StepTable, spec: Spec, device: torch.device, top_fraction: float,
                val_rows: int | None, only: np.ndarray | None = None,
                sampling: str = "step") -> tuple[Spec, Steps, Steps]:
    """What model ``kind`` trains on: its spec (a skill rank in [0, 1] enters unscaled), and its
    training and validation windows holding the condition it reads (``only``: a subset of the
    episodes, e.g. an oracle filter in a benchmark; ``sampling``: how training batches are drawn,
    :func:`justask.steps.row_weights`; validation stays per step: a validation set weighted like
    training rests on its few rare episodes and stops training early, benchmarks/README.md)."""
    condition = condition_of(kind)
    if condition == "skill":
        spec = replace(spec, return_scale=1.0)

    def steps(split: int, max_rows: int | None) -> Steps:
        eps = episodes_for(kind, table, split, top_fraction)
        return Steps(table, eps if only is None else np.intersect1d(eps, only), device, max_rows=max_rows,
                     condition=condition, sampling=sampling if split == 0 else "step")

    return spec, steps(0, None), steps(1, val_rows)


def conditioning_gap(model: torch.nn.Module, val: Steps, batch: int = 4096, seed: int = 0) -> float:
    """How much a conditioned model reads its condition: the validation loss with each window's
    condition swapped for another validation row's, minus the true validation loss (0: ignored).

    The swap keeps a window's shape: its return-to-go is moved by a constant so that its last step
    reads the donor row's value (for a constant condition, such as a skill label, that is the
    donor's label); padded steps stay 0. For a one-step model this is a row shuffle."""
    gen = torch.Generator().manual_seed(seed)
    donors = val.rows[torch.randperm(len(val.rows), generator=gen).to(val.rows.device)]
    model.eval()
    true = swapped = 0.0
    with torch.no_grad():
        for i in range(0, len(val), batch):
            ends = val.rows[i:i + batch]
            w = val.windows(ends, model.context)
            true += float(model.loss(w)) * len(ends)
            shift = val.rtg[donors[i:i + batch]] - w["rtg"][:, -1]
            w["rtg"] = (w["rtg"] + shift[:, None]) * w["mask"]
            swapped += float(model.loss(w)) * len(ends)
    return (swapped - true) / max(len(val), 1)


def fit_policy(mlflow, *, paths: FamilyPaths, dataset: str, folder: str, kind: str, mcfg: PolicyConfig,
               table: StepTable, spec: Spec, cfg: FitConfig, seed: int, device: torch.device, profile: str,
               register_as: str, source: dict) -> tuple[dict, list[dict]]:
    """Tune (when asked) and fit model ``kind`` on every seed of ``cfg.seeds``, saving each under
    ``paths.train/folder/kind/seed<k>/``; returns the hyper-parameters used and the curve rows.
    ``dataset`` labels the runs, checkpoints and curves; ``register_as`` names the registered model;
    ``source`` (``config`` and ``data`` digests) completes each checkpoint's provenance."""
    family = paths.family
    spec, train, val = policy_data(kind, table, spec, device, mcfg.top_fraction, cfg.val_rows,
                                   sampling=mcfg.sampling)
    measure = None if condition_of(kind) == "none" else (
        lambda model: {"conditioning_gap": round(conditioning_gap(model, val, cfg.val_batch), 6)})
    curves: list[dict] = []
    with mlflow.start_run(run_name=f"{family}-{dataset}-{kind}"):
        mlflow.set_tags({"family": family, "dataset": dataset, "model": kind, "profile": profile})
        hp = mcfg.hp
        if mcfg.tune and kind in CONDITIONED and cfg.tune.n_trials > 0:
            hp, _ = tune(f"{family}-{dataset}-{kind}", hp, partial(candidate, kind, spec), train, val, cfg=cfg,
                         steps=mcfg.steps, seed=seed, device=device, mlflow=mlflow,
                         storage_path=paths.root / "artifacts" / "optuna" / f"{family}-{dataset}-{kind}")
        for s in cfg.seeds:
            build, optimisation = candidate(kind, spec, hp, mcfg.steps)
            curves += fit_and_save(
                mlflow, run_name=f"{dataset}-{kind}-seed{s}", label={"dataset": dataset, "model": kind, "seed": s},
                hp=hp, build=build, train=train, val=val, optimisation=optimisation,
                loop=Loop(cfg.eval_every, cfg.patience, s, device, cfg.val_batch),
                save=partial(_save, kind, hp, spec, provenance(family, dataset, kind, **source)),
                run_dir=paths.run_dir(folder, kind, s),
                meta={"dataset": dataset, "seed": s}, register_as=register_as, entry=policy_entry(spec),
                resume=Resume(paths.resume_file(folder, kind, s), {"kind": kind, "hp": hp, "spec": repr(spec)}),
                fix=f"lower the {kind} model's lr in params.yaml or check the relabeled data",
                measure=measure, keep_last=True)
    return hp, curves


def _save(kind: str, hp: dict, spec: Spec, prov: dict, path: Path, model: torch.nn.Module, meta: dict) -> None:
    save_checkpoint(path, kind, hp, spec, model, meta, prov)
