"""Optuna studies through the real ``tune()`` on a tiny RvS model and a small synthetic table:
two worker processes share one study, a killed study resumes without repeating trials, a
trial whose loss turns NaN is recorded FAIL while the study goes on, and a journal torn by a
kill mid-write is repaired (justask.stores) with every finished trial kept."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from justask import models
from justask.settings import FitConfig, TrackingConfig, TuneConfig
from justask.steps import Steps, build_step_table, data_spec
from justask.stores import repair_journal
from justask.tracking import setup_mlflow
from justask.training.resume import data_digest
from justask.training.tune import storage_for, study_name, tune

BASE = {"hidden": 16, "layers": 1, "heads": 1, "context": 1, "dropout": 0.0, "lr": 1e-3,
        "weight_decay": 1e-4, "batch_size": 32}
LABEL = "synthetic-rvs"


def _data():
    rng = np.random.default_rng(0)
    eps = [{"observations": rng.normal(size=(41, 8)).astype(np.float32), "actions": rng.integers(0, 4, 40),
            "rewards": rng.normal(size=40)} for _ in range(10)]
    table = build_step_table(eps, np.array([0] * 8 + [1] * 2))
    spec = data_spec(table, {"max_episode_steps": 100, "ref_min_score": -10.0, "ref_max_score": 10.0})
    dev = torch.device("cpu")
    return spec, Steps(table, np.arange(8), dev), Steps(table, np.array([8, 9]), dev)


def run_study(storage_path: Path, n_trials: int, trial_steps: int, workers: int = 1, seed: int = 0,
              candidate=None):
    """The real tune() on the synthetic data (also the entry point of the killed subprocess)."""
    spec, train, val = _data()
    mlflow = setup_mlflow(TrackingConfig(), storage_path.parent)
    # trial_steps_fraction 1: each trial runs `trial_steps` steps (>= eval_every)
    cfg = FitConfig(eval_every=50, patience=100,
                    tune=TuneConfig(n_trials=n_trials, trial_steps_fraction=1.0, storage="journal", workers=workers))
    candidate = candidate or functools.partial(models.candidate, "rvs", spec)
    return tune(LABEL, BASE, candidate, train, val, cfg=cfg,
                steps=trial_steps, seed=seed, device=torch.device("cpu"), storage_path=storage_path, mlflow=mlflow)


def _held_study(storage_path: Path, n_trials: int, trial_steps: int, k: int) -> None:
    """run_study whose trial k+1 (running, after k finished) announces itself and waits to be
    killed: the kill lands mid-trial however fast or slow the machine is."""
    spec, _, _ = _data()
    calls = 0

    def candidate(hp: dict, steps: int):
        nonlocal calls
        calls += 1
        if calls > k:
            storage_path.with_suffix(".held").touch()
            time.sleep(3600)
        return models.candidate("rvs", spec, hp, steps)

    run_study(storage_path, n_trials, trial_steps, candidate=candidate)


def _name(trial_steps: int, seed: int = 0) -> str:
    """The study run_study uses: named by its label, settings and a digest of the data."""
    _, train, val = _data()
    return study_name(LABEL, BASE, data_digest(train) + data_digest(val), trial_steps, seed)


def _study(storage_path: Path, trial_steps: int, seed: int = 0) -> optuna.Study:
    return optuna.load_study(study_name=_name(trial_steps, seed), storage=storage_for(storage_path, "journal"))


def _done(study: optuna.Study) -> list:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def _params(trials) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in trials]


@pytest.mark.timeout(240)
def test_two_workers_share_one_study(tmp_path):
    storage = tmp_path / "optuna" / "study"
    best, study = run_study(storage, n_trials=4, trial_steps=150, workers=2)
    trials = study.get_trials(deepcopy=False)
    done = _done(study)
    assert len({t.number for t in trials}) == len(trials)
    assert len(set(_params(done))) == len(done), "two trials evaluated the same params"
    assert len(done) == 4
    assert {t.user_attrs["worker"] for t in done} == {0, 1}, "the spawned worker ran no trial"
    assert study.best_trial.state == TrialState.COMPLETE
    assert best["lr"] == study.best_params["lr"]


@pytest.mark.timeout(300)
def test_killed_study_resumes_without_repeating_trials(tmp_path):
    storage = tmp_path / "optuna" / "study"
    n_trials, steps, k = 4, 300, 2
    proc = subprocess.Popen([sys.executable, __file__, str(storage), str(n_trials), str(steps), str(k)],
                            env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 200
        while not storage.with_suffix(".held").exists():  # k trials finished, trial k+1 running
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the study never reached k finished trials"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _study(storage, steps)
    finished_before = {t.number: t.params for t in _done(before)}
    interrupted = [t.number for t in before.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    assert len(finished_before) == k and len(interrupted) == 1

    _, study = run_study(storage, n_trials=n_trials, trial_steps=steps)
    done = _done(study)
    assert len(done) == n_trials
    assert {t.number: t.params for t in done if t.number in finished_before} == finished_before
    assert len(set(_params(done))) == len(done), "a finished trial's params were tried again"
    for number in interrupted:
        trial = study.trials[number]
        assert trial.state == TrialState.FAIL and trial.user_attrs.get("stale") is True
    assert not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


@pytest.mark.timeout(180)
def test_nan_trial_fails_and_study_goes_on(tmp_path):
    storage = tmp_path / "optuna" / "study"
    steps = 100
    study = optuna.create_study(study_name=_name(steps), storage=storage_for(storage, "journal"))
    # An absurd learning rate (outside the search space; Optuna warns and uses it): weights overflow.
    study.enqueue_trial({"lr": 1e30, "dropout": 0.0, "layers": 1})
    best, study = run_study(storage, n_trials=3, trial_steps=steps)
    first = study.trials[0]
    assert first.params["lr"] == 1e30 and first.state == TrialState.FAIL
    assert len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) == 3
    assert best["lr"] != 1e30 and np.isfinite(study.best_value)


def _tear(journal: Path, keep: int = 25) -> bytes:
    """Cut the journal's last record after ``keep`` bytes, as a kill mid-write would; returns the lost part."""
    data = journal.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    journal.write_bytes(data[:start + keep])
    return data[start + keep:]


