"""The in-context transformer and its frozen rollouts: causal (a step never sees later ones),
padding ignored by attention and loss, the prediction conditioned on earlier episodes' rewards, a
checkpoint that round-trips and refuses the wrong provenance; rollouts that never touch the weights,
are seeded, and pay the env's reward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from justask.errors import CheckpointError
from justask.families.improve.config import TransformerConfig
from justask.families.improve.contexts import NO_ACTION
from justask.families.improve.env import ACTIONS, reward
from justask.families.improve.goals import best_return, start_cell
from justask.families.improve.incontext import run_in_context
from justask.families.improve.model import (
    InContextTransformer,
    RoomSpec,
    build_model,
    load_model,
    save_model,
    weights_hash,
)
from justask.training.checkpoints import provenance

torch.set_num_threads(1)

SPEC = RoomSpec(size=5, horizon=4)
HP = TransformerConfig(hidden=16, layers=2, heads=2, context_episodes=3, dropout=0.1).hp
K = 3 * SPEC.horizon  # the model's context: three episodes


def model(seed: int = 0) -> InContextTransformer:
    torch.manual_seed(seed)
    return build_model(SPEC, HP).eval()


def batch(b: int = 4, k: int = K, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"cells": torch.randint(SPEC.size ** 2, (b, k), generator=g),
            "prev_actions": torch.randint(ACTIONS + 1, (b, k), generator=g),
            "prev_rewards": torch.randint(2, (b, k), generator=g).float(),
            "timesteps": torch.arange(k).remainder(SPEC.horizon).expand(b, k).clone(),
            "actions": torch.randint(ACTIONS, (b, k), generator=g),
            "mask": torch.ones(b, k, dtype=torch.bool)}


def logits(net, x: dict) -> torch.Tensor:
    with torch.no_grad():
        return net(x["cells"], x["prev_actions"], x["prev_rewards"], x["timesteps"], x["mask"])


def changed_at(x: dict, positions, seed: int = 1) -> dict:
    """``x`` with the inputs (cell, previous action and reward) at ``positions`` changed."""
    y = {k: v.clone() for k, v in x.items()}
    y["cells"][:, positions] = (y["cells"][:, positions] + 7) % SPEC.size ** 2
    y["prev_actions"][:, positions] = (y["prev_actions"][:, positions] + 1) % (ACTIONS + 1)
    y["prev_rewards"][:, positions] = 1.0 - y["prev_rewards"][:, positions]
    return y


def test_logits_have_one_action_distribution_per_step():
    net, x = model(), batch()
    out = logits(net, x)
    assert out.shape == (4, K, ACTIONS) and torch.isfinite(out).all()
    assert net.context == K
    short = {k: v[:, -5:] for k, v in x.items()}  # a window shorter than the context works too
    assert logits(net, short).shape == (4, 5, ACTIONS)


@pytest.mark.parametrize("j", [1, 5, K - 1])
def test_a_later_step_never_changes_an_earlier_prediction(j):
    net, x = model(), batch()
    a, b = logits(net, x), logits(net, changed_at(x, [j]))
    assert torch.allclose(a[:, :j], b[:, :j], atol=1e-6)
    assert (a[:, j:] - b[:, j:]).abs().amax(dim=(0, 2)).min() > 1e-6  # ... and does change its own and later ones


def test_padded_steps_do_not_change_real_predictions():
    net, x = model(), batch()
    pad = 5
    x["mask"][:, :pad] = False
    a, b = logits(net, x), logits(net, changed_at(x, list(range(pad))))
    assert torch.allclose(a[:, pad:], b[:, pad:], atol=1e-6)
    x["mask"][:] = True  # the same change is seen once those steps are real
    a, b = logits(net, x), logits(net, changed_at(x, list(range(pad))))
    assert (a[:, pad:] - b[:, pad:]).abs().max() > 1e-5


def test_the_loss_ignores_padded_steps():
    net, x = model(), batch()
    pad = 4
    x["mask"][:, :pad] = False
    with torch.no_grad():
        loss = net.loss(x)
        out = logits(net, x)
    manual = F.cross_entropy(out[:, pad:].reshape(-1, ACTIONS), x["actions"][:, pad:].reshape(-1))
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)
    y = changed_at(x, list(range(pad)))
    y["actions"][:, :pad] = (y["actions"][:, :pad] + 2) % ACTIONS  # other targets where padded
    with torch.no_grad():
        assert net.loss(y).item() == pytest.approx(loss.item(), abs=1e-6)
        y["actions"][:, -1] = (y["actions"][:, -1] + 2) % ACTIONS  # a real target counts
        assert abs(net.loss(y).item() - loss.item()) > 1e-5


def test_the_prediction_depends_on_earlier_episodes_rewards():
    net, x = model(), batch(b=6)
    x["prev_rewards"][:] = 0.0
    y = {k: v.clone() for k, v in x.items()}
    y["prev_rewards"][:, 1:SPEC.horizon] = 1.0  # the first episode of the window earned something
    a, b = logits(net, x), logits(net, y)
    assert (a[:, -1] - b[:, -1]).abs().amax(dim=-1).min() > 1e-6  # the last step, two episodes later, sees it
    assert torch.equal(a[:, 0], b[:, 0])  # the window's first step does not (its own reward is unchanged)


def test_a_saved_model_loads_with_identical_outputs_and_checks_provenance(tmp_path):
    net = model(seed=3)
    prov = provenance("improve", "histories", "ad", config="c" * 64, data="d" * 64)
    path = tmp_path / "model.pt"
    save_model(HP, SPEC, prov, path, net, {"model": "ad", "seed": 3})
    back, payload = load_model(path, prov)
    assert not back.training and payload["meta"] == {"model": "ad", "seed": 3}
    assert payload["spec"] == {"size": 5, "horizon": 4}
    x = batch(seed=5)
    assert torch.equal(logits(back, x), logits(net, x))
    assert not torch.equal(logits(model(seed=4), x), logits(net, x))  # another model would be told apart
    with pytest.raises(CheckpointError, match=r"model.pt: not the model this stage expects: data"):
        load_model(path, {**prov, "data": "e" * 64})
    with pytest.raises(CheckpointError, match=r"kind: 'ad' in the file, 'ed' expected"):
        load_model(path, {**prov, "kind": "ed"})


GOALS = np.array([[0, 0], [4, 4], [1, 3], [2, 3]], np.int64)


def test_rollouts_leave_the_weights_alone_and_are_seeded():
    net = model(seed=1)
    net.train()  # the rollouts put it in eval mode themselves
    before = weights_hash(net)
    returns, cells = run_in_context(net, GOALS, 5, SPEC.size, SPEC.horizon, seed=7, keep_cells=True)
    assert weights_hash(net) == before and not net.training
    assert returns.shape == (4, 5) and returns.dtype == np.float32
    assert cells.shape == (4, 5, SPEC.horizon + 1, 2)
    again, cells_again = run_in_context(net, GOALS, 5, SPEC.size, SPEC.horizon, seed=7, keep_cells=True)
    assert np.array_equal(returns, again) and np.array_equal(cells, cells_again)
    _, other = run_in_context(net, GOALS, 5, SPEC.size, SPEC.horizon, seed=8, keep_cells=True)
    assert not np.array_equal(cells, other)
    only, none = run_in_context(net, GOALS, 5, SPEC.size, SPEC.horizon, seed=7)
    assert none is None and np.array_equal(only, returns)


def test_rollout_returns_are_the_env_reward_of_the_cells_visited():
    net = model(seed=2)
    episodes = 6  # more than the context holds: the window slides
    returns, cells = run_in_context(net, GOALS, episodes, SPEC.size, SPEC.horizon, seed=0, keep_cells=True)
    assert (cells[:, :, 0] == start_cell(SPEC.size)).all()
    assert (np.abs(np.diff(cells, axis=2)).sum(-1) <= 1).all()  # one move per step
    assert ((cells >= 0) & (cells < SPEC.size)).all()
    paid = reward(cells[:, :, 1:], GOALS[:, None, None, :]).sum(-1)
    assert np.array_equal(returns, paid)
    assert returns.sum() > 0  # the check compared some rewards (a random policy finds a near goal)


class Scripted:
    """A stand-in model that always moves right and records the windows it is shown."""

    def __init__(self, context: int):
        self.context, self.seen = context, []

    def eval(self):
        return self

    def sample(self, window, gen):
        self.seen.append({k: v.clone() for k, v in window.items()})
        return torch.full((len(window["cells"]),), 4)


def test_rollouts_show_the_model_its_own_growing_context_across_episodes():
    horizon, episodes, context = 4, 3, 6
    stub = Scripted(context)
    goals = np.array([[2, 4], [0, 0]])
    returns, _ = run_in_context(stub, goals, episodes, 5, horizon, seed=0)
    assert returns[0].tolist() == [best_return((2, 4), 5, horizon)] * episodes == [3.0] * 3
    assert returns[1].tolist() == [0.0] * 3
    assert len(stub.seen) == horizon * episodes
    right_path = [2 * 5 + 2, 2 * 5 + 3, 2 * 5 + 4, 2 * 5 + 4]  # (2, 2), (2, 3), (2, 4), (2, 4)
    for i, w in enumerate(stub.seen):
        n = min(i + 1, context)
        assert w["cells"].shape == (2, n) and w["mask"].all()
        steps = range(i + 1 - n, i + 1)
        assert w["cells"][0].tolist() == [right_path[s % horizon] for s in steps]
        assert w["timesteps"][0].tolist() == [s % horizon for s in steps]
        want_action = [NO_ACTION if s == 0 else 4 for s in steps]
        assert w["prev_actions"][0].tolist() == want_action
        # the reward of the step before: 1 once on the goal, carried into the next episode's first step
        want_reward = [0.0 if s == 0 else float((s - 1) % horizon >= 1) for s in steps]
        assert w["prev_rewards"][0].tolist() == want_reward
        assert (w["prev_rewards"][1] == 0).all()


def test_evaluation_refuses_a_model_whose_weights_change_during_its_rollouts(tmp_path, monkeypatch):
    from justask.config import load_params
    from justask.errors import StageFailed
    from justask.families.improve import evaluate

    params = load_params(Path(__file__).parents[3] / "profiles" / "test.yaml")
    fam = params.family("improve")
    spec = RoomSpec(fam.env.size, fam.env.max_episode_steps)
    hp = fam.train.model.hp
    prov = provenance("improve", "histories", "ad", config="c" * 64, data="d" * 64)
    save_model(hp, spec, prov, tmp_path / "model.pt", build_model(spec, hp), {})
    job = evaluate.RolloutJob(params, tmp_path / "model.pt", prov, (5, 6), keep_cells=True)
    returns, cells = evaluate.run_frozen(job)
    assert returns.shape == (2 * len(fam.env.held_out_goals), fam.evaluate.episodes)
    assert cells.shape[:2] == (len(fam.env.held_out_goals), fam.evaluate.episodes)

    def learning_rollouts(model, *args, **kwargs):  # what the hash is there to catch
        with torch.no_grad():
            model.head.bias += 0.1
        return run_in_context(model, *args, **kwargs)

    monkeypatch.setattr(evaluate, "run_in_context", learning_rollouts)
    with pytest.raises(StageFailed, match=r"model.pt changed during its in-context rollouts"):
        evaluate.run_frozen(job)
