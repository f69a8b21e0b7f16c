"""The reward family (D-REX): ranked snippet pairs, the T-REX loss, a learned reward that ranks
(per-state or potential form), learned returns, rollouts that count down with the learned reward
(or hold a potential's ask), and seeded data stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import ROOT, tree_hashes
from justask.config import load_params
from justask.families.reward.asks import clone_provenance
from justask.families.reward.evaluate import reward_correlation
from justask.families.reward.pairs import Pairs, RankingTable, SnippetPairs, make_pairs
from justask.families.reward.ranking import LearnedReward, RewardNet, load_reward_net
from justask.families.reward.train import learned_table, pair_accuracy, ranking_candidate, ranking_spec
from justask.io import files_digest
from justask.lunar.asking import ConditionedRollout
from justask.lunar.config import EnvConfig
from justask.models import Spec, build_model
from justask.paths import family_paths
from justask.steps import StepTable
from justask.training.loop import Loop, fit

CPU = torch.device("cpu")


def ranking_table(lengths=(30, 20, 25, 12), noise=(0.0, 0.5, 1.0, 0.5), split=None, seed=0) -> RankingTable:
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    return RankingTable(observations=rng.normal(size=(n, 3)).astype(np.float32),
                        starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                        noise=np.asarray(noise, np.float64),
                        split=np.zeros(len(lengths), np.int8) if split is None else np.asarray(split, np.int8))


def test_pairs_follow_the_noise_order_and_the_trex_start_rule():
    table = ranking_table()
    pairs = make_pairs(table, np.arange(4), 400, snippet=15, seed=0)
    assert not pairs.whole.any() and (pairs.stride == 1).all()
    episode_of = np.repeat(np.arange(4), table.lengths)
    ep_a, ep_b = episode_of[pairs.start[:, 0]], episode_of[pairs.start[:, 1]]
    assert (table.noise[ep_a] != table.noise[ep_b]).all()  # never two episodes of one noise level
    better = np.where(pairs.label == 1, ep_b, ep_a)
    worse = np.where(pairs.label == 1, ep_a, ep_b)
    assert (table.noise[better] < table.noise[worse]).all()  # label = the less noisy snippet
    assert 0.35 < pairs.label.mean() < 0.65  # which side wins is a coin flip
    start = lambda rows, eps: rows - table.starts[eps]  # noqa: E731 (offset inside the episode)
    s_better = start(np.where(pairs.label == 1, pairs.start[:, 1], pairs.start[:, 0]), better)
    s_worse = start(np.where(pairs.label == 1, pairs.start[:, 0], pairs.start[:, 1]), worse)
    length = pairs.count[:, 0]
    assert (pairs.count[:, 1] == length).all()  # snippets of equal length
    room = table.lengths[better] - length  # the latest start the better episode allows
    assert (s_better >= np.minimum(s_worse, room)).all() and (s_better <= room).all()
    assert (length == np.minimum(15, np.minimum(table.lengths[ep_a], table.lengths[ep_b]))).all()
    again = make_pairs(table, np.arange(4), 400, snippet=15, seed=0)
    assert all(np.array_equal(getattr(pairs, k), getattr(again, k)) for k in Pairs.ARRAYS)
    with pytest.raises(ValueError, match="at least 0 apart"):
        make_pairs(table, np.array([1, 3]), 10, snippet=5, seed=0)


def test_whole_episode_pairs_cover_each_episode_with_a_strided_sample():
    table = ranking_table(lengths=(30, 7, 25, 100), noise=(0.0, 0.5, 1.0, 0.5))
    pairs = make_pairs(table, np.arange(4), 300, snippet=10, seed=0, whole=1.0)
    assert pairs.whole.all()
    episode_of = np.repeat(np.arange(4), table.lengths)
    for side in (0, 1):
        e = episode_of[pairs.start[:, side]]
        offset = pairs.start[:, side] - table.starts[e]
        last = offset + pairs.stride[:, side] * (pairs.count[:, side] - 1)
        assert (pairs.count[:, side] <= 10).all() and (offset < pairs.stride[:, side]).all()
        assert (last == table.lengths[e] - 1).all()  # every side sees its episode's last step
        # the stride-weighted count is the episode's length to within one stride: an unbiased sum
        assert (np.abs(pairs.count[:, side] * pairs.stride[:, side] - table.lengths[e]) < pairs.stride[:, side]).all()
    half = make_pairs(table, np.arange(4), 400, snippet=10, seed=0, whole=0.5)
    assert 0.4 < half.whole.mean() < 0.6


def test_noise_margin_and_demonstrations_ranked_on_top():
    from justask.families.reward.pairs import DEMOS

    table = ranking_table(lengths=(20,) * 6, noise=(0.0, 0.1, 0.2, 0.5, 1.0, DEMOS))
    pairs = make_pairs(table, np.arange(6), 500, snippet=8, seed=0, margin=0.3, whole=0.5)
    episode_of = np.repeat(np.arange(6), table.lengths)
    na, nb = table.noise[episode_of[pairs.start[:, 0]]], table.noise[episode_of[pairs.start[:, 1]]]
    assert (np.abs(na - nb) >= 0.3).all()  # 0.0 vs 0.1 or 0.2 is never a label
    assert ((nb < na) == (pairs.label == 1)).all()
    demo_sides = (na == DEMOS) | (nb == DEMOS)
    assert demo_sides.any() and (np.where(na == DEMOS, pairs.label == 0, pairs.label == 1)[demo_sides]).all()
    with pytest.raises(ValueError, match="0.3 apart"):
        make_pairs(table, np.arange(3), 10, snippet=5, seed=0, margin=0.3)


def test_ensemble_members_train_on_distinct_pairs():
    from justask.families.reward.pairs import member_shard

    pairs = make_pairs(ranking_table(), np.arange(4), 90, snippet=6, seed=0, whole=0.5)
    shards = [member_shard(pairs, k, 3) for k in range(3)]
    assert [len(s) for s in shards] == [30, 30, 30]
    for k, shard in enumerate(shards):  # member k: pairs k, k + 3, ...: disjoint, together all of them
        assert all(np.array_equal(getattr(shard, a), getattr(pairs, a)[k::3]) for a in Pairs.ARRAYS)
    with pytest.raises(ValueError, match="raise relabel.pairs"):
        member_shard(pairs.subset(np.arange(2)), 0, 3)


def test_snippet_batches_gather_the_right_steps_and_mask_padding():
    table = ranking_table()
    pairs = Pairs(start=np.array([[0, 30], [50, 75]]), count=np.array([[4, 4], [2, 3]]),
                  stride=np.array([[1, 1], [1, 2]]), whole=np.array([False, True]), label=np.array([1, 0]))
    batch = SnippetPairs(table, pairs, CPU).windows(torch.tensor([0, 1]), 1)
    assert batch["obs"].shape == (2, 2, 4, 3)
    assert batch["mask"].tolist()[1] == [[True, True, False, False], [True, True, True, False]]
    assert torch.equal(batch["obs"][0, 1], torch.from_numpy(table.observations[30:34]))
    assert torch.equal(batch["obs"][1, 0, :2], torch.from_numpy(table.observations[50:52]))
    assert torch.equal(batch["obs"][1, 1, :3], torch.from_numpy(table.observations[[75, 77, 79]]))
    assert batch["weight"].tolist() == [[1.0, 1.0], [1.0, 2.0]] and batch["label"].tolist() == [1, 0]


def test_a_per_step_offset_changes_the_loss_only_when_lengths_differ():
    """The length-aware objective: shifting every state's reward by a constant changes the T-REX loss
    of whole-episode pairs (their sides cover different lengths) and leaves that of equal-length
    snippets unchanged, which is why snippets alone cannot learn what length is worth."""
    table = ranking_table(lengths=(30, 7, 25, 100), noise=(0.0, 0.5, 1.0, 0.5))
    spec = ranking_spec(table, 100)
    torch.manual_seed(0)
    model = RewardNet(spec, hidden=8, layers=1, dropout=0.0)
    losses = {}
    for whole in (0.0, 1.0):
        batch = SnippetPairs(table, make_pairs(table, np.arange(4), 64, snippet=10, seed=1, whole=whole),
                             CPU).windows(torch.arange(64), 1)
        before = model.loss(batch)
        with torch.no_grad():
            model.body[-1].bias += 0.5
        losses[whole] = (before.item(), model.loss(batch).item())
        with torch.no_grad():
            model.body[-1].bias -= 0.5
    assert losses[0.0][0] == pytest.approx(losses[0.0][1], abs=1e-5)
    assert abs(losses[1.0][0] - losses[1.0][1]) > 1e-2


def test_a_potential_rewards_where_a_snippet_ends_and_ignores_its_length():
    """``form: potential``: a side's predicted return is Phi(last sampled state) - Phi(first),
    whatever its stride, so a constant shift of Phi changes no loss, whole episodes included."""
    table = ranking_table(lengths=(30, 7, 25, 100), noise=(0.0, 0.5, 1.0, 0.5))
    torch.manual_seed(0)
    model = RewardNet(ranking_spec(table, 100), hidden=8, layers=1, dropout=0.0, form="potential")
    batch = SnippetPairs(table, make_pairs(table, np.arange(4), 64, snippet=10, seed=1, whole=0.5),
                         CPU).windows(torch.arange(64), 1)
    phi = model(batch["obs"])
    last = batch["mask"].sum(-1) - 1
    expected = torch.stack([phi[i, j, last[i, j]] - phi[i, j, 0] for i in range(64) for j in range(2)]).view(64, 2)
    assert torch.allclose(model.snippet_returns(batch), expected, atol=1e-6)
    before = model.loss(batch).item()
    with torch.no_grad():
        model.body[-1].bias += 3.0
    assert model.loss(batch).item() == pytest.approx(before, abs=1e-6)
    with pytest.raises(ValueError, match="unknown reward form"):
        RewardNet(ranking_spec(table, 100), form="shaped")


def test_a_potential_learned_from_noise_ranks_episodes_by_where_they_end():
    """Noise makes episodes drift further along one hidden direction: ranking by noise alone must
    find it, and the potential's episode return must order unseen drifts (past the best too),
    while a per-state reward's episode return grows with length, the potential's does not."""
    rng = np.random.default_rng(0)
    noise_levels = np.repeat([0.0, 0.5, 1.0], 8)

    def episode(drift: float, length: int = 40) -> np.ndarray:
        path = np.linspace(0.0, drift, length)[:, None] * [1.0, 0.0, 0.0]
        return (path + 0.1 * rng.normal(size=(length, 3))).astype(np.float32)

    table = RankingTable(observations=np.concatenate([episode(-3.0 * e) for e in noise_levels]),
                         starts=np.arange(0, 40 * 25, 40).astype(np.int64), noise=noise_levels,
                         split=np.tile([0, 0, 0, 1], 6).astype(np.int8))
    train = SnippetPairs(table, make_pairs(table, np.flatnonzero(table.split == 0), 600, 10, 0, whole=0.5), CPU)
    val = SnippetPairs(table, make_pairs(table, np.flatnonzero(table.split == 1), 200, 10, 1, whole=0.5), CPU)
    hp = {"hidden": 16, "layers": 1, "dropout": 0.0, "lr": 3e-3, "weight_decay": 0.0, "batch_size": 32,
          "form": "potential"}
    build, optimisation = ranking_candidate(ranking_spec(table, 40), hp, 300)
    result = fit(build, train, val, optimisation, Loop(eval_every=50, patience=10, seed=0, device=CPU))
    reward = LearnedReward([result.model], [1.0])
    assert reward.form == "potential" and reward.holds_ask and pair_accuracy([result.model], [1.0], val) > 0.9
    drifts = np.linspace(-4, 1, 9)
    predicted = [reward.episode_rewards(episode(d)).sum() for d in drifts]
    assert reward_correlation(drifts, np.array(predicted), demonstrator_return=0.0)["spearman"] > 0.9
    short, long = episode(0.0, 20), episode(0.0, 200)
    assert abs(reward.episode_rewards(long).sum() - reward.episode_rewards(short).sum()) < 0.5
    assert np.array_equal(reward.countdown(long), np.zeros(len(long)))  # a potential's ask is held


def test_a_reward_net_checkpoint_keeps_its_form(tmp_path):
    from justask.training.checkpoints import save_checkpoint

    table = ranking_table()
    spec = ranking_spec(table, 100)
    hp = {"hidden": 8, "layers": 1, "dropout": 0.0, "form": "potential"}
    model = RewardNet(spec, hidden=8, layers=1, dropout=0.0, form="potential")
    save_checkpoint(tmp_path / "model.pt", "reward", hp, spec, model, {})
    loaded = load_reward_net(tmp_path / "model.pt")
    x = torch.as_tensor(table.observations)
    assert loaded.form == "potential" and torch.equal(loaded(x), model(x))


def test_trex_loss_is_bradley_terry_on_summed_rewards():
    table = ranking_table()
    spec = ranking_spec(table, 100)
    model = RewardNet(spec, hidden=8, layers=1, dropout=0.0)
    pairs = make_pairs(table, np.arange(4), 8, snippet=6, seed=1)
    batch = SnippetPairs(table, pairs, CPU).sample(torch.Generator().manual_seed(0), 8, 1)
    r = model(batch["obs"])
    returns = (r * batch["mask"]).sum(-1) * batch["weight"]
    p_label = torch.softmax(returns, -1).gather(1, batch["label"][:, None]).squeeze(1)
    assert torch.allclose(model.loss(batch), -p_label.log().mean(), atol=1e-6)


def test_a_learned_reward_recovers_the_hidden_ranking():
    """Noise makes states worse along one hidden direction: ranking by noise alone must find it,
    and the learned return must order unseen trajectories by that direction."""
    rng = np.random.default_rng(0)
    noise_levels = np.repeat([0.0, 0.5, 1.0], 8)
    episodes = [rng.normal(size=(40, 3)) + np.array([-3.0 * eps, 0.0, 0.0]) for eps in noise_levels]
    table = RankingTable(observations=np.concatenate(episodes).astype(np.float32),
                         starts=np.arange(0, 40 * 25, 40).astype(np.int64), noise=noise_levels,
                         split=np.tile([0, 0, 0, 1], 6).astype(np.int8))
    train = SnippetPairs(table, make_pairs(table, np.flatnonzero(table.split == 0), 600, 10, 0), CPU)
    val = SnippetPairs(table, make_pairs(table, np.flatnonzero(table.split == 1), 200, 10, 1), CPU)
    hp = {"hidden": 16, "layers": 1, "dropout": 0.0, "lr": 3e-3, "weight_decay": 0.0, "batch_size": 32}
    build, optimisation = ranking_candidate(ranking_spec(table, 40), hp, 300)
    result = fit(build, train, val, optimisation, Loop(eval_every=50, patience=10, seed=0, device=CPU))
    assert pair_accuracy([result.model], [1.0], val) > 0.9
    reward = LearnedReward([result.model], [1.0])
    shifts = np.linspace(-4, 1, 9)  # unseen trajectories, including better than the best in the data
    predicted = [reward(rng.normal(size=(40, 3)) + [s, 0, 0]).sum() for s in shifts]
    assert reward_correlation(shifts, np.array(predicted), demonstrator_return=0.0)["spearman"] > 0.9


def test_ensemble_members_are_scaled_before_averaging():
    spec = Spec(obs_dim=1, act_dim=1, discrete=False, max_timestep=10, obs_mean=(0.0,), obs_std=(1.0,),
                return_scale=1.0)
    a, b = (RewardNet(spec, hidden=4, layers=1, dropout=0.0) for _ in range(2))
    x = np.linspace(-1, 1, 7)[:, None]
    raw = LearnedReward([a, b], [1.0, 1.0]).per_member(x)
    assert np.allclose(LearnedReward([a, b], [2.0, 4.0])(x), (raw[0] / 2 + raw[1] / 4) / 2)
    with pytest.raises(ValueError, match="one scale per"):
        LearnedReward([a], [1.0, 2.0])


class Double(LearnedReward):
    """A learned reward whose net outputs twice the first coordinate, in either form."""

    def __init__(self, form: str):
        self.form, self.holds_ask = form, form == "potential"

    def __call__(self, obs):
        return 2.0 * np.asarray(obs)[:, 0]


def test_learned_returns_replace_every_return_to_go():
    steps = StepTable(observations=np.array([[1.0], [2.0], [3.0], [4.0], [5.0]], np.float32),
                      actions=np.zeros(5, np.int64), rtg=np.zeros(5, np.float32), timesteps=np.array([0, 1, 0, 1, 2]),
                      episode=np.array([0, 0, 1, 1, 1]), starts=np.array([0, 2, 5]), returns=np.zeros(2),
                      split=np.zeros(2, np.int8))
    table = learned_table(steps, Double("state"))
    assert table.rtg.tolist() == [6.0, 4.0, 24.0, 18.0, 10.0]
    assert table.returns.tolist() == [6.0, 24.0]
    # A potential: each episode's return is Phi(last) - Phi(first), held as every step's condition.
    table = learned_table(steps, Double("potential"))
    assert table.returns.tolist() == [2.0, 4.0]
    assert table.rtg.tolist() == [2.0, 2.0, 4.0, 4.0, 4.0]


def test_rollouts_count_down_with_the_learned_reward_not_the_env_reward():
    spec = Spec(obs_dim=2, act_dim=2, discrete=True, max_timestep=10, obs_mean=(0.0, 0.0), obs_std=(1.0, 1.0),
                return_scale=1.0)
    model = build_model("rvs", {"hidden": 4, "layers": 1, "dropout": 0.0}, spec)
    for form, remaining in (("state", [6.0, 8.0]), ("potential", [10.0, 10.0])):
        policy = ConditionedRollout(model, 2, np.array([10.0, 10.0]), CPU, reward_fn=Double(form).countdown)
        policy.start(0, 0), policy.start(1, 1)
        policy.act(np.array([[2.0, 2.0], [1.0, 0.5]], np.float32), np.array([True, True]))
        policy.observe(np.array([100.0, 100.0]), np.array([False, False]), np.array([True, True]))
        assert policy.remaining.tolist() == remaining  # never the env's 100


def test_correlation_on_better_than_demonstrator_trajectories():
    true = np.array([-100.0, 0.0, 50.0, 150.0, 200.0, 250.0])
    predicted = np.array([-5.0, -1.0, 2.0, 3.0, 2.5, 9.0])
    out = reward_correlation(true, predicted, demonstrator_return=100.0)
    assert out["episodes"] == 6 and out["better_than_demonstrator"]["episodes"] == 3
    assert out["spearman"] == pytest.approx(0.9429, abs=1e-4)
    assert out["better_than_demonstrator"]["spearman"] == pytest.approx(0.5)


def test_reward_data_stages_are_byte_identical(tmp_path: Path):
    """Demos, clone, noise injection and snippet pairs: same params and seed, same bytes."""
    from justask.families.reward.collect import collect
    from justask.families.reward.relabel import relabel

    params = load_params(ROOT / "profiles" / "test.yaml")
    for name in ("a", "b"):
        collect(params, tmp_path / name)
        relabel(params, tmp_path / name)
    for stage in ("collect", "relabel"):
        ha = tree_hashes(tmp_path / "a" / "artifacts" / "reward" / stage)
        assert ha and ha == tree_hashes(tmp_path / "b" / "artifacts" / "reward" / stage), stage
    # the clone records what it was fitted for and on: the collect settings and the demos dataset
    paths = family_paths("reward", tmp_path / "a")
    clone = torch.load(paths.collect / "clone" / "model.pt", weights_only=True)
    assert clone["provenance"] == clone_provenance(params, paths)
    assert clone["provenance"]["data"] == files_digest(paths.dataset("demos"))


def test_reward_params_are_checked():
    from pydantic import ValidationError

    from justask.families.reward.config import CollectConfig, TrainConfig

    with pytest.raises(ValidationError, match="unscripted demonstrator 'random'"):
        CollectConfig(demonstrator="random")
    with pytest.raises(ValidationError, match="increasing order"):
        CollectConfig(noise=[0.5, 0.0])
    with pytest.raises(ValidationError, match="return-conditioned policies"):
        TrainConfig(models={"bc": {}})
    assert EnvConfig().id == "LunarLander-v3"