@pytest.mark.timeout(240)
def test_a_torn_journal_breaks_optuna_and_the_repair_keeps_every_finished_trial(tmp_path):
    steps = 100
    storage = tmp_path / "optuna" / "study"
    journal = storage.with_suffix(".journal")
    run_study(storage, n_trials=2, trial_steps=steps)
    _tear(journal)
    whole = journal.read_bytes()

    # Without the repair (what happened before): the next study appends after the torn record,
    # and from then on every read of the journal fails.
    broken = tmp_path / "broken" / "study"
    broken.parent.mkdir()
    broken.with_suffix(".journal").write_bytes(whole)
    with pytest.raises((ValueError, json.JSONDecodeError)):
        run_study(broken, n_trials=3, trial_steps=steps)
        run_study(broken, n_trials=4, trial_steps=steps)

    records = whole.count(b"\n")
    repair = repair_journal(journal)
    assert repair is not None and repair.records == records and repair.cut == 25
    assert journal.read_bytes() == whole[:whole.rfind(b"\n") + 1]
    assert repair.kept_at.read_bytes() == whole[whole.rfind(b"\n") + 1:] + b"\n"
    assert str(journal) in repair.describe() and "every finished trial" in repair.describe()
    finished = {t.number: t.params for t in _done(_study(storage, steps))}

    _, study = run_study(storage, n_trials=3, trial_steps=steps)
    done = _done(study)
    assert len(done) == 3 and {t.number: t.params for t in done if t.number in finished} == finished
    assert len(set(_params(done))) == len(done)
    assert repair_journal(journal) is None, "a repaired journal Optuna appended to is whole"



if __name__ == "__main__":  # the study process test_killed_study_resumes_... kills midway
    _held_study(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
