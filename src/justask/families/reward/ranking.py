"""A learned reward trained to rank trajectory snippets (T-REX / D-REX): the net, its ensemble
as a reward function, its checkpoints, and the learned returns of a step table.

Brown et al., "Extrapolating Beyond Suboptimal Demonstrations via Inverse Reinforcement Learning
from Observations" (T-REX, 2019) and "Better-than-Demonstrator Imitation Learning via
Automatically-Ranked Demonstrations" (D-REX, 2019). The Bradley-Terry model says P(b preferred
to a) = softmax(R_a, R_b)[b], and the loss is the cross-entropy against which snippet was ranked
higher. The net's output is read in one of two forms (``train.ranking.form``):

* ``state`` (T-REX's): a reward r(s) per state; a snippet's predicted return is the sum of r
  over its steps (a whole-episode side, see :mod:`.pairs`, is a strided sample, its sum weighted
  by the stride). Its per-step level pays or punishes episode length.
* ``potential``: a value Phi(s) per state and the reward of a step its change,
  r_t = Phi(s_{t+1}) - Phi(s_t); a snippet's predicted return telescopes to
  Phi(last state) - Phi(first state), so length is worth nothing by construction and an episode is
  judged by where it ends. The last stored step of an episode gets 0: the data do not store the
  state an episode ends in, so the learned return of an episode is Phi(s_{T-1}) - Phi(s_0).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from justask.errors import CheckpointError
from justask.models.common import Normalizer
from justask.paths import family_paths
from justask.steps import Spec, StepTable, returns_to_go
from justask.training.checkpoints import check_provenance, read_payload, rebuild
from justask.training.loop import Optimisation

from .pairs import RankingTable, SnippetPairs

FORMS = ("state", "potential")


class RewardNet(nn.Module):
    context = 1  # the trainer's window length; a pair batch carries its own snippet length

    def __init__(self, spec, hidden: int = 128, layers: int = 2, dropout: float = 0.0, form: str = "state"):
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"unknown reward form {form!r}; expected one of {', '.join(FORMS)}")
        self.spec, self.form = spec, form
        self.norm = Normalizer(spec)
        dims = [spec.obs_dim] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            blocks += [nn.Linear(a, b), nn.GELU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*blocks, nn.Linear(hidden, 1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Reward r(s) (``state``) or value Phi(s) (``potential``) of each state: (..., obs_dim) -> (...)."""
        return self.body(self.norm.obs(obs)).squeeze(-1)

    def snippet_returns(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 2) predicted returns of the two sides of each pair: ``state``, the summed reward
        (padding masked out, weighted by the side's stride); ``potential``, Phi of its last
        sampled state minus Phi of its first."""
        out = self(batch["obs"])
        if self.form == "state":
            return (out * batch["mask"]).sum(-1) * batch["weight"]
        last = batch["mask"].sum(-1, keepdim=True).long() - 1
        return out.gather(-1, last).squeeze(-1) - out[..., 0]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(self.snippet_returns(batch).float(), batch["label"].long())


def episode_rewards(values: np.ndarray, form: str) -> np.ndarray:
    """Per-step learned rewards of one episode from the ensemble's outputs on its stored states,
    in order: the outputs themselves (``state``) or their changes, 0 at the last step (``potential``)."""
    return values if form == "state" else np.append(np.diff(values), 0.0)


class LearnedReward:
    """An ensemble of reward nets (one ``form``) as a NumPy function of observations.

    Each member's output is divided by its own scale (the standard deviation of its outputs on the
    training data's states) before averaging, so no member dominates because the ranking loss
    happened to leave it with larger outputs. State rewards are not centred: a constant shift of r
    rewards or punishes episode length, which whole-episode pairs teach and equal-length snippets
    cannot (see :mod:`.pairs`); a potential's constant shift changes nothing.

    How policies are asked (``holds_ask``): a state reward's policies read the learned
    return-to-go, counted down by r of each state acted in (:meth:`countdown`); a potential's
    read the episode's learned return at every step, held for the whole episode (a potential
    reward pays for where the episode ends, which no state on the way can count down).
    """

    def __init__(self, members: list[RewardNet], scales: list[float], device: torch.device | str = "cpu"):
        if len(members) != len(scales) or not members:
            raise ValueError("need one scale per ensemble member, and at least one member")
        forms = {m.form for m in members}
        if len(forms) > 1:
            raise ValueError(f"ensemble members of different forms {sorted(forms)}")
        self.members = [m.to(device).eval() for m in members]
        self.scales = [float(s) for s in scales]
        self.device = device
        self.form = forms.pop()
        self.holds_ask = self.form == "potential"

    @torch.no_grad()
    def per_member(self, obs: np.ndarray, batch: int = 65536) -> np.ndarray:
        """(members, N) raw rewards of ``obs`` (N, obs_dim)."""
        out = np.empty((len(self.members), len(obs)), np.float64)
        for i in range(0, len(obs), batch):
            x = torch.as_tensor(np.asarray(obs[i:i + batch], np.float32), device=self.device)
            for k, m in enumerate(self.members):
                out[k, i:i + batch] = m(x).double().cpu().numpy()
        return out

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """(N,) ensemble output on ``obs`` (N, obs_dim): r(s) or Phi(s), by ``form``."""
        raw = self.per_member(obs)
        return (raw / np.asarray(self.scales)[:, None]).mean(0)

    def episode_rewards(self, obs: np.ndarray) -> np.ndarray:
        """(T,) learned reward of each step of one episode, from its stored states in order."""
        return episode_rewards(self(obs), self.form)

    def step_rewards(self, obs: np.ndarray, next_obs: np.ndarray, ended: np.ndarray) -> np.ndarray:
        """(N,) learned reward of N parallel envs' steps from ``obs`` to ``next_obs`` (for an
        ``ended`` env, ``next_obs`` is already its next episode's first state), as in
        :meth:`episode_rewards`: r(s_t), or Phi(s_{t+1}) - Phi(s_t) and 0 for an episode's last step."""
        if self.form == "state":
            return self(obs)
        return np.where(ended, 0.0, self(next_obs) - self(obs))

    def countdown(self, obs: np.ndarray) -> np.ndarray:
        """What an ask's remaining target drops by after acting in each of ``obs``: r(s), or 0
        when the ask is held (``holds_ask``)."""
        return np.zeros(len(obs)) if self.holds_ask else self(obs)


