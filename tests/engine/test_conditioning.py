"""What a conditioned model is asked for, and how much it reads it: the conditioning gap, the
skill condition of the window sampler, and the rollout's bookkeeping of each condition."""

import numpy as np
import pytest
import torch

from justask.conditioned import ConditionedRollout
from justask.models import build_model, condition_of
from justask.policies import conditioning_gap
from justask.steps import Spec, Steps, build_step_table, data_spec
from justask.training.loop import Loop, Optimisation, fit

HP = {"hidden": 32, "layers": 2, "heads": 2, "context": 3, "dropout": 0.0, "lr": 3e-3,
      "weight_decay": 0.0, "batch_size": 64, "actions": False}
CPU = torch.device("cpu")


def _table(n_episodes=12, length=20, seed=0):
    """Episodes of two behaviours, one earning 5x the reward of the other, with random observations:
    only a model that reads its return-to-go can tell which behaviour's action comes next."""
    rng = np.random.default_rng(seed)
    eps = []
    for e in range(n_episodes):
        good = e % 2
        rewards = rng.uniform(0.8, 1.2, size=length) * (1.0 if good else 0.2)
        obs = rng.normal(size=(length + 1, 4)).astype(np.float32)
        eps.append({"observations": obs, "actions": np.full(length, good, np.int64), "rewards": rewards})
    split = np.array([0] * (n_episodes - 3) + [1] * 3)
    table = build_step_table(eps, split)
    table.skill = np.linspace(0, 1, n_episodes).astype(np.float32)
    return table


class Recorder(torch.nn.Module):
    """A 'model' whose loss is the mean condition at the last step (so the gap is exactly the mean
    donor condition minus the mean true one) and which keeps every batch it is shown."""

    context = 3

    def __init__(self):
        super().__init__()
        self.seen = []

    def loss(self, batch):
        self.seen.append({k: v.clone() for k, v in batch.items()})
        return batch["rtg"][:, -1].mean()


def test_conditioning_gap_swaps_each_windows_condition_for_a_donor_rows():
    table = _table()
    val = Steps(table, np.array([9, 10, 11]), CPU)
    recorder = Recorder()
    gap = conditioning_gap(recorder, val, batch=7, seed=3)
    donors = val.rows[torch.randperm(len(val.rows), generator=torch.Generator().manual_seed(3))]
    assert gap == pytest.approx(float(val.rtg[donors].mean() - val.rtg[val.rows].mean()), abs=1e-5)
    assert not recorder.training  # measured in eval mode (no dropout)
    true = torch.cat([b["rtg"] for b in recorder.seen[0::2]])
    swapped = torch.cat([b["rtg"] for b in recorder.seen[1::2]])
    mask = torch.cat([b["mask"] for b in recorder.seen[0::2]])
    torch.testing.assert_close(swapped[:, -1], val.rtg[donors])  # the last step reads the donor's condition
    both = mask[:, 1:] & mask[:, :-1]  # the window's own differences (its rewards) are kept
    torch.testing.assert_close((swapped[:, 1:] - swapped[:, :-1])[both], (true[:, 1:] - true[:, :-1])[both])
    assert torch.all(swapped[~mask] == 0) and (~mask).any()  # padding stays padding


def test_a_model_that_ignores_the_condition_has_no_gap_and_one_that_reads_it_has_one():
    table = _table()
    spec = data_spec(table, {"max_episode_steps": 50, "ref_min_score": 0, "ref_max_score": 10})
    train, val = Steps(table, np.arange(9), CPU), Steps(table, np.array([9, 10, 11]), CPU)
    gaps = {}
    for kind in ("bc", "rvs", "dt"):
        result = fit(lambda k=kind: build_model(k, HP, spec), train, val, Optimisation(3e-3, 0.0, 64, 300),
                     Loop(eval_every=100, patience=5, seed=0, device=CPU))
        gaps[kind] = conditioning_gap(result.model, val)
    assert gaps["bc"] == pytest.approx(0.0, abs=1e-7)
    assert gaps["rvs"] > 0.1 and gaps["dt"] > 0.1, gaps


def test_skill_windows_hold_the_episodes_label_at_every_step():
    table = _table()
    steps = Steps(table, np.arange(12), CPU, condition="skill")
    w = steps.windows(steps.rows, 3)
    episode = torch.as_tensor(table.episode)[steps.rows]
    expected = torch.as_tensor(table.skill)[episode]
    assert torch.equal(w["rtg"][:, -1], expected)
    assert torch.all((w["rtg"] == expected[:, None]) | ~w["mask"])
    table.skill = None
    with pytest.raises(ValueError, match="no skill labels"):
        Steps(table, np.arange(12), CPU, condition="skill")


@pytest.mark.parametrize("kind", ["rvs", "skill"])
def test_rollout_decrements_a_return_and_holds_a_skill(kind):
    spec = Spec(4, 2, True, 50, (0.0,) * 4, (1.0,) * 4, 1.0)
    model = build_model(kind, HP, spec).eval()
    assert condition_of(kind) == model.condition
    policy = ConditionedRollout(model, 4, np.array([0.9, 0.5, 1.0, 0.2]), CPU)
    for slot in range(4):
        policy.start(slot, slot)
    active = np.ones(4, bool)
    for _ in range(3):
        policy.act(np.zeros((4, 4), np.float32), active)
        policy.observe(np.full(4, 0.1), np.zeros(4, bool), active)
    policy.act(np.zeros((4, 4), np.float32), active)
    asked = np.array([0.9, 0.5, 1.0, 0.2], np.float32)
    want = asked - 0.3 if kind == "rvs" else asked
    np.testing.assert_allclose(policy.rtg[:, -1], want, rtol=1e-6)
