"""train (improve): the in-context transformer on the learning histories (``ad``: Algorithm
Distillation), on the same histories with hindsight labels (``hindsight``) and, as the control, on
the converged episodes only (``ed``: expert distillation), each on every training seed by the one
training loop; Optuna first when ``model.tune``. The fits of every model run ``scale.workers`` at a
time on CPU, one thread each. Every fit is an MLflow run and a version of the registered model
``justask-improve-<model>``; checkpoints ``artifacts/improve/train/<model>/seed<k>/model.pt``
record their provenance, which evaluate and ``justask ask improve`` check."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from justask.config import Params
from justask.device import pick_device
from justask.errors import StageFailed
from justask.executors import run_all
from justask.io import write_json, write_text
from justask.paths import family_paths
from justask.registry import Entry, create_registered_model
from justask.seeding import seed_everything
from justask.tracking import setup_mlflow
from justask.training.loop import Loop
from justask.training.resume import Resume
from justask.training.runs import curves_csv, fit_and_save
from justask.training.tune import tune

from .contexts import NO_ACTION, Contexts, Windows
from .model import RoomSpec, candidate, model_provenance, save_model


def registry_entry() -> Entry:
    """How in-context models enter MLflow's registry: the model-from-code file beside this one;
    one row per step of a history, in order (``registered_policy.InContextModel``)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema([ColSpec("long", "row"), ColSpec("long", "col"), ColSpec("long", "prev_action"),
                     ColSpec("double", "prev_reward"), ColSpec("long", "timestep")])
    example = pd.DataFrame({"row": [4, 3], "col": [4, 4], "prev_action": [NO_ACTION, 1], "prev_reward": [0.0, 0.0],
                            "timestep": [0, 1]})
    return Entry(Path(__file__).with_name("registered_policy.py"), example,
                 ModelSignature(inputs, Schema([TensorSpec(np.dtype(np.int64), (-1,))])))


@dataclass(frozen=True)
class FitJob:
    """One training seed of one model: what a pool process needs to fit it (all picklable)."""

    params: Params
    root: Path
    name: str
    hp: dict
    seed: int
    provenance: dict  # what the checkpoint records it was trained for and on (model_provenance)
    parent: tuple[str, str]  # the model's MLflow run (experiment id, run id)


def _windows(params: Params, root: Path, name: str, device: torch.device) -> tuple[Windows, Windows]:
    cfg = params.family("improve").train
    path = family_paths("improve", root).relabeled(cfg.models[name])
    try:
        ctx, _ = Contexts.load(path)
        return Windows(ctx, 0, device), Windows(ctx, 1, device, max_rows=cfg.val_rows)
    except (FileNotFoundError, ValueError) as e:
        raise StageFailed(f"{path}: {e}") from None


def fit_seed(job: FitJob) -> list[dict]:
    """Fit, save and register one seed (in this process or a pool's); returns its curve rows."""
    fam = job.params.family("improve")
    cfg = fam.train
    device = pick_device(cfg.device)
    if device.type == "cpu":
        # A small model (about 50k weights): a second thread buys little, and under load it made a
        # step 3x slower (benchmarks/README.md); one thread also keeps the bytes independent of the
        # machine's core count, and lets two seeds train at once on two cores.
        torch.set_num_threads(1)
    mlflow = setup_mlflow(job.params.tracking, job.root)
    paths = family_paths("improve", job.root)
    data = cfg.models[job.name]
    spec = RoomSpec(size=fam.env.size, horizon=fam.env.max_episode_steps)
    train_data, val_data = _windows(job.params, job.root, job.name, device)
    build, optimisation = candidate(spec, job.hp, cfg.steps(job.name))
    return fit_and_save(
        mlflow, run_name=f"improve-{job.name}-seed{job.seed}",
        label={"dataset": data, "model": job.name, "seed": job.seed}, hp=job.hp, build=build, train=train_data,
        val=val_data, optimisation=optimisation,
        loop=Loop(cfg.eval_every, cfg.patience, job.seed, device, cfg.val_batch),
        save=partial(save_model, job.hp, spec, job.provenance),
        run_dir=paths.train / job.name / f"seed{job.seed}", meta={"model": job.name, "seed": job.seed},
        register_as=f"justask-improve-{job.name}", entry=registry_entry(),
        resume=Resume(paths.resume_file(data, job.name, job.seed), {"hp": job.hp, "spec": repr(spec)}),
        fix="lower families.improve.train.model.lr", parent=job.parent)


def train(params: Params, root: Path = Path(".")) -> None:
    fam = params.family("improve")
    cfg, mcfg = fam.train, fam.train.model
    paths = family_paths("improve", root)
    device = pick_device(cfg.device)
    seed_everything(params.seed)
    if device.type == "cpu":
        torch.set_num_threads(1)  # as each fit (fit_seed)
    mlflow = setup_mlflow(params.tracking, root)
    spec = RoomSpec(size=fam.env.size, horizon=fam.env.max_episode_steps)
    t0 = time.perf_counter()
    jobs: list[FitJob] = []
    for name, data in cfg.models.items():
        # The model's run holds its tuning and, as children, its fits (which run after it ends).
        with mlflow.start_run(run_name=f"improve-{name}") as run:
            mlflow.set_tags({"family": "improve", "model": name, "data": data, "profile": params.profile})
            hp = mcfg.hp
            if mcfg.tune and cfg.tune.n_trials > 0:
                train_data, val_data = _windows(params, root, name, device)
                hp, _ = tune(f"improve-{name}", hp, partial(candidate, spec), train_data, val_data, cfg=cfg,
                             steps=cfg.steps(name), seed=params.seed, device=device, mlflow=mlflow,
                             storage_path=root / "artifacts" / "optuna" / f"improve-{name}")
        write_json(paths.train / name / "hparams.json",
                   {"model": name, "data": data, "hp": hp, "steps": cfg.steps(name)})
        create_registered_model(f"justask-improve-{name}")
        prov = model_provenance(params, name, root)
        jobs += [FitJob(params, root.absolute(), name, hp, seed, prov, (run.info.experiment_id, run.info.run_id))
                 for seed in cfg.seeds]
    # Every fit of every model at once: on CPU as many in parallel as there are workers, one
    # thread each (a fit's bytes do not depend on where it runs); the longest first.
    workers = params.scale.workers if device.type == "cpu" else 1
    order = sorted(range(len(jobs)), key=lambda i: -cfg.steps(jobs[i].name))
    curves = [[] for _ in jobs]
    for i, rows in zip(order, run_all(fit_seed, [jobs[i] for i in order], workers, params.scale), strict=True):
        curves[i] = rows
    print(f"train (improve): {len(jobs)} fits of {', '.join(cfg.models)} done ({time.perf_counter() - t0:.0f}s)")
    write_text(paths.base / "curves.csv", curves_csv([row for rows in curves for row in rows]))
    shutil.rmtree(paths.checkpoints, ignore_errors=True)  # every fit finished: nothing to resume
