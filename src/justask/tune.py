"""Optuna tuning of a conditioned model on validation loss.

TPE sampler (seeded, trials run sequentially so the search is reproducible), median pruner on the
validation curve, journal-file storage so an interrupted study resumes without repeating
finished trials (and several worker processes can share it). Each trial is a nested MLflow run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import optuna

from justask.train import FitResult, fit


def search_space(trial: optuna.Trial, base: dict) -> dict:
    """Hyper-parameters a trial may change; everything else comes from params.yaml.

    Deliberately narrow. Width, batch size, context and step count stay as params.yaml sets them,
    and depth may only drop by one layer, so a tuned fit never costs more than the configured one.
    Dropout is capped at 0.1: a development sweep (README, "How the search space was chosen")
    found that short trials favour heavy dropout. Their validation loss looks better early, but
    the trained policy then ignores the return it is asked for.
    """
    hp = dict(base)
    hp["lr"] = trial.suggest_float("lr", 3e-4, 3e-3, log=True)
    hp["dropout"] = trial.suggest_float("dropout", 0.0, 0.1)
    if "layers" in base:
        hp["layers"] = trial.suggest_int("layers", max(1, base["layers"] - 1), base["layers"])
    return hp


def storage_for(path: Path, kind: str = "journal"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        return f"sqlite:///{path.with_suffix('.db').absolute()}"
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(path.with_suffix(".journal"))))


def study_name(dataset: str, kind: str, base: dict, data_fingerprint: str, n_steps: int, seed: int) -> str:
    """Same settings and data -> same study (resumed); anything changed -> a fresh study."""
    key = json.dumps({"base": base, "data": data_fingerprint, "steps": n_steps, "seed": seed}, sort_keys=True)
    return f"{dataset}-{kind}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def tune(kind: str, base: dict, spec, train, val, *, dataset: str, data_fingerprint: str,
         n_trials: int, trial_steps: int, eval_every: int, patience: int, seed: int, device,
         storage_path: Path, storage_kind: str, mlflow) -> tuple[dict, optuna.Study]:
    """Run (or resume) the study and return the best hyper-parameters merged into ``base``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name(dataset, kind, base, data_fingerprint, trial_steps, seed),
        storage=storage_for(storage_path, storage_kind), load_if_exists=True, direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(3, n_trials)),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=eval_every),
    )
    finished = [t for t in study.trials if t.state.is_finished()]
    remaining = max(0, n_trials - len(finished))

    def objective(trial: optuna.Trial) -> float:
        hp = search_space(trial, base)
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.log_params({**hp, "trial": trial.number, "study": study.study_name})

            def report(step: int, val_loss: float) -> None:
                trial.report(val_loss, step)
                if trial.should_prune():
                    raise optuna.TrialPruned()

            result: FitResult = fit(kind, hp, spec, train, val, steps=trial_steps, eval_every=eval_every,
                                    patience=patience, seed=seed, device=device, report=report,
                                    log=lambda p: mlflow.log_metrics(
                                        {"val_loss": p["val_loss"], "train_loss": p["train_loss"]},
                                        step=p["step"]))
            mlflow.log_metric("best_val_loss", result.best_val_loss)
            return result.best_val_loss

    with mlflow.start_run(run_name=f"tune-{dataset}-{kind}", nested=True):
        mlflow.set_tags({"dataset": dataset, "model": kind, "stage": "tune"})
        if remaining:
            study.optimize(objective, n_trials=remaining, catch=(FloatingPointError, RuntimeError))
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        best = dict(base)
        if complete:
            best = search_space(optuna.trial.FixedTrial(study.best_params), base)
            mlflow.log_params({f"best_{k}": v for k, v in study.best_params.items()})
            mlflow.log_metric("best_val_loss", study.best_value)
    return best, study
