"""Optuna tuning of a conditioned model on validation loss.

TPE sampler (seeded), median pruner on the validation curve, and storage that outlives the
process: a journal file (default), SQLite, or an RDB URL (PostgreSQL) shared by workers on
several machines. A study is named by its settings and data, so a rerun resumes it: trials
already complete or pruned are kept and count towards ``n_trials``; trials a killed process left
RUNNING are marked FAIL (tagged ``stale``) and do not count. A trial whose loss turns NaN or
infinite is recorded FAIL and the study goes on. Each trial is a nested MLflow run.

With ``workers > 1`` that many processes share the study (``MaxTrialsCallback`` stops them at
``n_trials`` in all); each seeds its sampler differently, so parallel tuning is not
bit-reproducible. One worker on a fresh study is.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from justask.executors import run_all
from justask.settings import FitConfig
from justask.training.loop import Batches, FitResult, Loop, Optimisation, fit
from justask.training.resume import data_digest
from justask.training.runs import log_curve

# hp -> (model factory, optimisation) of a candidate trained for `steps`: a module-level function or
# a functools.partial of one, since worker processes receive it pickled.
Candidate = Callable[[dict, int], tuple[Callable[[], torch.nn.Module], Optimisation]]

DONE = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards n_trials


class NonFiniteLoss(FloatingPointError):
    """A trial's loss became NaN or infinite: recorded FAIL, the study goes on."""


class SurplusTrial(RuntimeError):
    """A parallel worker started a trial after ``n_trials`` others were finished or running."""


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


def is_url(kind: str) -> bool:
    return "://" in kind


def storage_for(path: Path, kind: str = "journal"):
    """The study's storage: ``journal`` (``<path>.journal``), ``sqlite`` (``<path>.db``) or an RDB URL.
    An RDB URL gets heartbeats, so trials of a worker that died are failed by the others."""
    if is_url(kind):
        return optuna.storages.RDBStorage(kind, heartbeat_interval=60, grace_period=180)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        return optuna.storages.RDBStorage(f"sqlite:///{path.with_suffix('.db').absolute()}")
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(path.with_suffix(".journal"))))


