"""Typed, validated view of ``params.yaml``.

Every stage reads its settings through :func:`load_params`, so a typo, a wrong type or an
impossible value fails before any work starts, with the field's path and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from justask.envs.lunar import CONTROLLERS

SUPPORTED_ENVS = ("LunarLander-v3",)
MODEL_KINDS = ("bc", "pct_bc", "rvs", "dt")

PosInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvConfig(Strict):
    id: Literal[SUPPORTED_ENVS] = "LunarLander-v3"  # type: ignore[valid-type]
    continuous: bool = False
    max_episode_steps: Annotated[int, Field(ge=10, le=10_000)] = 1000


class BehaviourSpec(Strict):
    """``episodes`` rollouts of ``controller`` with epsilon-random actions at rate ``epsilon``."""

    controller: str
    epsilon: Fraction = 0.0
    episodes: PosInt

    @field_validator("controller")
    @classmethod
    def known_controller(cls, v: str) -> str:
        if v not in CONTROLLERS:
            raise ValueError(f"unknown controller {v!r}; allowed: {', '.join(CONTROLLERS)}")
        return v

    @property
    def name(self) -> str:
        return self.controller if self.epsilon == 0 else f"{self.controller}-eps{self.epsilon:g}"


class CollectConfig(Strict):
    workers: Annotated[int, Field(ge=1, le=64)] = 2
    envs_per_worker: Annotated[int, Field(ge=1, le=512)] = 16
    reference_episodes: Annotated[int, Field(ge=2)] = 50
    datasets: dict[str, list[BehaviourSpec]]

    @field_validator("datasets")
    @classmethod
    def non_empty(cls, v: dict[str, list[BehaviourSpec]]) -> dict[str, list[BehaviourSpec]]:
        if not v:
            raise ValueError("declare at least one dataset (name: list of behaviours)")
        for name, mix in v.items():
            if not mix:
                raise ValueError(f"dataset {name!r} has no behaviours")
            names = [b.name for b in mix]
            if len(set(names)) != len(names):
                raise ValueError(f"dataset {name!r} lists a behaviour twice: {names}")
            if sum(b.episodes for b in mix) < 2:
                raise ValueError(f"dataset {name!r} has {sum(b.episodes for b in mix)} episode in all; relabel "
                                 "splits episodes into training and validation, so raise episodes to 2 or more")
        return v


class ValidateConfig(Strict):
    max_examples: Annotated[int, Field(ge=1, le=100)] = 5


class RelabelConfig(Strict):
    val_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.1
    # Evaluation targets as fractions of the expert's reference return (0 = random, 1 = expert).
    target_fractions: list[Annotated[float, Field(ge=-1.0, le=3.0)]] = [0.3, 0.6, 0.9, 1.0, 1.2]

    @field_validator("target_fractions")
    @classmethod
    def sorted_unique(cls, v: list[float]) -> list[float]:
        if not v or sorted(set(v)) != v:
            raise ValueError("target_fractions must be a non-empty, strictly increasing list")
        return v


class ModelConfig(Strict):
    """Architecture and optimisation defaults of one model; Optuna may override some of them."""

    hidden: PosInt = 256
    layers: Annotated[int, Field(ge=1, le=12)] = 3
    heads: Annotated[int, Field(ge=1, le=16)] = 2
    context: Annotated[int, Field(ge=1, le=200)] = 20
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0.0, le=1.0)] = 1e-4
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 256
    steps: PosInt = 2000
    top_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1  # %BC only
    tune: bool = False


RDB_SCHEMES = ("postgresql", "mysql", "sqlite")


class TuneConfig(Strict):
    """The Optuna study: ``n_trials`` finished (complete or pruned) trials in all, shared by
    ``workers`` processes. ``storage``: ``journal`` (a file under artifacts/optuna/), ``sqlite``
    (one process only: SQLite locks under concurrent writers) or an RDB URL such as
    ``postgresql://user:password@host/db`` for workers on several machines."""

    n_trials: Annotated[int, Field(ge=0)] = 6
    trial_steps_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    storage: str = "journal"
    workers: Annotated[int, Field(ge=1, le=64)] = 1

    @field_validator("storage")
    @classmethod
    def known_storage(cls, v: str) -> str:
        scheme = v.split("://", 1)[0].split("+", 1)[0] if "://" in v else None
        if v not in ("journal", "sqlite") and scheme not in RDB_SCHEMES:
            raise ValueError("storage must be journal, sqlite or an RDB URL "
                             "(e.g. postgresql://user:password@host:5432/optuna)")
        return v

    @model_validator(mode="after")
    def one_sqlite_writer(self) -> TuneConfig:
        if self.workers > 1 and self.storage == "sqlite":
            raise ValueError("storage sqlite cannot be shared by several workers (database is locked); "
                             "use storage: journal on one machine or a postgresql:// URL")
        return self


