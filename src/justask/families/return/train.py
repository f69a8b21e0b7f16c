"""train: tune the conditioned models with Optuna, then fit every model on every seed.

Outputs per (dataset, model, seed): ``model.pt`` (weights + the settings to rebuild the model,
loadable with ``weights_only=True``) and ``curve.csv``; per (dataset, model): ``hparams.json``.
Every trial and fit is an MLflow run; each final model is registered in the model registry as
``justask-return-<dataset>-<model>``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from justask.config import Params
from justask.device import pick_device
from justask.errors import StageFailed
from justask.io import write_json, write_text
from justask.models import CONDITIONED
from justask.paths import family_paths
from justask.policies import fit_policy
from justask.seeding import seed_everything
from justask.steps import StepTable, data_spec
from justask.tracking import setup_mlflow
from justask.training.checkpoints import trained_on
from justask.training.runs import curves_csv


def train(params: Params, root: Path = Path(".")) -> None:
    fam, tcfg = params.family("return"), params.family("return").train
    paths = family_paths("return", root)
    device = pick_device(tcfg.device)
    seed_everything(params.seed)
    mlflow = setup_mlflow(params.tracking, root)
    curves: list[dict] = []
    t0 = time.perf_counter()
    for dataset in fam.collect.datasets:
        try:
            table, meta = StepTable.load(paths.relabeled(dataset), "dvc repro relabel@return")
        except FileNotFoundError as e:
            raise StageFailed(str(e)) from None
        spec = data_spec(table, meta)
        source = trained_on(params, "return", paths.relabeled(dataset))
        for kind, mcfg in tcfg.models.items():
            hp, rows = fit_policy(mlflow, paths=paths, dataset=dataset, folder=dataset, kind=kind, mcfg=mcfg,
                                  table=table, spec=spec, cfg=tcfg, seed=params.seed, device=device,
                                  profile=params.profile, register_as=f"justask-return-{dataset}-{kind}",
                                  source=source)
            write_json(paths.train / dataset / kind / "hparams.json",
                       {"model": kind, "hp": hp, "steps": mcfg.steps, "tuned": bool(mcfg.tune and kind in CONDITIONED)})
            curves += rows
    write_text(paths.base / "curves.csv", curves_csv(curves))
    shutil.rmtree(paths.checkpoints, ignore_errors=True)  # every fit finished: nothing to resume
    print(f"train: done in {time.perf_counter() - t0:.1f}s on {device}")

