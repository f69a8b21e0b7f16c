"""Params schema of the ``return`` family (``families.return`` in params.yaml)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from justask.lunar.config import BehaviourSpec, EnvConfig
from justask.settings import (
    CONDITIONED,
    MODEL_KINDS,
    FamilySection,
    FitConfig,
    Increasing,
    MinariSource,
    PolicyConfig,
    Strict,
    ValidateConfig,
    own_or_minari,
)

# A dataset: a mix of behaviours the collect stage rolls out, or a Minari dataset brought as is.
DatasetEntry = Annotated[list[BehaviourSpec] | MinariSource, own_or_minari(list[BehaviourSpec])]


class CollectConfig(Strict):
    workers: Annotated[int, Field(ge=1, le=64)] = 2
    envs_per_worker: Annotated[int, Field(ge=1, le=512)] = 16
    reference_episodes: Annotated[int, Field(ge=2)] = 50
    rating_episodes: Annotated[int, Field(ge=2)] = 20  # per behaviour: its skill rating, outside every dataset
    datasets: dict[str, DatasetEntry]

    @field_validator("datasets")
    @classmethod
    def non_empty(cls, v: dict[str, DatasetEntry]) -> dict[str, DatasetEntry]:
        if not v:
            raise ValueError("declare at least one dataset (name: list of behaviours, or name: {minari: path or id})")
        for name, mix in v.items():
            if isinstance(mix, MinariSource):
                continue
            if not mix:
                raise ValueError(f"dataset {name!r} has no behaviours")
            names = [b.name for b in mix]
            if len(set(names)) != len(names):
                raise ValueError(f"dataset {name!r} lists a behaviour twice: {names}")
            if sum(b.episodes for b in mix) < 2:
                raise ValueError(f"dataset {name!r} has {sum(b.episodes for b in mix)} episode in all; relabel "
                                 "splits episodes into training and validation, so raise episodes to 2 or more")
        return v

    @property
    def mixes(self) -> dict[str, list[BehaviourSpec]]:
        """The datasets collect rolls out: name -> behaviours."""
        return {name: d for name, d in self.datasets.items() if not isinstance(d, MinariSource)}

    @property
    def imported(self) -> dict[str, MinariSource]:
        """The datasets brought from Minari: name -> source."""
        return {name: d for name, d in self.datasets.items() if isinstance(d, MinariSource)}


class RelabelConfig(Strict):
    val_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.1
    # Evaluation targets as fractions of the expert's reference return (0 = random, 1 = expert).
    target_fractions: Annotated[list[Annotated[float, Field(ge=-1.0, le=3.0)]], Increasing] = [0.3, 0.6, 0.9, 1.0, 1.2]


class TrainConfig(FitConfig):
    models: dict[str, PolicyConfig]

    @model_validator(mode="after")
    def full_length_trials(self) -> TrainConfig:
        tuned = sorted(k for k, m in self.models.items() if m.tune)
        if tuned and self.tune.n_trials > 0 and self.tune.trial_steps_fraction < 1.0:
            raise ValueError(
                f"models {tuned} are tuned on trials of {self.tune.trial_steps_fraction:g} x their steps; trials "
                "that short select settings that ignore the condition (benchmarks/README.md, \"Conditioning "
                "sweep\"). Set tune.trial_steps_fraction: 1.0, or tune: false on those models")
        return self

    @field_validator("models")
    @classmethod
    def known_models(cls, v: dict[str, PolicyConfig]) -> dict[str, PolicyConfig]:
        unknown = set(v) - set(MODEL_KINDS)
        if unknown:
            raise ValueError(f"unknown model(s) {sorted(unknown)}; allowed: {', '.join(MODEL_KINDS)}")
        if not v:
            raise ValueError("train at least one model")
        untunable = sorted(k for k, m in v.items() if m.tune and k not in CONDITIONED)
        if untunable:
            raise ValueError(f"tune: true on {untunable}: only the return-conditioned models "
                             f"({', '.join(CONDITIONED)}) are tuned; remove it")
        return v


class EvaluateConfig(Strict):
    episodes: Annotated[int, Field(ge=1)] = 10  # per (model, seed, target)
    num_envs: Annotated[int, Field(ge=1, le=1024)] = 64
    bootstrap_reps: Annotated[int, Field(ge=100)] = 2000
    gif: bool = True
    gif_max_steps: Annotated[int, Field(gt=0)] = 400


class ReturnConfig(FamilySection):
    env: EnvConfig
    collect: CollectConfig
    validate_: ValidateConfig = Field(alias="validate")
    relabel: RelabelConfig
    train: TrainConfig
    evaluate: EvaluateConfig
