"""train: tune the conditioned models with Optuna, then fit every model on every seed.

Outputs per (dataset, model, seed): ``model.pt`` (weights + the settings to rebuild the model,
loadable with ``weights_only=True``) and ``curve.csv``; per (dataset, model): ``hparams.json``.
Every trial and fit is an MLflow run; each final model is registered in the model registry.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import numpy as np

from justask.config import Params
from justask.data.atomic import write_json, write_text
from justask.data.relabel import StepTable
from justask.models import CONDITIONED
from justask.paths import family_paths
from justask.seeding import seed_everything
from justask.stages import StageFailed
from justask.tracking import setup_mlflow
from justask.train import Steps, curves_csv, data_spec, fit_and_save, pick_device
from justask.tune import tune


def episodes_for(kind: str, table: StepTable, split: int, top_fraction: float) -> np.ndarray:
    """Episodes a model trains (split 0) or validates (split 1) on; %BC keeps the top fraction
    of each split by return."""
    eps = np.flatnonzero(table.split == split)
    if kind != "pct_bc":
        return eps
    keep = max(1, int(round(top_fraction * len(eps))))
    return np.sort(eps[np.argsort(-table.returns[eps], kind="stable")][:keep])


def _fingerprint(table: StepTable) -> str:
    h = hashlib.sha256()
    for name in ("observations", "actions", "rtg", "split"):
        h.update(np.ascontiguousarray(getattr(table, name)).tobytes())
    return h.hexdigest()[:16]


def train(params: Params, root: Path = Path(".")) -> None:
    fam, tcfg = params.return_, params.return_.train
    paths = family_paths("return", root)
    device = pick_device(tcfg.device)
    seed_everything(params.seed)
    mlflow = setup_mlflow(params.tracking, root)
    curves: list[dict] = []
    t0 = time.perf_counter()
    for dataset in fam.collect.datasets:
        try:
            table, meta = StepTable.load(paths.relabeled(dataset))
        except FileNotFoundError as e:
            raise StageFailed(str(e)) from None
        spec = data_spec(table, meta)
        fingerprint = _fingerprint(table)
        for kind, mcfg in tcfg.models.items():
            base = mcfg.model_dump(exclude={"tune", "steps", "top_fraction"})
            train_data = Steps(table, episodes_for(kind, table, 0, mcfg.top_fraction), device)
            val_data = Steps(table, episodes_for(kind, table, 1, mcfg.top_fraction), device,
                             max_rows=tcfg.val_rows)
            out = paths.train / dataset / kind
            with mlflow.start_run(run_name=f"{dataset}-{kind}"):
                mlflow.set_tags({"family": "return", "dataset": dataset, "model": kind,
                                 "profile": params.profile})
                hp = base
                if mcfg.tune and kind in CONDITIONED and tcfg.tune.n_trials > 0:
                    hp, _ = tune(
                        kind, base, spec, train_data, val_data, dataset=dataset,
                        data_fingerprint=fingerprint, n_trials=tcfg.tune.n_trials,
                        trial_steps=max(tcfg.eval_every, int(mcfg.steps * tcfg.tune.trial_steps_fraction)),
                        eval_every=tcfg.eval_every, patience=tcfg.patience, seed=params.seed,
                        device=device, storage_path=root / "artifacts" / "optuna" / f"return-{dataset}-{kind}",
                        storage_kind=tcfg.tune.storage, mlflow=mlflow, workers=tcfg.tune.workers,
                    )
                write_json(out / "hparams.json", {"model": kind, "hp": hp, "steps": mcfg.steps,
                                                  "tuned": bool(mcfg.tune and kind in CONDITIONED)})
                for seed in tcfg.seeds:
                    curves += fit_and_save(mlflow, kind, hp, spec, train_data, val_data, mcfg.steps, tcfg,
                                           seed, device, dataset, paths.run_dir(dataset, kind, seed),
                                           f"justask-return-{dataset}-{kind}",
                                           resume=paths.resume_file(dataset, kind, seed))
    write_text(paths.base / "curves.csv", curves_csv(curves))
    shutil.rmtree(paths.checkpoints, ignore_errors=True)  # every fit finished: nothing to resume
    print(f"train: done in {time.perf_counter() - t0:.1f}s on {device}")