class FitConfig(Strict):
    """What every family's train section shares: seeds, early stopping, device, tuning."""

    seeds: list[Annotated[int, Field(ge=0)]] = [0, 1, 2]
    eval_every: PosInt = 250
    patience: PosInt = 4
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tune: TuneConfig = TuneConfig()

    @field_validator("seeds")
    @classmethod
    def unique_seeds(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        return v


class TrainConfig(FitConfig):
    val_rows: Annotated[int, Field(ge=16)] = 2048  # validation loss on an evenly spaced subset
    models: dict[str, ModelConfig]

    @field_validator("models")
    @classmethod
    def known_models(cls, v: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        unknown = set(v) - set(MODEL_KINDS)
        if unknown:
            raise ValueError(f"unknown model(s) {sorted(unknown)}; allowed: {', '.join(MODEL_KINDS)}")
        if not v:
            raise ValueError("train at least one model")
        return v


class EvaluateConfig(Strict):
    episodes: Annotated[int, Field(ge=1)] = 10  # per (model, seed, target)
    num_envs: Annotated[int, Field(ge=1, le=1024)] = 64
    bootstrap_reps: Annotated[int, Field(ge=100)] = 2000
    gif: bool = True
    gif_max_steps: PosInt = 400


class ReturnFamily(Strict):
    env: EnvConfig = EnvConfig()
    collect: CollectConfig
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    relabel: RelabelConfig = RelabelConfig()
    train: TrainConfig
    evaluate: EvaluateConfig = EvaluateConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- language family (BabyAI) -----------------------------------------------------------------

COLOURS = ("red", "green", "blue", "purple", "yellow", "grey")
OBJECT_TYPES = ("ball", "box", "key", "door")
VERBS = ("goto", "pickup", "open", "putnext")
GRID_BEHAVIOURS = ("bot", "other_goal", "noisy_bot", "random")


def babyai_levels() -> set[str]:
    """Registered BabyAI level ids (importing minigrid registers them with gymnasium)."""
    import gymnasium as gym
    import minigrid  # noqa: F401

    return {k for k in gym.registry if k.startswith("BabyAI-")}


class GridBehaviourSpec(Strict):
    """``episodes`` per level of a BabyAI behaviour: the bot on its own mission, the bot on
    another goal in the same room, the bot with epsilon-random actions, or a random walk."""

    behaviour: Literal[GRID_BEHAVIOURS]  # type: ignore[valid-type]
    epsilon: Fraction = 0.0
    episodes: PosInt
    max_steps: Annotated[int, Field(ge=1, le=10_000)] | None = None  # cut episodes short (None: level's limit)

    @model_validator(mode="after")
    def epsilon_only_for_noisy_bot(self) -> GridBehaviourSpec:
        if (self.behaviour == "noisy_bot") != (self.epsilon > 0):
            raise ValueError("epsilon must be > 0 for noisy_bot and 0 (omitted) for every other behaviour")
        return self

    @property
    def name(self) -> str:
        return self.behaviour if self.epsilon == 0 else f"{self.behaviour}-eps{self.epsilon:g}"


class LanguageCollectConfig(Strict):
    levels: list[str]
    workers: Annotated[int, Field(ge=1, le=64)] = 2
    mix: list[GridBehaviourSpec]
    demos: PosInt  # bot episodes per level with their own missions: the demos-only baseline's data

    @field_validator("levels")
    @classmethod
    def known_levels(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("levels must be a non-empty list of distinct BabyAI level ids")
        unknown = sorted(set(v) - babyai_levels())
        if unknown:
            raise ValueError(f"unknown BabyAI level(s) {unknown}; use ids like BabyAI-GoToLocal-v0 "
                             "(see minigrid's registered BabyAI-* environments)")
        return v

    @field_validator("mix")
    @classmethod
    def distinct_behaviours(cls, v: list[GridBehaviourSpec]) -> list[GridBehaviourSpec]:
        names = [b.name for b in v]
        if not v or len(set(names)) != len(names):
            raise ValueError(f"mix must list each behaviour once and not be empty (found {names})")
        return v

    @model_validator(mode="after")
    def enough_to_split(self) -> LanguageCollectConfig:
        for what, n in (("mix", sum(b.episodes for b in self.mix)), ("demos", self.demos)):
            if n * len(self.levels) < 2:
                raise ValueError(f"{what} has {n * len(self.levels)} episode in all; relabel splits episodes into "
                                 "training and validation, so raise its episodes (or levels) to 2 or more")
        return self


class HeldOutConfig(Strict):
    """Conditions never trained on: any instruction that uses one of these combinations is
    removed from training and asked only at evaluation; paraphrase templates are evaluation-only."""

    colour_object: list[tuple[Literal[COLOURS], Literal[OBJECT_TYPES]]] = []  # type: ignore[valid-type]
    verb_object: list[tuple[Literal[VERBS], Literal[OBJECT_TYPES]]] = []  # type: ignore[valid-type]
    paraphrases: str = "data/language/paraphrases.yaml"

    @model_validator(mode="after")
    def leaves_training_data(self) -> HeldOutConfig:
        from justask.data.language.grammar import check_held_out

        check_held_out(self.colour_object, self.verb_object)
        return self


class LanguageRelabelConfig(Strict):
    val_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.1
    max_sequences: Annotated[int, Field(ge=0, le=16)] = 2  # "<a> then <b>" labels per episode
    asks_per_group: Annotated[int, Field(ge=1, le=10_000)] = 50  # evaluation asks per (level, group)
    held_out: HeldOutConfig = HeldOutConfig()


class InstructionModelConfig(Strict):
    """One instruction-conditioned policy: which data it learns from and how it reads instructions.

    ``data: relabeled`` is the hindsight-labelled behaviour mix; ``data: demos`` the bot's
    demonstrations with their original missions (the demos-only baseline). ``encoder: minilm`` is
    the frozen pretrained sentence encoder; ``encoder: word`` a word encoder learned from scratch
    (the no-pretraining baseline)."""

    data: Literal["relabeled", "demos"] = "relabeled"
    encoder: Literal["word", "minilm"] = "minilm"
    hidden: PosInt = 128
    context: Annotated[int, Field(ge=1, le=64)] = 4  # frames of history
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0.0, le=1.0)] = 1e-4
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 128
    steps: PosInt = 2000
    tune: bool = False


class LanguageTrainConfig(FitConfig):
    val_rows: Annotated[int, Field(ge=16)] = 4096
    mirror: bool = True  # also train on mirror images of the rooms (see justask.train.mirror_windows)
    models: dict[str, InstructionModelConfig]

    @field_validator("models")
    @classmethod
    def some_models(cls, v: dict[str, InstructionModelConfig]) -> dict[str, InstructionModelConfig]:
        if not v:
            raise ValueError("train at least one model")
        return v


class LanguageEvaluateConfig(Strict):
    num_envs: Annotated[int, Field(ge=1, le=1024)] = 32  # asks rolled out together, one forward pass a step
    bootstrap_reps: Annotated[int, Field(ge=100)] = 2000
    gif: bool = True  # one GIF per condition group: the first model's first seed on its first ask


class LanguageFamily(Strict):
    collect: LanguageCollectConfig
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    relabel: LanguageRelabelConfig = LanguageRelabelConfig()
    train: LanguageTrainConfig
    evaluate: LanguageEvaluateConfig = LanguageEvaluateConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- reward family (D-REX on LunarLander) -----------------------------------------------------


class CloneConfig(Strict):
    """Behavioural cloning of the demonstrator (an MLP fitted on its few demonstrations)."""

    hidden: PosInt = 64
    layers: Annotated[int, Field(ge=1, le=12)] = 2
    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0.0, le=1.0)] = 1e-4
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 256
    steps: PosInt = 2000
    val_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.2


