"""Params schema of the ``improve`` family (``families.improve`` in params.yaml): Algorithm
Distillation on Dark Room."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from justask.settings import FamilySection, FitConfig, Fraction, PosInt, Strict, ValidateConfig

from .goals import check_goal_split, split_goals, start_cell

Cell = tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]


class EnvConfig(Strict):
    """Dark Room: a ``size`` x ``size`` grid, the agent starts in the centre, the goal is unobserved.
    Every goal cell but the start is a task; ``held_out_goals`` are the tasks no training stage sees
    (evaluation asks the frozen model to find them), every other cell is a training goal."""

    size: Annotated[int, Field(ge=3, le=25)] = 9
    max_episode_steps: Annotated[int, Field(ge=2, le=200)] = 20
    held_out_goals: list[Cell] = [(0, 1), (0, 6), (1, 3), (1, 8), (2, 0), (2, 5), (3, 2), (3, 7), (4, 0), (4, 6),
                                  (5, 3), (5, 8), (6, 1), (6, 4), (7, 2), (7, 7), (8, 0), (8, 5), (2, 2), (6, 6)]

    @model_validator(mode="after")
    def goals_on_the_grid(self) -> EnvConfig:
        start = start_cell(self.size)
        for g in self.held_out_goals:
            if max(g) >= self.size:
                raise ValueError(f"held_out_goals: {list(g)} is off the {self.size} x {self.size} grid "
                                 f"(cells are 0..{self.size - 1}); fix the cell or the size")
            if g == start:
                raise ValueError(f"held_out_goals: {list(g)} is the start cell, not a task; remove it")
        if len(set(self.held_out_goals)) != len(self.held_out_goals):
            raise ValueError("held_out_goals: a goal is listed twice; list each once")
        if not self.held_out_goals or len(self.held_out_goals) >= self.size * self.size - 1:
            raise ValueError("held_out_goals: hold out at least one goal and leave at least one for training")
        check_goal_split(split_goals(self.size, self.held_out_goals), self.held_out_goals, self.size)
        return self


class LearnerConfig(Strict):
    """The source learner: tabular Q-learning, optimistic initial values, epsilon-greedy with a
    decaying epsilon, optionally Dyna-Q's ``planning`` updates (its learning curve is what Algorithm
    Distillation distils)."""

    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    gamma: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    init: Annotated[float, Field(ge=0.0)] = 1.0  # initial Q value of every (cell, action): optimism explores
    epsilon: Fraction = 0.1  # at the first episode, decaying linearly ...
    epsilon_final: Fraction = 0.02  # ... to this at `decay_episodes`, then constant
    decay_episodes: PosInt = 30
    planning: Annotated[int, Field(ge=0, le=1000)] = 10  # Dyna-Q updates per step on remembered transitions


class CollectConfig(Strict):
    """One learning history per (training goal, history): the learner from scratch for ``episodes``
    consecutive episodes, every step kept."""

    histories_per_goal: PosInt = 5
    episodes: Annotated[int, Field(ge=2)] = 100
    learner: LearnerConfig = LearnerConfig()


class RelabelConfig(Strict):
    """Across-episode contexts from the histories (the model's condition is the history itself)."""

    val_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.1  # histories held out for the validation loss
    skip: PosInt = 6  # keep every skip-th episode of a history (AD's subsampling), the last always kept
    expert_episodes: Annotated[int, Field(ge=1)] = 10  # a history's final episodes: expert distillation's data


class TransformerConfig(Strict):
    """The in-context model (both AD and expert distillation): a causal transformer with one token per
    step, (observation, previous action, previous reward), over ``context_episodes`` episodes."""

    hidden: PosInt = 32
    layers: Annotated[int, Field(ge=1, le=12)] = 4
    heads: Annotated[int, Field(ge=1, le=16)] = 4
    context_episodes: Annotated[int, Field(ge=1, le=50)] = 4
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0.0, le=1.0)] = 1e-4
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 32
    steps: PosInt = 2000
    tune: bool = False  # Optuna first (train.tune's trials), the shared search space

    @property
    def hp(self) -> dict:
        """What builds and optimises the model, and what a checkpoint records (all but the schedule)."""
        return self.model_dump(exclude={"tune", "steps"})

    @model_validator(mode="after")
    def heads_divide(self) -> TransformerConfig:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        return self


class TrainConfig(FitConfig):
    model: TransformerConfig = TransformerConfig()
    hindsight: bool = True  # also fit the same model on the histories with hindsight labels
    expert_distillation: bool = True  # also fit the control: the same model on converged episodes only
    expert_steps: PosInt | None = None  # the control's steps (default model.steps): its few contexts fit sooner

    def steps(self, model: str) -> int:
        """Training steps of ``model`` (a key of :attr:`models`)."""
        return self.expert_steps if model == "ed" and self.expert_steps is not None else self.model.steps

    @property
    def models(self) -> dict[str, str]:
        """The models trained, each with the relabeled contexts it learns from: ``ad`` on the whole
        histories, (``hindsight``) ``hindsight`` on them with hindsight labels, and
        (``expert_distillation``) ``ed`` on the converged episodes."""
        return {"ad": "histories", **({"hindsight": "hindsight"} if self.hindsight else {}),
                **({"ed": "experts"} if self.expert_distillation else {})}


class EvaluateConfig(Strict):
    """The frozen models on every held-out goal, each run for ``episodes`` consecutive episodes keeping
    its own growing context; sampling seeds from ``data/improve/eval_seeds.json``."""

    episodes: Annotated[int, Field(ge=2)] = 40
    seeds_per_goal: PosInt = 2  # rollout streams per (training seed, held-out goal)
    first_last: PosInt = 5  # in-context improvement: mean return of the last k episodes minus the first k
    learner_episodes: Annotated[int, Field(ge=2)] = 100  # the source learner's own run on each held-out goal
    bootstrap_reps: Annotated[int, Field(ge=100)] = 2000
    gif: bool = True

    @model_validator(mode="after")
    def windows_fit(self) -> EvaluateConfig:
        if 2 * self.first_last > self.episodes:
            raise ValueError(f"first_last ({self.first_last}) must be at most half of episodes ({self.episodes})")
        return self


class ImproveConfig(FamilySection):
    env: EnvConfig = EnvConfig()
    collect: CollectConfig = CollectConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    relabel: RelabelConfig = RelabelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    @model_validator(mode="after")
    def experts_are_the_end_of_a_history(self) -> ImproveConfig:
        if self.relabel.expert_episodes >= self.collect.episodes:
            raise ValueError(f"relabel.expert_episodes ({self.relabel.expert_episodes}) must be below "
                             f"collect.episodes ({self.collect.episodes}): expert distillation learns from the "
                             "converged end of each history only")
        return self