def study_name(label: str, base: dict, data_fingerprint: str, n_steps: int, seed: int) -> str:
    """Same settings and data -> same study (resumed); anything changed -> a fresh study."""
    key = json.dumps({"base": base, "data": data_fingerprint, "steps": n_steps, "seed": seed}, sort_keys=True)
    return f"{label}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def fail_stale_trials(storage, name: str) -> list[int]:
    """Mark the study's RUNNING trials FAIL (user attribute ``stale``); returns their numbers.

    Only safe while no other process works on the study: used for local storage (journal,
    SQLite) before this stage's workers start, since a DVC stage holds the repository lock."""
    study_id = storage.get_study_id_from_name(name)
    stale = [t.number for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))]
    for number in stale:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
        storage.set_trial_user_attr(trial_id, "stale", True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return stale


@dataclass(frozen=True)
class _Study:
    """Everything a worker process needs to join the study and run trials."""

    base: dict
    candidate: Candidate
    train: Any
    val: Any
    name: str
    n_trials: int
    trial_steps: int
    loop: Loop
    storage_path: Path
    storage_kind: str
    threads: int | None = None  # torch threads of each worker process (the CPU cores shared out)
    tracking_uri: str | None = None  # set for worker processes: where to log their trial runs
    experiment_id: str | None = None
    parent_run_id: str | None = None


def _sampler_seed(s: _Study, worker: int, existing: int) -> int:
    """``seed`` for one worker on a fresh study (reproducible); otherwise a seed that differs per
    worker, per resume (a restarted sampler would redraw the first trials' params) and, on a
    shared RDB, per process."""
    if worker == 0 and existing == 0 and not is_url(s.storage_kind):
        return s.loop.seed
    key = [s.loop.seed, worker, existing]
    if is_url(s.storage_kind):
        key += [os.getpid(), zlib.crc32(socket.gethostname().encode())]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def _optimize(s: _Study, worker: int, mlflow) -> None:
    """Join the study and run trials until it holds ``n_trials`` complete or pruned ones."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = storage_for(s.storage_path, s.storage_kind)
    study = optuna.create_study(study_name=s.name, storage=storage, load_if_exists=True, direction="minimize")
    study.sampler = optuna.samplers.TPESampler(seed=_sampler_seed(s, worker, len(study.trials)),
                                               n_startup_trials=min(3, s.n_trials))
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=s.loop.eval_every)
    remaining = s.n_trials - len(study.get_trials(deepcopy=False, states=DONE))
    if remaining <= 0:
        return

    def trial_run(name: str):
        if s.parent_run_id is None:
            return mlflow.start_run(run_name=name, nested=True)
        return mlflow.start_run(run_name=name, experiment_id=s.experiment_id, parent_run_id=s.parent_run_id)

    def objective(trial: optuna.Trial) -> float:
        # Parallel workers may start trials together: the lowest numbers win, the rest stop.
        ahead = [t for t in study.get_trials(deepcopy=False, states=(*DONE, TrialState.RUNNING))
                 if t.number < trial.number]
        if len(ahead) >= s.n_trials:
            trial.set_user_attr("surplus", True)
            study.stop()
            raise SurplusTrial(f"the study already holds {s.n_trials} finished or running trials")
        trial.set_user_attr("worker", worker)
        hp = search_space(trial, s.base)
        with trial_run(f"trial-{trial.number}"):
            mlflow.log_params({**hp, "trial": trial.number, "study": s.name, "worker": worker})

            def report(step: int, val_loss: float) -> None:
                if not math.isfinite(val_loss):
                    raise NonFiniteLoss(f"trial {trial.number}: validation loss {val_loss} at step {step}")
                trial.report(val_loss, step)
                if trial.should_prune():
                    raise optuna.TrialPruned()

            build, optimisation = s.candidate(hp, s.trial_steps)
            result: FitResult = fit(build, s.train, s.val, optimisation, s.loop, report=report, log=log_curve(mlflow))
            if not math.isfinite(result.best_val_loss):
                raise NonFiniteLoss(f"trial {trial.number}: no finite validation loss")
            mlflow.log_metric("best_val_loss", result.best_val_loss)
            return result.best_val_loss

    # At most twice the missing trials per worker: a study whose every trial fails still ends.
    study.optimize(objective, n_trials=2 * remaining, catch=(FloatingPointError, RuntimeError),
                   callbacks=[MaxTrialsCallback(s.n_trials, states=DONE)])


def _worker_process(job: tuple[_Study, int]) -> None:
    """Entry point of a spawned worker: its own MLflow client, trial runs under the tune run."""
    import mlflow

    s, worker = job
    torch.set_num_threads(s.threads)
    mlflow.set_tracking_uri(s.tracking_uri)
    _optimize(s, worker, mlflow)


def tune(label: str, base: dict, candidate: Candidate, train: Batches, val: Batches, *, cfg: FitConfig,
         steps: int, seed: int, device: torch.device, storage_path: Path, mlflow) -> tuple[dict, optuna.Study]:
    """Run (or resume) the study of ``label`` (e.g. ``mixed-dt``) with ``cfg.tune``'s trials, storage
    and workers, each trial ``cfg.tune.trial_steps_fraction`` of ``steps`` long (at least one
    evaluation); returns the best hyper-parameters merged into ``base`` (``base`` itself if no
    trial completed) and the study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tcfg, workers = cfg.tune, cfg.tune.workers
    trial_steps = max(cfg.eval_every, int(steps * tcfg.trial_steps_fraction))
    loop = Loop(cfg.eval_every, cfg.patience, seed, device, cfg.val_batch)
    name = study_name(label, base, data_digest(train) + data_digest(val), trial_steps, seed)
    s = _Study(base, candidate, train, val, name, tcfg.n_trials, trial_steps, loop, storage_path, tcfg.storage)
    storage_kind = tcfg.storage
    storage = storage_for(storage_path, storage_kind)
    study = optuna.create_study(study_name=s.name, storage=storage, load_if_exists=True, direction="minimize")
    if not is_url(storage_kind):
        stale = fail_stale_trials(storage, s.name)
        if stale:
            print(f"tune: {s.name}: trial(s) {stale} were left running by an interrupted run; marked FAIL")

    with mlflow.start_run(run_name=f"tune-{label}", nested=True) as run:
        mlflow.set_tags({"study": label, "stage": "tune", "workers": workers})
        if workers > 1:  # all in spawned processes, started together; this one waits
            joined = replace(s, threads=max(1, (os.cpu_count() or 1) // workers),
                             tracking_uri=mlflow.get_tracking_uri(), experiment_id=run.info.experiment_id,
                             parent_run_id=run.info.run_id)
            run_all(_worker_process, [(joined, w) for w in range(workers)], workers)
        else:
            _optimize(s, 0, mlflow)
        study = optuna.load_study(study_name=s.name, storage=storage)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        mlflow.log_metrics({"complete_trials": len(complete), "failed_trials": len(failed)})
        best = dict(base)
        if complete:
            best = search_space(optuna.trial.FixedTrial(study.best_params), base)
            mlflow.log_params({f"best_{k}": v for k, v in study.best_params.items()})
            mlflow.log_metric("best_val_loss", study.best_value)
    return best, study
