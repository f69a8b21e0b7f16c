"""Params schema of the ``reward`` family (``families.reward`` in params.yaml): D-REX on LunarLander."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from justask.lunar.config import BehaviourSpec, EnvConfig
from justask.lunar.controllers import CONTROLLERS
from justask.settings import (
    FamilySection,
    FitConfig,
    Fraction,
    Increasing,
    PolicyConfig,
    PosInt,
    Strict,
    ValidateConfig,
)


class CloneConfig(Strict):
    """Behavioural cloning of the demonstrator (an MLP fitted on its few demonstrations)."""

    hidden: PosInt = 64
    layers: Annotated[int, Field(ge=1, le=12)] = 2
    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0.0, le=1.0)] = 1e-4
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 256
    steps: PosInt = 2000
    val_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.2


class CollectConfig(Strict):
    """The weak demonstrator, its clone rolled out at graded noise, and held-out trajectories."""

    workers: Annotated[int, Field(ge=1, le=64)] = 2
    envs_per_worker: Annotated[int, Field(ge=1, le=512)] = 16
    reference_episodes: Annotated[int, Field(ge=2)] = 50
    demonstrator: str = "sloppy"
    demos: Annotated[int, Field(ge=2)] = 10
    clone: CloneConfig = CloneConfig()
    noise: list[Fraction] = [0.0, 0.25, 0.5, 0.75, 1.0]  # epsilon of each noise level
    episodes_per_noise: Annotated[int, Field(ge=2)] = 20
    # Policies the ranking model never sees, for judging it (true returns only used there).
    held_out: list[BehaviourSpec] = [
        BehaviourSpec(controller="expert", episodes=20),
        BehaviourSpec(controller="expert", epsilon=0.2, episodes=20),
        BehaviourSpec(controller="expert", epsilon=0.5, episodes=20),
        BehaviourSpec(controller="random", episodes=20),
    ]

    @field_validator("demonstrator")
    @classmethod
    def scripted(cls, v: str) -> str:
        if v not in CONTROLLERS or CONTROLLERS[v][0] is None:
            allowed = ", ".join(k for k, (g, _) in CONTROLLERS.items() if g is not None)
            raise ValueError(f"unknown or unscripted demonstrator {v!r}; allowed: {allowed}")
        return v

    @field_validator("noise")
    @classmethod
    def graded(cls, v: list[float]) -> list[float]:
        if len(v) < 2 or sorted(set(v)) != v:
            raise ValueError("noise must list at least two distinct levels in increasing order, e.g. [0.0, 0.5, 1.0]")
        return v

    @field_validator("held_out")
    @classmethod
    def some_held_out(cls, v: list[BehaviourSpec]) -> list[BehaviourSpec]:
        if not v:
            raise ValueError("held_out needs at least one behaviour to judge the learned reward on")
        if len({b.name for b in v}) != len(v):
            raise ValueError("held_out lists the same behaviour (controller, epsilon) twice; merge them")
        return v


class RelabelConfig(Strict):
    """Ranked pairs from the noise levels (see :mod:`justask.families.reward.pairs`). The T-REX
    objective of the first recorded run is ``whole_episodes: 0, noise_margin: 0, rank_demos: false``
    (with ``train.ranking.distinct_pairs: false``)."""

    val_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.2
    snippet: Annotated[int, Field(ge=2, le=10_000)] = 50  # steps per side (shorter when an episode is)
    pairs: PosInt = 15_000  # training pairs, split among the ensemble's members when distinct_pairs
    val_pairs: PosInt = 1000
    whole_episodes: Fraction = 0.5  # share of pairs comparing whole episodes (learns length and endings)
    noise_margin: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3  # least noise gap between the two sides
    rank_demos: bool = True  # the demonstrations as the top-ranked group, above noise 0


class RankingConfig(Strict):
    """The learned reward: an MLP trained on ranked snippet pairs (T-REX loss), read as a reward
    r(s) per state (``form: state``, T-REX's) or as a potential Phi(s) whose change is the reward
    (``form: potential``: an episode's learned return is decided by where it ends, not how long it
    lasts; :mod:`justask.families.reward.ranking`)."""

    form: Literal["state", "potential"] = "state"

    hidden: PosInt = 128
    layers: Annotated[int, Field(ge=1, le=12)] = 2
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0.0, le=1.0)] = 1e-3
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 64
    steps: PosInt = 2000
    ensemble: Annotated[int, Field(ge=1, le=32)] = 3  # members, averaged
    distinct_pairs: bool = True  # member k trains on every ensemble-th pair from k (false: all on all)
    tune: bool = False

    @property
    def hp(self) -> dict:
        return self.model_dump(exclude={"tune", "steps", "ensemble", "distinct_pairs"})


class RoundsConfig(Strict):
    """Improvement rounds without RL (:mod:`justask.families.reward.rounds`): ask, roll out with the
    noise schedule, relabel with the learned reward, refit."""

    rounds: Annotated[int, Field(ge=0, le=20)] = 3  # 0: no rounds
    episodes_per_noise: PosInt = 10  # per noise level, policy seed and round
    ask: Annotated[float, Field(ge=0.0, le=5.0)] = 1.1  # quantile target of the data's learned returns


class PPOConfig(Strict):
    """The RL reference (:mod:`justask.families.reward.ppo`): stable-baselines3 PPO on the learned
    reward, one run per training seed. Defaults: rl-zoo3's LunarLander settings, D-REX's 1e6 steps."""

    timesteps: PosInt = 1_000_000  # env steps per run
    n_envs: Annotated[int, Field(ge=1, le=256)] = 16
    n_steps: Annotated[int, Field(ge=2)] = 1024  # per env and update
    batch_size: Annotated[int, Field(ge=2)] = 64
    n_epochs: Annotated[int, Field(ge=1, le=100)] = 4
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 3e-4
    gamma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.999
    gae_lambda: Annotated[float, Field(ge=0.0, le=1.0)] = 0.98
    clip_range: Annotated[float, Field(gt=0.0, le=1.0)] = 0.2
    ent_coef: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    vf_coef: Annotated[float, Field(ge=0.0, le=10.0)] = 0.5
    max_grad_norm: Annotated[float, Field(gt=0.0)] = 0.5
    hidden: PosInt = 64
    layers: Annotated[int, Field(ge=1, le=12)] = 2

    @model_validator(mode="after")
    def whole_minibatches(self) -> PPOConfig:
        rollout = self.n_envs * self.n_steps
        if rollout % self.batch_size:
            raise ValueError(f"batch_size {self.batch_size} does not divide a rollout of n_envs x n_steps = "
                             f"{self.n_envs} x {self.n_steps} = {rollout} steps; pick a divisor (e.g. 64)")
        if self.timesteps < rollout:
            raise ValueError(f"timesteps {self.timesteps} is less than one rollout (n_envs x n_steps = {rollout}); "
                             "raise timesteps or lower n_steps")
        return self

    @property
    def hp(self) -> dict:
        return self.model_dump(exclude={"timesteps", "n_envs"})


class TrainConfig(FitConfig):
    ranking: RankingConfig = RankingConfig()
    rounds: RoundsConfig = RoundsConfig()
    # The oracle filter, a reference that reads the env's reward: %BC on the noise data's episodes
    # with the top ``top_fraction`` true returns (null: not fitted).
    oracle: PolicyConfig | None = PolicyConfig(hidden=256, layers=3, dropout=0.0, batch_size=512, steps=4000,
                                               top_fraction=0.1)
    # The RL reference: PPO on the learned reward (null: not run).
    ppo: PPOConfig | None = PPOConfig()
    models: dict[str, PolicyConfig]  # return-conditioned policies on learned returns: rvs and/or dt

    @field_validator("models")
    @classmethod
    def conditioned_only(cls, v: dict[str, PolicyConfig]) -> dict[str, PolicyConfig]:
        bad = set(v) - {"rvs", "dt"}
        if bad or not v:
            raise ValueError(f"models must name return-conditioned policies (rvs, dt); found {sorted(v) or 'none'}")
        return v


class EvaluateConfig(Strict):
    episodes: Annotated[int, Field(ge=1)] = 20  # per (policy, seed, target)
    # Asked-for learned returns as quantiles of the data's episode learned returns (1 = the best
    # episode; above 1: that many ranges past it, see justask.families.reward.asks.quantile_target).
    target_quantiles: Annotated[list[Annotated[float, Field(ge=0.0, le=5.0)]], Increasing] = [0.9, 0.99, 1.0, 1.1]
    num_envs: Annotated[int, Field(ge=1, le=1024)] = 64
    bootstrap_reps: Annotated[int, Field(ge=100)] = 2000
    gif: bool = True
    gif_max_steps: PosInt = 400



class RewardConfig(FamilySection):
    env: EnvConfig
    collect: CollectConfig
    validate_: ValidateConfig = Field(alias="validate")
    relabel: RelabelConfig
    train: TrainConfig
    evaluate: EvaluateConfig

    @model_validator(mode="after")
    def pairs_can_be_drawn(self) -> RewardConfig:
        noise, rel, ranking = self.collect.noise, self.relabel, self.train.ranking
        if not rel.rank_demos and noise[-1] - noise[0] < max(rel.noise_margin, 1e-12):
            raise ValueError(f"relabel.noise_margin {rel.noise_margin:g} is wider than the noise levels "
                             f"{noise} span: no pair can be ranked; lower it or widen collect.noise")
        if ranking.distinct_pairs and rel.pairs < ranking.ensemble:
            raise ValueError(f"relabel.pairs {rel.pairs} cannot give each of the {ranking.ensemble} ensemble members "
                             "its own pairs; raise relabel.pairs or set train.ranking.distinct_pairs: false")
        return self
