"""train: tune the conditioned models with Optuna, then fit every model on every seed.

Outputs per (dataset, model, seed): ``model.pt`` (weights + the settings to rebuild the model,
loadable with ``weights_only=True``) and ``curve.csv``; per (dataset, model): ``hparams.json``.
Every trial and fit is an MLflow run; each final model is registered in the model registry.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from justask.config import Params
from justask.data.atomic import atomic_write, write_json, write_text
from justask.data.relabel import StepTable
from justask.models import CONDITIONED, Spec, build_model
from justask.paths import family_paths
from justask.registry import register
from justask.seeding import seed_everything
from justask.stages import StageFailed
from justask.tracking import setup_mlflow
from justask.train import Steps, curves_csv, data_spec, fit, pick_device
from justask.tune import tune


def episodes_for(kind: str, table: StepTable, split: int, top_fraction: float) -> np.ndarray:
    """Episodes a model trains (split 0) or validates (split 1) on; %BC keeps the top fraction
    of each split by return."""
    eps = np.flatnonzero(table.split == split)
    if kind != "pct_bc":
        return eps
    keep = max(1, int(round(top_fraction * len(eps))))
    return np.sort(eps[np.argsort(-table.returns[eps], kind="stable")][:keep])


def save_checkpoint(path: Path, kind: str, hp: dict, spec: Spec, model: torch.nn.Module, meta: dict) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"kind": kind, "hp": hp, "spec": asdict(spec), "meta": meta, "state_dict": state}
    atomic_write(path, lambda p: torch.save(payload, p))


def load_checkpoint(path: Path, device: torch.device | str = "cpu"):
    """Rebuild a trained model from ``model.pt`` (safe: ``weights_only=True``)."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
        spec = Spec(**{k: tuple(v) if isinstance(v, list) else v for k, v in payload["spec"].items()})
        model = build_model(payload["kind"], payload["hp"], spec)
        model.load_state_dict(payload["state_dict"])
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(
            f"{path}: not a justask checkpoint of a compatible model ({type(e).__name__}: {e}). "
            "Re-run `dvc repro train@return` to rebuild it."
        ) from e
    return model.to(device).eval(), payload


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
                        storage_kind=tcfg.tune.storage, mlflow=mlflow,
                    )
                write_json(out / "hparams.json", {"model": kind, "hp": hp, "steps": mcfg.steps,
                                                  "tuned": bool(mcfg.tune and kind in CONDITIONED)})
                for seed in tcfg.seeds:
                    curves += _fit_one(mlflow, kind, hp, spec, train_data, val_data, mcfg.steps, tcfg,
                                       seed, device, dataset, paths.run_dir(dataset, kind, seed))
    write_text(paths.base / "curves.csv", curves_csv(curves))
    print(f"train: done in {time.perf_counter() - t0:.1f}s on {device}")


def _fit_one(mlflow, kind, hp, spec, train_data, val_data, steps, tcfg, seed, device, dataset,
             run_dir: Path) -> list[dict]:
    with mlflow.start_run(run_name=f"{dataset}-{kind}-seed{seed}", nested=True) as run:
        mlflow.log_params({**hp, "seed": seed, "steps": steps, "device": device.type})
        result = fit(kind, hp, spec, train_data, val_data, steps=steps, eval_every=tcfg.eval_every,
                     patience=tcfg.patience, seed=seed, device=device,
                     log=lambda p: mlflow.log_metrics({"val_loss": p["val_loss"], "train_loss": p["train_loss"]},
                                                      step=p["step"]))
        if not np.isfinite(result.best_val_loss):
            raise StageFailed(f"{dataset}/{kind}/seed{seed}: validation loss is not finite; "
                              "lower train.models.{kind}.lr or check the relabeled data")
        mlflow.log_metrics({"best_val_loss": result.best_val_loss, "best_step": result.best_step,
                            "train_seconds": result.seconds, "samples_per_second": result.samples_per_second})
        meta = {"dataset": dataset, "seed": seed, "best_val_loss": result.best_val_loss,
                "best_step": result.best_step, "mlflow_run_id": run.info.run_id}
        ckpt = run_dir / "model.pt"
        save_checkpoint(ckpt, kind, hp, spec, result.model, meta)
        rows = [{"dataset": dataset, "model": kind, "seed": seed, **p} for p in result.curve]
        write_text(run_dir / "curve.csv", curves_csv(rows))
        register(mlflow, ckpt, f"justask-return-{dataset}-{kind}")
    return rows
