"""Params schema of the ``reward`` family (``families.reward`` in params.yaml): D-REX on LunarLander."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

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
    val_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.2
    snippet: Annotated[int, Field(ge=2, le=10_000)] = 50  # steps per snippet (shorter when an episode is)
    pairs: PosInt = 5000  # training pairs of snippets
    val_pairs: PosInt = 1000


class RankingConfig(Strict):
    """The learned reward r(s): an MLP trained on ranked snippet pairs (T-REX loss)."""

    hidden: PosInt = 128
    layers: Annotated[int, Field(ge=1, le=12)] = 2
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0.0, le=1.0)] = 1e-3
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 64
    steps: PosInt = 2000
    ensemble: Annotated[int, Field(ge=1, le=32)] = 3  # members, averaged
    tune: bool = False

    @property
    def hp(self) -> dict:
        return self.model_dump(exclude={"tune", "steps", "ensemble"})


class TrainConfig(FitConfig):
    ranking: RankingConfig = RankingConfig()
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
    # Asked-for learned returns as fractions of the data's learned-return range (1 = the best episode).
    target_fractions: Annotated[list[Annotated[float, Field(ge=-1.0, le=5.0)]], Increasing] = [1.0, 1.25, 1.5]
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
