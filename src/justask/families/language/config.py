"""Params schema of the ``language`` family (``families.language`` in params.yaml): BabyAI."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from justask.settings import FamilySection, FitConfig, Fraction, PosInt, Strict, ValidateConfig

COLOURS = ("red", "green", "blue", "purple", "yellow", "grey")
OBJECT_TYPES = ("ball", "box", "key", "door")
VERBS = ("goto", "pickup", "open", "putnext")
GRID_BEHAVIOURS = ("bot", "other_goal", "noisy_bot", "random")


def babyai_levels() -> set[str]:
    """Registered BabyAI level ids (importing minigrid registers them with gymnasium)."""
    import gymnasium as gym
    import minigrid  # noqa: F401

    return {k for k in gym.registry if k.startswith("BabyAI-")}


class EnvConfig(Strict):
    """The BabyAI levels every episode is collected in and every ask is made in."""

    levels: list[str]

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


class CollectConfig(Strict):
    workers: Annotated[int, Field(ge=1, le=64)] = 2
    mix: list[GridBehaviourSpec]
    demos: PosInt  # bot episodes per level with their own missions: the demos-only baseline's data

    @field_validator("mix")
    @classmethod
    def distinct_behaviours(cls, v: list[GridBehaviourSpec]) -> list[GridBehaviourSpec]:
        names = [b.name for b in v]
        if not v or len(set(names)) != len(names):
            raise ValueError(f"mix must list each behaviour once and not be empty (found {names})")
        return v


ColourObject = list[tuple[Literal[COLOURS], Literal[OBJECT_TYPES]]]  # type: ignore[valid-type]


class HeldOutConfig(Strict):
    """Conditions never trained on: any instruction that uses one of these combinations is
    removed from training and asked only at evaluation; paraphrase templates are evaluation-only.

    ``colour_object`` and ``verb_object`` test composition within a level: in every level whose
    rooms hold the pair, both of its words are trained there with other partners (checked against
    the levels, see :class:`LanguageConfig`). ``cross_level`` pairs test transfer across levels
    (their words never both trained in one level, e.g. a colour seen only on balls, boxes and keys
    asked on a door); they are reported as their own group, never pooled with composition."""

    colour_object: ColourObject = []
    cross_level: ColourObject = []
    verb_object: list[tuple[Literal[VERBS], Literal[OBJECT_TYPES]]] = []  # type: ignore[valid-type]
    paraphrases: str = "data/language/paraphrases.yaml"

    @model_validator(mode="after")
    def leaves_training_data(self) -> HeldOutConfig:
        from .grammar import check_held_out  # the grammar reads minigrid's tables

        check_held_out(self.colour_object, self.verb_object, self.cross_level)
        return self


class RelabelConfig(Strict):
    val_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.1
    max_sequences: Annotated[int, Field(ge=0, le=16)] = 2  # "<a> then <b>" labels per episode
    asks_per_group: Annotated[int, Field(ge=1, le=10_000)] = 50  # evaluation asks per (level, group)
    # Goal-directed segments (.segments): a labelled step stays when the steps the agent still took
    # are at most segment_slack x the shortest path from there + segment_margin; null: every label
    # covers its episode from step 0 (plain hindsight prefixes).
    segment_slack: Annotated[float, Field(ge=1.0, le=100.0)] | None = None
    segment_margin: Annotated[float, Field(ge=0.0, le=1000.0)] = 2.0
    held_out: HeldOutConfig = Field(default_factory=HeldOutConfig)  # built when used: its check reads minigrid


class InstructionModelConfig(Strict):
    """One instruction-conditioned policy: which data it learns from and how it reads instructions.

    ``data: relabeled`` is the hindsight-labelled behaviour mix; ``data: demos`` the bot's
    demonstrations with their original missions (the demos-only baseline). ``encoder: minilm`` is
    the frozen pretrained sentence encoder; ``encoder: word`` a word encoder learned from scratch
    (the no-pretraining baseline). ``reader: tokens`` reads the instruction word by word (each view
    cell attends over the tokens, see :mod:`.policy`) instead of as one sentence vector;
    ``reader: factored`` (word encoder only) matches a cell's colour and its object against the words
    separately, so no colour x object pair can be learnt as a whole."""

    data: Literal["relabeled", "demos"] = "relabeled"
    encoder: Literal["word", "minilm"] = "minilm"
    # sentence: one instruction vector into FiLM; tokens: each view cell also attends over the words;
    # factored: a cell's colour and its object attend over the words apart (encoder: word)
    reader: Literal["sentence", "tokens", "factored"] = "sentence"
    hidden: PosInt = 128
    channels: Annotated[int, Field(ge=4, le=512)] = 32  # of the two convolutions over each 7x7 view
    context: Annotated[int, Field(ge=1, le=64)] = 4  # frames of history
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0.0, le=1.0)] = 1e-4
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 128
    steps: PosInt = 2000
    tune: bool = False

    @model_validator(mode="after")
    def factored_reads_words(self) -> InstructionModelConfig:
        if self.reader == "factored" and self.encoder != "word":
            raise ValueError(f"reader: factored matches single words, and encoder: {self.encoder} gives none "
                             "(MiniLM's pieces carry their neighbours); set encoder: word, or reader: tokens")
        return self

    @property
    def hp(self) -> dict:
        """What builds the policy and what its checkpoint records."""
        return self.model_dump(exclude={"tune", "steps", "data", "encoder", "reader"})


class TrainConfig(FitConfig):
    val_rows: Annotated[int, Field(ge=16)] = 4096
    mirror: bool = True  # also train on mirror images of the rooms (see .table.mirror_windows)
    models: dict[str, InstructionModelConfig]

    @field_validator("models")
    @classmethod
    def some_models(cls, v: dict[str, InstructionModelConfig]) -> dict[str, InstructionModelConfig]:
        if not v:
            raise ValueError("train at least one model")
        return v


class EvaluateConfig(Strict):
    num_envs: Annotated[int, Field(ge=1, le=1024)] = 32  # asks rolled out together, one forward pass a step
    bootstrap_reps: Annotated[int, Field(ge=100)] = 2000
    gif: bool = True  # one GIF per condition group: the first model's first seed on its first ask


class LanguageConfig(FamilySection):
    env: EnvConfig
    collect: CollectConfig
    validate_: ValidateConfig = Field(alias="validate")
    relabel: RelabelConfig
    train: TrainConfig
    evaluate: EvaluateConfig

    @model_validator(mode="after")
    def enough_to_split(self) -> LanguageConfig:
        levels = len(self.env.levels)
        for what, n in (("collect.mix", sum(b.episodes for b in self.collect.mix)), ("collect.demos",
                                                                                    self.collect.demos)):
            if n * levels < 2:
                raise ValueError(f"{what} has {n * levels} episode in all; relabel splits episodes into training "
                                 "and validation, so raise its episodes (or levels) to 2 or more")
        return self

    @model_validator(mode="after")
    def held_out_tests_composition(self) -> LanguageConfig:
        """relabel.held_out, checked in each level's rooms (see :func:`.grammar.check_composition`)."""
        from .grammar import check_composition

        held = self.relabel.held_out
        try:
            check_composition(held.colour_object, held.verb_object, held.cross_level, self.env.levels)
        except ValueError as e:
            raise ValueError(f"relabel.held_out: {e}") from None
        return self
