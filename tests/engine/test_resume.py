"""A killed training run resumes from its last checkpoint and ends where an uninterrupted one does.

Unit tests interrupt :func:`justask.training.loop.fit` from its logging callback; the stage test SIGKILLs
``justask stage train return`` (test profile, in a repo copy) and checks the rerun resumes and
writes the same models as a run that was never interrupted.
"""

import dataclasses
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import BIN, run
from justask.models import Spec, candidate
from justask.steps import Steps, build_step_table
from justask.training.loop import Loop, fit
from justask.training.resume import Resume

SPEC = Spec(obs_dim=8, act_dim=4, discrete=True, max_timestep=100, obs_mean=(0.0,) * 8,
            obs_std=(1.0,) * 8, return_scale=100.0)
# Dropout > 0 so the resumed run must also restore torch's global random stream.
HP = {"hidden": 32, "layers": 2, "heads": 2, "context": 4, "dropout": 0.1, "lr": 3e-3,
      "weight_decay": 0.01, "batch_size": 16}
STEPS = 40
LOOP = Loop(eval_every=10, patience=100, seed=3, device=torch.device("cpu"))


def _fit(kind: str, train, val, hp: dict = HP, loop: Loop = LOOP, resume: Path | None = None, log=None):
    """``fit`` of model ``kind`` for STEPS steps, resuming from ``resume`` as the train stages do
    (the key's identity: kind, hyper-parameters, spec)."""
    build, opt = candidate(kind, SPEC, hp, STEPS)
    return fit(build, train, val, opt, loop, log=log,
               resume=None if resume is None else Resume(resume, {"kind": kind, "hp": hp, "spec": repr(SPEC)}))


class Killed(Exception):
    """Stands in for the process dying right after an evaluation was logged."""


class CountingSteps(Steps):
    """Steps that count how many batches training draws (the work actually done)."""

    drawn = 0

    def sample(self, gen, batch, k):
        self.drawn += 1
        return super().sample(gen, batch, k)


def _data():
    rng = np.random.default_rng(0)
    eps = []
    for n in (30, 12, 25, 18, 20):
        obs = rng.normal(size=(n + 1, 8)).astype(np.float32)
        eps.append({"observations": obs, "actions": (obs[:-1, 0] > 0).astype(np.int64) * 2,
                    "rewards": rng.normal(size=n)})
    table = build_step_table(eps, np.array([0, 0, 0, 0, 1]))
    dev = torch.device("cpu")
    return CountingSteps(table, np.array([0, 1, 2, 3]), dev), Steps(table, np.array([4]), dev)


def _kill_at(step: int):
    def log(point: dict) -> None:
        if point["step"] == step:
            raise Killed
    return log


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("kind", ["dt", "rvs"])
def test_killed_fit_resumes_and_matches_an_uninterrupted_one(tmp_path: Path, kind: str):
    train, val = _data()
    whole = _fit(kind, train, val)

    train, val = _data()
    ckpt = tmp_path / "resume.pt"
    with pytest.raises(Killed):  # dies when logging step 30: the last checkpoint is step 20
        _fit(kind, train, val, resume=ckpt, log=_kill_at(30))
    assert torch.load(ckpt, weights_only=True)["state"]["step"] == 20

    train.drawn = 0
    resumed = _fit(kind, train, val, resume=ckpt)
    assert train.drawn == 20, "steps 21-40 only: finished steps must not be repeated"
    assert _same_weights(resumed.model, whole.model)
    assert resumed.curve == whole.curve
    assert (resumed.best_step, resumed.best_val_loss) == (whole.best_step, whole.best_val_loss)


def test_finished_checkpoint_is_reused_without_training(tmp_path: Path):
    train, val = _data()
    ckpt = tmp_path / "resume.pt"
    first = _fit("rvs", train, val, resume=ckpt)
    train.drawn = 0
    again = _fit("rvs", train, val, resume=ckpt)
    assert train.drawn == 0
    assert _same_weights(first.model, again.model) and again.curve == first.curve


@pytest.mark.parametrize("change", ["seed", "hp", "data"])
def test_checkpoint_of_other_settings_or_data_is_not_resumed(tmp_path: Path, change: str):
    train, val = _data()
    ckpt = tmp_path / "resume.pt"
    with pytest.raises(Killed):
        _fit("rvs", train, val, resume=ckpt, log=_kill_at(30))
    hp, loop = dict(HP), LOOP
    if change == "seed":
        loop = dataclasses.replace(LOOP, seed=4)
    elif change == "hp":
        hp["lr"] = 1e-3
    else:
        train, val = _data()
        train.obs = train.obs + 1.0  # same shapes, different content
    train.drawn = 0
    _fit("rvs", train, val, hp=hp, loop=loop, resume=ckpt)
    assert train.drawn == 40, "a checkpoint of different settings or data must start over"


def test_torn_checkpoint_starts_over(tmp_path: Path):
    train, val = _data()
    ckpt = tmp_path / "resume.pt"
    ckpt.write_bytes(b"PK\x03\x04 not a whole file")
    _fit("rvs", train, val, resume=ckpt)
    assert train.drawn == 40


def _tree_digest(folder: Path) -> str:
    """Weights, settings and best step of every model.pt."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("model.pt")):
        payload = torch.load(p, weights_only=True)
        h.update(f"{p.relative_to(folder)} {payload['hp']} {payload['meta']['best_step']}".encode())
        for name, t in sorted(payload["state_dict"].items()):
            h.update(name.encode() + t.numpy().tobytes())
    return h.hexdigest()


def test_killed_train_stage_resumes(make_repo_copy):
    """SIGKILL `justask stage train return` mid-run; the rerun resumes from the checkpoints it
    left and writes byte-identical models to an uninterrupted run."""
    repo = make_repo_copy()
    run([str(BIN / "dvc"), "repro", "relabel@return"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["families"]["return"]["train"]["tune"]["n_trials"] = 0  # fits only: Optuna's resume is test_tune.py's
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    justask = str(BIN / "justask")
    run([justask, "stage", "train", "return"], repo)
    expected = _tree_digest(repo / "artifacts" / "return" / "train")
    assert not (repo / "artifacts" / "checkpoints" / "return").exists(), "a finished stage keeps none"

    checkpoints = repo / "artifacts" / "checkpoints" / "return"
    proc = subprocess.Popen([justask, "stage", "train", "return"], cwd=repo, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(checkpoints.rglob("seed*.pt"))) >= 3:  # a few fits in, mid-stage
            break
        time.sleep(0.05)
    assert proc.poll() is None, "train finished before it could be killed:\n" + proc.stdout.read()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert checkpoints.exists()

    rerun = run([justask, "stage", "train", "return"], repo)
    assert "resuming" in rerun.stdout
    assert _tree_digest(repo / "artifacts" / "return" / "train") == expected
    assert not checkpoints.exists()
