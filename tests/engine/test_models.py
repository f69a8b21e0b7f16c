"""Model shapes, causal masking, window batching and the training step."""

import numpy as np
import pytest
import torch

from justask.models import Spec, build_model, candidate
from justask.steps import Steps, build_step_table, data_spec
from justask.training.loop import Loop, fit

SPEC = Spec(obs_dim=8, act_dim=4, discrete=True, max_timestep=100, obs_mean=(0.0,) * 8,
            obs_std=(1.0,) * 8, return_scale=100.0)
HP = {"hidden": 32, "layers": 2, "heads": 2, "context": 5, "dropout": 0.0, "lr": 3e-3,
      "weight_decay": 0.0, "batch_size": 64, "actions": True}


def _batch(b=3, k=5, spec=SPEC):
    g = torch.Generator().manual_seed(0)
    return {"obs": torch.randn(b, k, spec.obs_dim, generator=g),
            "actions": torch.randint(0, spec.act_dim, (b, k), generator=g),
            "rtg": torch.randn(b, k, generator=g) * 100,
            "timesteps": torch.arange(k).repeat(b, 1),
            "mask": torch.ones(b, k, dtype=torch.bool)}


@pytest.mark.parametrize("kind", ["bc", "pct_bc", "rvs", "dt", "skill"])
def test_shapes(kind):
    model = build_model(kind, HP, SPEC).eval()
    batch = _batch(k=model.context)
    assert model.act(batch).shape == (3,)
    assert model.loss(batch).ndim == 0


def test_continuous_actions():
    spec = Spec(8, 2, False, 100, (0.0,) * 8, (1.0,) * 8, 100.0)
    for kind in ("rvs", "dt"):
        model = build_model(kind, HP, spec).eval()
        batch = _batch(k=model.context, spec=spec)
        batch["actions"] = torch.rand(3, model.context, 2) * 2 - 1
        action = model.act(batch)
        assert action.shape == (3, 2) and action.abs().max() <= 1


def test_dt_is_causal():
    """Changing step t's inputs (or a_t itself) never changes the prediction at steps <= t."""
    model = build_model("dt", HP, SPEC).eval()
    batch = _batch(b=1)
    base = model(batch["obs"], batch["actions"], batch["rtg"], batch["timesteps"], batch["mask"])
    changed = {k: v.clone() for k, v in batch.items()}
    changed["obs"][0, 3] += 5.0
    changed["rtg"][0, 3] += 50.0
    changed["actions"][0, 2] = (changed["actions"][0, 2] + 1) % 4
    out = model(changed["obs"], changed["actions"], changed["rtg"], changed["timesteps"], changed["mask"])
    torch.testing.assert_close(out[0, :3], base[0, :3])  # a_2 change must not leak into step 2
    assert not torch.allclose(out[0, 3], base[0, 3])


@pytest.mark.parametrize("actions", [True, False])
def test_dt_padded_steps_cannot_change_a_real_steps_prediction(actions):
    """Left padding (mask False) is masked out of attention: whatever a padded step holds, the
    predictions at real steps are the same; without the key-padding mask they would change."""
    model = build_model("dt", {**HP, "actions": actions}, SPEC).eval()
    batch = _batch(b=2)
    batch["mask"][:, :2] = False
    base = model.act(batch), model(batch["obs"], batch["actions"], batch["rtg"], batch["timesteps"], batch["mask"])
    junk = {k: v.clone() for k, v in batch.items()}
    junk["obs"][:, :2] = 50.0
    junk["rtg"][:, :2] = -1e4
    junk["actions"][:, :2] = 3
    junk["timesteps"][:, :2] = 90
    out = model(junk["obs"], junk["actions"], junk["rtg"], junk["timesteps"], junk["mask"])
    torch.testing.assert_close(out[:, 2:], base[1][:, 2:])
    assert torch.equal(model.act(junk), base[0])
    # The same junk at a real step does change what comes after it.
    junk["mask"][:, :2] = True
    out = model(junk["obs"], junk["actions"], junk["rtg"], junk["timesteps"], junk["mask"])
    assert not torch.allclose(out[:, 2:], base[1][:, 2:])


def test_dt_without_action_tokens_never_reads_past_actions():
    model = build_model("dt", {**HP, "actions": False}, SPEC).eval()
    batch = _batch(b=2)
    other = dict(batch, actions=(batch["actions"] + 1) % 4)
    torch.testing.assert_close(model(*(other[k] for k in ("obs", "actions", "rtg", "timesteps", "mask"))),
                               model(*(batch[k] for k in ("obs", "actions", "rtg", "timesteps", "mask"))))
    assert model.tokens_per_step == 2


