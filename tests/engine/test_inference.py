"""Evaluation's inference shortcuts give the same actions, bit for bit, as the plain batched pass.

Acting on live slots only and encoding each BabyAI view once both rely on one property of CPU
matrix products (``models.common.MIN_ROWS``): from that many rows up, a row's result does not
depend on the other rows' values, so a greedy discrete action is the same. These tests fail if a
torch build or CPU breaks that, before recorded results silently change.
"""

import numpy as np
import pytest
import torch

from justask.conditioned import acting_rows
from justask.models import Spec, build_model
from justask.models.common import MIN_ROWS

HP = {"hidden": 64, "layers": 3, "heads": 4, "context": 10, "dropout": 0.0, "lr": 1e-3,
      "weight_decay": 0.0, "batch_size": 8}


def _spec(discrete: bool) -> Spec:
    return Spec(obs_dim=8, act_dim=4 if discrete else 2, discrete=discrete, max_timestep=1000,
                obs_mean=(0.1,) * 8, obs_std=(1.5,) * 8, return_scale=300.0)


def _windows(b: int, k: int, spec: Spec, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, k, dtype=torch.bool)
    mask[: b // 2, : k // 2] = False  # some windows left-padded (episode starts)
    actions = (torch.randint(0, spec.act_dim, (b, k), generator=g) if spec.discrete
               else torch.rand(b, k, spec.act_dim, generator=g) * 2 - 1)
    return {"obs": torch.randn(b, k, 8, generator=g), "actions": actions,
            "rtg": torch.randn(b, k, generator=g) * 200, "timesteps": torch.randint(0, 900, (b, k), generator=g),
            "mask": mask}


def test_acting_rows_keeps_live_slots_and_pads_to_min_rows():
    active = np.zeros(16, dtype=bool)
    active[[2, 9]] = True
    rows = acting_rows(active)
    assert len(rows) == MIN_ROWS and {2, 9} <= set(rows.tolist()) and list(rows) == sorted(rows)
    active[:10] = True
    assert acting_rows(active).tolist() == list(range(10))
    assert acting_rows(np.array([False, True, False])).tolist() == [0, 1, 2]


@pytest.mark.parametrize("kind", ["rvs", "dt"])
@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("live", [1, 2, MIN_ROWS, 7, 11])
def test_acting_on_live_slots_only_gives_the_same_actions(kind: str, discrete: bool, live: int):
    spec = _spec(discrete)
    torch.manual_seed(1)
    model = build_model(kind, HP, spec).eval()
    batch = _windows(32, model.context, spec, seed=live)
    active = np.zeros(32, dtype=bool)
    active[np.random.default_rng(live).choice(32, live, replace=False)] = True
    rows = acting_rows(active)
    with torch.no_grad():
        everyone = model.act(batch)
        subset = model.act({k: v[torch.as_tensor(rows)] for k, v in batch.items()})
    picked = {int(r): i for i, r in enumerate(rows)}
    for slot in np.flatnonzero(active):
        if discrete:  # what every shipped family uses: the same action, exactly
            assert torch.equal(subset[picked[slot]], everyone[slot])
        else:  # continuous actions may differ in the last float digits (see MIN_ROWS)
            torch.testing.assert_close(subset[picked[slot]], everyone[slot], rtol=0, atol=1e-6)