def load_reward_net(path, device: torch.device | str = "cpu", expect: dict | None = None) -> RewardNet:
    """Rebuild one ensemble member from its ``model.pt``; :class:`CheckpointError` naming the file
    otherwise (or, with ``expect``, when its provenance differs)."""
    from justask.models import spec_of

    payload = read_payload(path, device, ("reward",), "reward family's learned reward")
    if expect is not None:
        check_provenance(path, payload, expect, "dvc repro train@reward")
    model = rebuild(path, payload, lambda p: RewardNet(spec_of(p), hidden=p["hp"]["hidden"], layers=p["hp"]["layers"],
                                                        dropout=p["hp"]["dropout"],
                                                        form=p["hp"].get("form", "state")), "a reward net")
    return model.to(device).eval()


def ranking_dir(root: Path) -> Path:
    return family_paths("reward", root).train / "ranking"


def load_learned_reward(root: Path, device: torch.device | str = "cpu",
                        expect: dict | None = None) -> tuple[LearnedReward, dict]:
    """The trained ensemble as a NumPy reward function, and ``ensemble.json`` (``expect``: every
    member's provenance, :func:`load_reward_net`)."""
    folder = ranking_dir(root)
    index = folder / "ensemble.json"
    try:
        info = json.loads(index.read_text())
        n, scales = int(info["members"]), info["scales"]
    except (ValueError, TypeError, KeyError) as e:  # FileNotFoundError passes: the caller names the stage
        raise CheckpointError(f"{index}: not a valid ensemble index ({type(e).__name__}: {e}); "
                              "re-run `dvc repro train@reward` to rebuild it.") from e
    if n < 1 or len(scales) != n:
        raise CheckpointError(f"{index}: lists {n} members but {len(scales)} scales; "
                              "re-run `dvc repro train@reward` to rebuild it.")
    members = [load_reward_net(folder / f"member{k}" / "model.pt", device, expect) for k in range(n)]
    dims = {m.spec.obs_dim for m in members}
    if len(dims) > 1:
        raise CheckpointError(f"{folder}: ensemble members read observations of different sizes {sorted(dims)}; "
                              "re-run `dvc repro train@reward` to rebuild them together.")
    return LearnedReward(members, scales, device), info