class RewardCollectConfig(Strict):
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


class RewardRelabelConfig(Strict):
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


class RewardTrainConfig(FitConfig):
    val_rows: Annotated[int, Field(ge=16)] = 2048
    ranking: RankingConfig = RankingConfig()
    models: dict[str, ModelConfig]  # return-conditioned policies on learned returns: rvs and/or dt

    @field_validator("models")
    @classmethod
    def conditioned_only(cls, v: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        bad = set(v) - {"rvs", "dt"}
        if bad or not v:
            raise ValueError(f"models must name return-conditioned policies (rvs, dt); found {sorted(v) or 'none'}")
        return v


class RewardEvaluateConfig(Strict):
    episodes: Annotated[int, Field(ge=1)] = 20  # per (policy, seed, target)
    # Asked-for learned returns as fractions of the data's learned-return range (1 = the best episode).
    target_fractions: list[Annotated[float, Field(ge=-1.0, le=5.0)]] = [1.0, 1.25, 1.5]
    num_envs: Annotated[int, Field(ge=1, le=1024)] = 64
    bootstrap_reps: Annotated[int, Field(ge=100)] = 2000
    gif: bool = True
    gif_max_steps: PosInt = 400

    @field_validator("target_fractions")
    @classmethod
    def sorted_unique(cls, v: list[float]) -> list[float]:
        if not v or sorted(set(v)) != v:
            raise ValueError("target_fractions must be a non-empty, increasing list without repeats")
        return v


class RewardFamily(Strict):
    env: EnvConfig = EnvConfig()
    collect: RewardCollectConfig = RewardCollectConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    relabel: RewardRelabelConfig = RewardRelabelConfig()
    train: RewardTrainConfig
    evaluate: RewardEvaluateConfig = RewardEvaluateConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TrackingConfig(Strict):
    mlflow_uri: str = "sqlite:///artifacts/mlflow.db"
    experiment: str = "justask"


class ScaleConfig(Strict):
    """Where rollouts run (collection and evaluation); never changes a result, so DVC does not
    track it. ``executor: process`` is a local spawn pool; ``dask`` sends jobs to the Dask
    scheduler at ``dask_address`` or, when that is null, to a local cluster of ``workers``
    processes started for the stage. ``workers`` is evaluation's fan-out (1: in this process);
    collection keeps each family's ``collect.workers``."""

    executor: Literal["process", "dask"] = "process"
    dask_address: str | None = None
    workers: Annotated[int, Field(ge=1, le=256)] = 1

    @field_validator("dask_address")
    @classmethod
    def scheduler_url(cls, v: str | None) -> str | None:
        if v is not None and "://" not in v:
            raise ValueError("dask_address must be a scheduler URL like tcp://host:8786, or null for a "
                             "local cluster")
        return v


class Params(Strict):
    seed: Annotated[int, Field(ge=0)] = 0
    profile: str = "default"
    tracking: TrackingConfig = TrackingConfig()
    scale: ScaleConfig = ScaleConfig()
    return_: ReturnFamily = Field(alias="return")
    language: LanguageFamily | None = None
    reward: RewardFamily | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ParamsError(ValueError):
    """params.yaml is unreadable or invalid; the message names the file, field and fix."""


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: {err.error_count()} invalid setting(s):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = e.get("input")
        got_txt = "" if isinstance(got, dict) else f" (found {got!r})"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling against params.yaml's documented keys"
        lines.append(f"  - {loc}: {msg}{got_txt}")
    lines.append("Fix these entries in the file and run again.")
    return "\n".join(lines)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml, raising :class:`ParamsError` with every problem listed."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ParamsError(f"{path}: not found; run from the repository root or pass --params") from e
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of settings at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        raise ParamsError(_format_errors(path, e)) from None