def test_rvs_uses_condition_and_bc_does_not():
    batch = _batch(k=1)
    other = dict(batch, rtg=batch["rtg"] + 300)
    rvs, bc = build_model("rvs", HP, SPEC).eval(), build_model("bc", HP, SPEC).eval()
    assert (rvs.condition, bc.condition, build_model("skill", HP, SPEC).condition) == ("return", "none", "skill")
    assert not torch.allclose(rvs(batch["obs"][:, -1], batch["rtg"][:, -1]),
                              rvs(other["obs"][:, -1], other["rtg"][:, -1]))
    torch.testing.assert_close(bc(batch["obs"][:, -1], batch["rtg"][:, -1]),
                               bc(other["obs"][:, -1], other["rtg"][:, -1]))


def _table():
    rng = np.random.default_rng(0)
    eps = []
    for n in (7, 3, 12, 5):
        obs = rng.normal(size=(n + 1, 8)).astype(np.float32)
        eps.append({"observations": obs, "actions": (obs[:-1, 0] > 0).astype(np.int64) * 2,
                    "rewards": rng.normal(size=n)})
    return build_step_table(eps, np.array([0, 0, 0, 1]))


def test_windows_left_pad_at_episode_start():
    table = _table()
    steps = Steps(table, np.array([0, 1, 2]), torch.device("cpu"))
    ends = torch.tensor([7, 1])  # first step of episode 1; second step of episode 0
    w = steps.windows(ends, 4)
    assert w["mask"].tolist() == [[False, False, False, True], [False, False, True, True]]
    assert torch.equal(w["obs"][0, -1], torch.as_tensor(table.observations[7]))
    assert torch.all(w["obs"][0, :3] == 0) and torch.all(w["timesteps"][0, :3] == 0)
    assert w["rtg"][1].tolist() == pytest.approx([0, 0, *table.rtg[:2]])


@pytest.mark.parametrize("kind", ["rvs", "dt"])
def test_training_lowers_loss_on_a_fixed_batch(kind):
    table = _table()
    train = Steps(table, np.array([0, 1, 2]), torch.device("cpu"))
    spec = data_spec(table, {"max_episode_steps": 100, "ref_min_score": -10, "ref_max_score": 10})
    torch.manual_seed(0)
    model = build_model(kind, HP, spec)
    batch = train.windows(train.rows, model.context)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = float(model.loss(batch))
    for _ in range(30):
        opt.zero_grad()
        model.loss(batch).backward()
        opt.step()
    assert float(model.loss(batch)) < 0.5 * before


def test_fit_is_deterministic_and_keeps_best_checkpoint():
    table = _table()
    spec = data_spec(table, {"max_episode_steps": 100, "ref_min_score": -10, "ref_max_score": 10})
    dev = torch.device("cpu")
    train, val = Steps(table, np.array([0, 1, 2]), dev), Steps(table, np.array([3]), dev)
    build, opt = candidate("dt", spec, HP, 40)
    runs = [fit(build, train, val, opt, Loop(eval_every=10, patience=10, seed=1, device=dev))
            for _ in range(2)]
    assert runs[0].curve == runs[1].curve
    assert runs[0].best_val_loss == min(p["val_loss"] for p in runs[0].curve)
    for a, b in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_fit_keeps_the_last_weights_apart_from_the_selected_ones():
    table = _table()
    spec = data_spec(table, {"max_episode_steps": 100, "ref_min_score": -10, "ref_max_score": 10})
    dev = torch.device("cpu")
    train, val = Steps(table, np.array([0, 1, 2]), dev), Steps(table, np.array([3]), dev)
    build, opt = candidate("rvs", spec, {**HP, "lr": 0.3}, 60)  # a high lr: the loss jumps about
    result = fit(build, train, val, opt, Loop(eval_every=10, patience=10, seed=0, device=dev))
    same = all(torch.equal(result.last_state[k], v) for k, v in result.model.state_dict().items())
    assert result.steps_run == 60
    assert same == (result.best_step == 60), (result.best_step, result.curve)
    # The last weights are the final step's: a fit of exactly that many steps ends on them.
    build, opt = candidate("rvs", spec, {**HP, "lr": 0.3}, 60)
    again = fit(build, train, val, opt, Loop(eval_every=60, patience=10, seed=0, device=dev))
    assert all(torch.equal(again.last_state[k], v) for k, v in result.last_state.items())