def learned_reward_fn(root: Path, device: str) -> LearnedReward:
    """The learned reward of the run at ``root`` (with ``functools.partial``, a picklable builder
    for jobs in other processes)."""
    return load_learned_reward(root, device)[0]


def countdown_fn(root: Path, device: str):
    """What the asks of the run at ``root`` count down by (:meth:`LearnedReward.countdown`; with
    ``functools.partial``, a picklable builder for rollout jobs in other processes)."""
    return learned_reward_fn(root, device).countdown


def ranking_spec(table: RankingTable, max_episode_steps: int) -> Spec:
    """Input spec of the reward nets: observation statistics of the training episodes."""
    rows = np.repeat(table.split, table.lengths) == 0
    obs = table.observations[rows]
    return Spec(obs_dim=obs.shape[1], act_dim=1, discrete=False, max_timestep=max_episode_steps,
                obs_mean=tuple(float(x) for x in obs.mean(0)), obs_std=tuple(float(x) for x in obs.std(0)),
                return_scale=1.0)


@torch.no_grad()
def pair_accuracy(members: list[RewardNet], scales: list[float], pairs: SnippetPairs, batch: int = 1024) -> float:
    """Fraction of pairs whose higher-ranked snippet gets the higher (ensemble) predicted return."""
    hits = 0
    for i in range(0, len(pairs), batch):
        b = pairs.windows(pairs.rows[i:i + batch], 1)
        returns = sum(m.eval().snippet_returns(b) / s for m, s in zip(members, scales, strict=True))
        hits += int((returns.argmax(-1) == b["label"]).sum())
    return hits / len(pairs)


def learned_table(steps: StepTable, reward: LearnedReward) -> StepTable:
    """``steps`` with episode returns from the learned reward, and as each step's condition the
    learned return-to-go or, when the reward holds its asks, the episode's learned return."""
    values = reward(steps.observations)
    spans = list(zip(steps.starts[:-1], steps.starts[1:], strict=True))
    per_episode = [episode_rewards(values[a:b], reward.form) for a, b in spans]
    returns = np.array([r.sum() for r in per_episode])
    rtg = np.concatenate([np.full(len(r), r.sum()) if reward.holds_ask else returns_to_go(r) for r in per_episode])
    return StepTable(observations=steps.observations, actions=steps.actions, rtg=rtg.astype(np.float32),
                     timesteps=steps.timesteps, episode=steps.episode, starts=steps.starts, returns=returns,
                     split=steps.split)


def ranking_candidate(spec: Spec, hp: dict, steps: int) -> tuple[partial, Optimisation]:
    """A reward net with ``hp`` fitted for ``steps`` (see :data:`justask.training.tune.Candidate`)."""
    return (partial(RewardNet, spec, hidden=hp["hidden"], layers=hp["layers"], dropout=hp["dropout"],
                    form=hp.get("form", "state")),
            Optimisation(lr=hp["lr"], weight_decay=hp["weight_decay"], batch_size=hp["batch_size"], steps=steps))
