"""train (improve): the in-context transformer on the learning histories (``ad``: Algorithm
Distillation) and, as the control, on the converged episodes only (``ed``: expert distillation),
each on every training seed by the one training loop; Optuna first when ``model.tune``. Every fit
is an MLflow run; checkpoints ``artifacts/improve/train/<model>/seed<k>/model.pt`` record their
provenance, which evaluate and ``justask ask improve`` check."""

from __future__ import annotations

import shutil
import time
from functools import partial
from pathlib import Path

import torch

from justask.config import Params
from justask.device import pick_device
from justask.errors import StageFailed
from justask.io import write_json, write_text
from justask.paths import family_paths
from justask.seeding import seed_everything
from justask.tracking import setup_mlflow
from justask.training.loop import Loop
from justask.training.resume import Resume
from justask.training.runs import curves_csv, fit_and_save
from justask.training.tune import tune

from .contexts import Contexts, Windows
from .model import RoomSpec, candidate, model_provenance, save_model


def train(params: Params, root: Path = Path(".")) -> None:
    fam = params.family("improve")
    cfg, mcfg = fam.train, fam.train.model
    paths = family_paths("improve", root)
    device = pick_device(cfg.device)
    seed_everything(params.seed)
    if device.type == "cpu":
        # A small model (about 50k weights): a second thread buys little, and under load it made a
        # step 3x slower (benchmarks/README.md); one thread also keeps the bytes independent of the
        # machine's core count.
        torch.set_num_threads(1)
    mlflow = setup_mlflow(params.tracking, root)
    spec = RoomSpec(size=fam.env.size, horizon=fam.env.max_episode_steps)
    t0 = time.perf_counter()
    curves: list[dict] = []
    for name, data in cfg.models.items():
        try:
            ctx, _ = Contexts.load(paths.relabeled(data))
            train_data = Windows(ctx, 0, device)
            val_data = Windows(ctx, 1, device, max_rows=cfg.val_rows)
        except (FileNotFoundError, ValueError) as e:
            raise StageFailed(f"{paths.relabeled(data)}: {e}") from None
        with mlflow.start_run(run_name=f"improve-{name}"):
            mlflow.set_tags({"family": "improve", "model": name, "data": data, "profile": params.profile})
            hp = mcfg.hp
            if mcfg.tune and cfg.tune.n_trials > 0:
                hp, _ = tune(f"improve-{name}", hp, partial(candidate, spec), train_data, val_data, cfg=cfg,
                             steps=mcfg.steps, seed=params.seed, device=device, mlflow=mlflow,
                             storage_path=root / "artifacts" / "optuna" / f"improve-{name}")
            write_json(paths.train / name / "hparams.json",
                       {"model": name, "data": data, "hp": hp, "steps": mcfg.steps})
            prov = model_provenance(params, name, root)
            for seed in cfg.seeds:
                build, optimisation = candidate(spec, hp, mcfg.steps)
                curves += fit_and_save(
                    mlflow, run_name=f"improve-{name}-seed{seed}", label={"dataset": data, "model": name, "seed": seed},
                    hp=hp, build=build, train=train_data, val=val_data, optimisation=optimisation,
                    loop=Loop(cfg.eval_every, cfg.patience, seed, device, cfg.val_batch),
                    save=partial(save_model, hp, spec, prov),
                    run_dir=paths.train / name / f"seed{seed}", meta={"model": name, "seed": seed},
                    resume=Resume(paths.resume_file(data, name, seed), {"hp": hp, "spec": repr(spec)}),
                    fix="lower families.improve.train.model.lr")
        print(f"train (improve): {name} done ({time.perf_counter() - t0:.0f}s)")
    write_text(paths.base / "curves.csv", curves_csv(curves))
    shutil.rmtree(paths.checkpoints, ignore_errors=True)  # every fit finished: nothing to resume

