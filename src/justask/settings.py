"""The building blocks of every params schema: strict models, the training-loop, tuning, tracking
and scale-out settings every family shares, and the rule that a family's section holds one
subsection per stage.

Pure pydantic: importing a schema never imports gymnasium, torch or a family's runtime code.
:mod:`justask.config` assembles these with each registered family's own schema into ``Params``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    field_validator,
    model_validator,
)

PosInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def strictly_increasing(v: list[float]) -> list[float]:
    if not v or sorted(set(v)) != v:
        raise ValueError("must be a non-empty, strictly increasing list (no repeats)")
    return v


Increasing = AfterValidator(strictly_increasing)  # e.g. list[float] of asked targets, in order


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValidateConfig(Strict):
    max_examples: Annotated[int, Field(ge=1, le=100)] = 5


class MinariSource(Strict):
    """A dataset brought from outside the pipeline: a Minari dataset folder, or the id of a dataset in
    Minari's local data root (``MINARI_DATASETS_PATH``, default ``~/.minari/datasets``)."""

    minari: Annotated[str, Field(min_length=1)]


def own_or_minari(own: Any) -> PlainValidator:
    """Validator of a family's dataset entry: a mapping is a :class:`MinariSource`, anything else the
    family's own recipe ``own`` (a list type, e.g. of behaviours). Errors keep the entry's field path."""
    recipe = TypeAdapter(own)

    def validate(v: Any) -> Any:
        if isinstance(v, dict | MinariSource):
            return MinariSource.model_validate(v)
        return recipe.validate_python(v)

    return PlainValidator(validate)


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
    """What every family's train section shares: seeds, early stopping, validation, device, tuning."""

    seeds: list[Annotated[int, Field(ge=0)]] = [0, 1, 2]
    eval_every: PosInt = 250
    patience: PosInt = 4
    val_rows: Annotated[int, Field(ge=16)] = 2048  # validation loss on an evenly spaced subset of this many rows
    val_batch: Annotated[int, Field(ge=1, le=1 << 20)] = 4096  # rows per forward pass of the validation loss
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tune: TuneConfig = TuneConfig()

    @field_validator("seeds")
    @classmethod
    def unique_seeds(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        return v


MODEL_KINDS = ("bc", "pct_bc", "rvs", "dt", "skill")  # policies of justask.models: baselines first
CONDITIONED = ("rvs", "dt")  # asked for a return-to-go (and tuned when ``tune: true``)
SKILL_CONDITIONED = ("skill",)  # asked for a behaviour's skill rank, constant over the episode


class PolicyConfig(Strict):
    """Architecture and optimisation of one return-conditioned policy (:mod:`justask.models`);
    Optuna may override some of them (``tune: true``)."""

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
    actions: bool = True  # DT only: past action tokens in the context
    # how training batches are drawn: per step, per episode, per return bin (justask.steps.row_weights)
    sampling: Literal["step", "episode", "return"] = "step"
    tune: bool = False

    @property
    def hp(self) -> dict:
        """What builds the model and what a checkpoint records (everything but the schedule)."""
        return self.model_dump(exclude={"tune", "steps", "top_fraction"})


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


STAGES = ("collect", "validate", "relabel", "train", "evaluate")  # the DAG, in order
# dvc.yaml declares each stage's params as `families.<name>.<section>`, so every family's section
# must spell out all of these keys (DVC fails on a missing one).
SECTIONS = ("env", *STAGES)


class FamilySection(Strict):
    """Base of a family's params schema: one field per entry of :data:`SECTIONS` (``validate`` is
    the field ``validate_``, since pydantic models have a ``validate`` method)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def every_section_written(cls, data: Any) -> Any:
        if isinstance(data, dict):
            missing = [s for s in SECTIONS if s not in data and not (s == "validate" and "validate_" in data)]
            if missing:
                raise ValueError(
                    f"missing section(s) {', '.join(missing)}: a family's params hold all of {', '.join(SECTIONS)} "
                    "(dvc.yaml tracks each as a stage's params); write `name: {}` to keep a section's defaults")
        return data
