"""Data checks on episode datasets with Great Expectations (GX 1.x).

A dataset is flattened to a *step table* (one row per environment step) and checked against an
expectation suite derived from the environment's spaces: observations and actions inside their
spaces, finite rewards, contiguous steps, exactly one end flag per episode at its last step,
plausible episode lengths and the expected number of episodes. GX is imported lazily (it takes
seconds) and with its analytics switched off.

The step table is checked in chunks of whole episodes (:data:`CHUNK_STEPS` steps, read from the
dataset one chunk at a time), so memory stays bounded whatever the dataset's size: GX checks the
row-wise (map) expectations on each chunk and their counts and examples are summed over chunks;
the dataset-wide ones (the episode count) are checked by GX on the episode table, each episode's
first row, gathered over all chunks.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from justask.datasets import iter_episodes, read_metadata
from justask.errors import DatasetError, StageFailed
from justask.io import atomic_dir, write_json

if TYPE_CHECKING:
    import great_expectations as gx
    from gymnasium import Space

_FLOAT_MAX = float(np.finfo(np.float64).max)  # "finite" = between -max and +max
_SITE = "justask"
_INDEX = ["episode_id", "step"]
CHUNK_STEPS = 100_000  # steps GX checks at once: bounds validate's memory, whatever the dataset's size


def load_gx():
    """Import Great Expectations with analytics off (slow: a few seconds)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


# --------------------------------------------------------------------------- step table


class StepTable:
    """Builds a step table one episode at a time; each column's arrays are joined once at the end.

    Per episode, ``per_observation`` arrays have one entry per observation (T+1: the last one is
    the final observation) and give two columns, ``name`` (the observation before each step) and
    ``next_name`` (the one after it, so the final observation is checked too); ``per_step`` arrays
    have one entry per step (T); ``per_episode`` values repeat on every row of the episode. An
    episode whose arrays disagree in length (a step missing from one of them) is padded with
    NaN/NA and its ``step_complete`` is False on the rows some array lacks.

    Column types: integer arrays give int64 columns (float64 if a row is padded), float arrays
    float64, bool arrays nullable ``boolean``, per-episode strings object columns.
    """

    def __init__(self) -> None:
        self._cols: dict[str, list[np.ndarray]] = {"episode_id": [], "step": []}
        self._kinds: dict[str, str] = {}

    def add(self, episode_id: int, per_observation: dict[str, np.ndarray],
            per_step: dict[str, np.ndarray], per_episode: dict[str, Any] | None = None) -> None:
        lengths = [len(a) - 1 for a in per_observation.values()] + [len(a) for a in per_step.values()]
        n = max([0, *lengths])
        complete = np.ones(n, dtype=bool)

        def put(name: str, a: np.ndarray, offset: int = 0) -> None:
            a = np.asarray(a)
            self._kinds.setdefault(name, a.dtype.kind)
            a = a[offset:offset + n]
            if len(a) < n:
                complete[len(a):] = False
                a = np.concatenate([a.astype(np.float64), np.full(n - len(a), np.nan)])
            self._cols.setdefault(name, []).append(a)

        self._cols["episode_id"].append(np.full(n, episode_id, dtype=np.int64))
        self._cols["step"].append(np.arange(n, dtype=np.int64))
        for name, a in per_observation.items():
            put(name, a)
        for name, a in per_observation.items():
            put(f"next_{name}", a, 1)
        for name, a in per_step.items():
            put(name, a)
        for name, v in (per_episode or {}).items():
            is_text = v is None or isinstance(v, str)
            self._kinds.setdefault(name, "O" if is_text else np.asarray(v).dtype.kind)
            self._cols.setdefault(name, []).append(np.full(n, v, dtype=object if is_text else None))
        for name, a in (("episode_length", np.full(n, n, dtype=np.int64)),
                        ("is_last", np.arange(n) == n - 1), ("step_complete", complete)):
            self._cols.setdefault(name, []).append(a)

    def frame(self) -> pd.DataFrame:
        if not self._cols["episode_id"]:
            return pd.DataFrame(columns=["episode_id", "step"])
        cols: dict[str, Any] = {}
        for name, parts in self._cols.items():
            a, kind = np.concatenate(parts), self._kinds.get(name)
            if kind == "b":  # nullable: NA where the step is missing
                a = pd.array(a.astype(np.float64), dtype="Float64").astype("boolean")
            elif kind is not None and kind in "iu":
                a = a.astype(np.float64 if np.isnan(a.astype(np.float64)).any() else np.int64)
            elif kind == "f":
                a = a.astype(np.float64)
            cols[name] = a
        return pd.DataFrame(cols)


def step_table(episodes: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """One row per step: ``episode_id, step, obs_*, next_obs_*, action[_*], reward, terminated,
    truncated, episode_length, is_last, step_complete`` (see :class:`StepTable`)."""
    table = StepTable()
    for i, ep in enumerate(episodes):
        obs = np.asarray(ep["observations"], dtype=np.float64).reshape(len(ep["observations"]), -1)
        acts = np.asarray(ep["actions"])
        if acts.ndim > 1:
            acts = acts.reshape(len(acts), -1)
            actions = {f"action_{j}": acts[:, j] for j in range(acts.shape[1])}
        else:
            actions = {"action": acts}
        table.add(ep.get("id", i), {f"obs_{j}": obs[:, j] for j in range(obs.shape[1])},
                  actions | {"reward": ep["rewards"], "terminated": ep["terminations"],
                             "truncated": ep["truncations"]})
    return table.frame()


def add_check_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Columns the suite checks that relate rows of an episode to each other.

    ``step_gap`` (step minus the previous row's step; step + 1 on an episode's first row, so a
    clean episode has 1 everywhere), ``end_flag_ok`` (terminated-or-truncated exactly on the last
    step), ``end_flags`` (steps with an end flag in the episode), ``rows_in_episode`` and
    ``episode_row`` (row number within the episode: per-episode checks look at row 0 only).
    """
    df = df.copy()
    g = df.groupby("episode_id", sort=False)
    df["episode_row"] = g.cumcount().astype(np.int64)
    df["step_gap"] = g["step"].diff().fillna(df["step"] + 1).astype(np.int64)
    end = (df["terminated"] | df["truncated"]).fillna(False).astype(bool)
    df["end_flag_ok"] = end == df["is_last"].astype(bool)
    df["end_flags"] = end.groupby(df["episode_id"], sort=False).transform("sum").astype(np.int64)
    df["rows_in_episode"] = g["step"].transform("size").astype(np.int64)
    return df


def _batches(items: Iterable, size: Callable[[Any], int], steps: int) -> Iterator[list]:
    """``items`` in consecutive lists, each closed once its ``size`` sum reaches ``steps``."""
    batch, n = [], 0
    for item in items:
        batch.append(item)
        n += size(item)
        if n >= steps:
            yield batch
            batch, n = [], 0
    if batch:
        yield batch


def table_chunks(df: pd.DataFrame, steps: int = CHUNK_STEPS) -> Iterator[pd.DataFrame]:
    """``df`` in chunks of whole episodes (all rows of an ``episode_id``), about ``steps`` rows each."""
    codes, _ = pd.factorize(df["episode_id"])  # episodes numbered in order of first appearance
    sizes = np.bincount(codes)
    for batch in _batches(range(len(sizes)), sizes.__getitem__, steps):
        yield df[(codes >= batch[0]) & (codes <= batch[-1])]


def episode_chunks(path: Path, steps: int = CHUNK_STEPS) -> Iterator[list[dict[str, Any]]]:
    """The episodes of the Minari dataset at ``path`` (:func:`justask.datasets.iter_episodes`) in
    lists of about ``steps`` steps, read as they are needed."""
    return _batches(iter_episodes(path), lambda ep: len(ep["rewards"]), steps)


# --------------------------------------------------------------------------- suite


def _bounds(low: float, high: float) -> tuple[float, float]:
    return (float(low) if np.isfinite(low) else -_FLOAT_MAX,
            float(high) if np.isfinite(high) else _FLOAT_MAX)


def _fmt(v: float) -> str:
    return "-inf" if v == -_FLOAT_MAX else "inf" if v == _FLOAT_MAX else f"{v:g}"


def per_episode() -> dict[str, Any]:
    """Keyword arguments that make an expectation look at each episode's first row only, so its
    examples and counts are episodes."""
    from great_expectations.expectations.row_conditions import Column

    return {"row_condition": Column("episode_row") == 0,
            "meta": {"unit": "episodes", "show_step": False}}


def final_observation():
    """Row condition for ``next_*`` columns: only the last step's holds the final observation."""
    from great_expectations.expectations.row_conditions import Column

    return Column("is_last") == True  # noqa: E712 (a GX condition, not a comparison)


def discrete_expectations(column: str, space: Space, what: str, where: str,
                          final: bool = False) -> list:
    """``column`` is present and in the Discrete ``space`` (on the last rows only if ``final``)."""
    E = load_gx().expectations
    allowed = list(range(int(space.start), int(space.start + space.n)))
    kw: dict[str, Any] = {"row_condition": final_observation(), "meta": {"unit": "episodes"}} \
        if final else {}
    return [
        E.ExpectColumnValuesToNotBeNull(column=column, description=f"{what} is present", **kw),
        E.ExpectColumnValuesToBeInSet(
            column=column, value_set=allowed,
            description=f"{what} is in {where} {{{allowed[0]}..{allowed[-1]}}}", **kw),
    ]


def structure_expectations() -> list:
    """Every step complete, steps contiguous, one row per step, exactly one end flag per episode
    and on its last step (columns from :func:`add_check_columns`)."""
    E = load_gx().expectations
    return [
        E.ExpectColumnValuesToBeInSet(
            column="step_complete", value_set=[True],
            description="every step has an observation, action, reward and flags "
                        "(no array of the episode is shorter than the others)"),
        E.ExpectColumnValuesToBeInSet(
            column="step_gap", value_set=[1],
            description="steps are contiguous from 0 "
                        "(a gap of 0 is a duplicated step, >1 a missing one)"),
        E.ExpectColumnPairValuesToBeEqual(
            column_A="rows_in_episode", column_B="episode_length", **per_episode(),
            description="each episode has one row per step of its length"),
        E.ExpectColumnValuesToBeInSet(
            column="end_flags", value_set=[1], **per_episode(),
            description="exactly one step per episode is terminated or truncated"),
        E.ExpectColumnValuesToBeInSet(
            column="end_flag_ok", value_set=[True],
            description="terminated/truncated is set on the last step of its episode and "
                        "nowhere else"),
    ]


def episode_count_expectation(expected_episodes: int):
    return load_gx().expectations.ExpectColumnUniqueValueCountToBeBetween(
        column="episode_id", min_value=expected_episodes, max_value=expected_episodes,
        description=f"the dataset holds {expected_episodes} episodes (with at least one step)")


def build_suite(observation_space: Space, action_space: Space, max_episode_steps: int,
                expected_episodes: int, name: str = "episodes") -> gx.ExpectationSuite:
    """The expectation suite for a step table (after :func:`add_check_columns`)."""
    from gymnasium import spaces

    gx = load_gx()
    E = gx.expectations
    if not isinstance(observation_space, spaces.Box):
        raise DatasetError(f"unsupported observation space {observation_space} (need a Box)")
    expectations: list = []
    add = expectations.append

    low, high = observation_space.low.ravel(), observation_space.high.ravel()
    for j in range(len(low)):
        lo, hi = _bounds(low[j], high[j])
        rng = f"[{_fmt(lo)}, {_fmt(hi)}]"
        for col, what, cond in ((f"obs_{j}", "observation", None),
                                (f"next_obs_{j}", "final observation", final_observation())):
            meta = {"unit": "episodes"} if cond is not None else None
            add(E.ExpectColumnValuesToNotBeNull(
                column=col, row_condition=cond, meta=meta,
                description=f"{what} {j} is present (not NaN)"))
            add(E.ExpectColumnValuesToBeBetween(
                column=col, min_value=lo, max_value=hi, row_condition=cond, meta=meta,
                description=f"{what} {j} is finite and inside the observation space {rng}"))

    if isinstance(action_space, spaces.Discrete):
        expectations += discrete_expectations("action", action_space, "action", "the action space")
    elif isinstance(action_space, spaces.Box):
        a_low, a_high = action_space.low.ravel(), action_space.high.ravel()
        for j in range(len(a_low)):
            lo, hi = _bounds(a_low[j], a_high[j])
            add(E.ExpectColumnValuesToNotBeNull(
                column=f"action_{j}", description=f"action {j} is present"))
            add(E.ExpectColumnValuesToBeBetween(
                column=f"action_{j}", min_value=lo, max_value=hi,
                description=f"action {j} is inside the action space [{_fmt(lo)}, {_fmt(hi)}]"))
    else:
        raise DatasetError(f"unsupported action space {action_space} (need Discrete or Box)")

    add(E.ExpectColumnValuesToNotBeNull(column="reward", description="reward is present (not NaN)"))
    add(E.ExpectColumnValuesToBeBetween(
        column="reward", min_value=-_FLOAT_MAX, max_value=_FLOAT_MAX,
        description="reward is finite"))
    expectations += structure_expectations()
    add(E.ExpectColumnValuesToBeBetween(
        column="episode_length", min_value=1, max_value=max_episode_steps, **per_episode(),
        description=f"episode length is between 1 and max_episode_steps ({max_episode_steps})"))
    add(episode_count_expectation(expected_episodes))
    return gx.ExpectationSuite(name=name, expectations=expectations)


# --------------------------------------------------------------------------- validation


@dataclass
class Failure:
    """One failed expectation, with a few offending rows or the observed value."""

    expectation: str
    column: str
    description: str
    unexpected_count: int | None = None
    element_count: int | None = None
    observed: Any = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    unit: str = "rows"  # what unexpected_count counts: step rows or episodes

    def summary(self) -> str:
        """One line: what failed, how often, and example values."""
        head = f"{self.column}: expected {self.description} [{self.expectation}]; "
        if self.unexpected_count is None:
            return head + f"observed {self.observed}"
        where = ", ".join(
            f"episode {e['episode_id']}" + (f" step {e['step']}" if "step" in e else "")
            + f" = {_show(e['value'])}" for e in self.examples)
        counts = f"{self.unexpected_count} of {self.element_count} {self.unit} fail"
        return head + f"{counts}, e.g. {where}"


def _show(value: Any) -> str:
    return "NaN/missing" if value is None else "'' (empty)" if value == "" else str(value)


@dataclass
class ValidationReport:
    """Outcome of validating one dataset. ``error`` is set when the dataset could not be checked
    at all (missing, unreadable, other env). ``docs_page`` (relative to the Data Docs folder; not
    saved by :meth:`to_dict` since its name holds the run time) is the GX page of this run."""

    dataset: str
    path: str
    success: bool
    error: str | None = None
    episodes: int = 0
    steps: int = 0
    evaluated: int = 0
    failures: list[Failure] = field(default_factory=list)
    docs_page: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("docs_page")
        return d

    def summary(self) -> str:
        if self.error:
            return f"{self.dataset}: {self.error}"
        head = f"{self.dataset} ({self.path}): "
        size = f"{self.episodes} episodes, {self.steps} steps"
        if self.success:
            return head + f"all {self.evaluated} checks pass ({size})"
        lines = [head + f"{len(self.failures)} of {self.evaluated} checks fail ({size})"]
        return "\n".join(lines + [f"  - {f.summary()}" for f in self.failures])


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)  # nan / inf / -inf stay readable in strict JSON
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if v is pd.NA or v is None:
        return None
    return v


def _failure(res: dict[str, Any], max_examples: int) -> Failure:
    cfg, r = res["expectation_config"], res.get("result") or {}
    kw, meta = cfg["kwargs"], cfg.get("meta") or {}
    column = meta.get("column") or kw.get("column") or f"{kw.get('column_A')} == {kw.get('column_B')}"
    examples = []
    for row in (r.get("partial_unexpected_index_list") or [])[:max_examples]:
        pair = [row.get(kw.get("column_A")), row.get(kw.get("column_B"))]
        value = row.get(kw["column"]) if "column" in kw else pair
        example = {"episode_id": row.get("episode_id"), "step": row.get("step"), "value": value}
        if not meta.get("show_step", True):
            del example["step"]
        examples.append(example)
    err = (res.get("exception_info") or {}).get("exception_message")
    return Failure(
        expectation=cfg["type"], column=column,
        description=cfg.get("description") or cfg["type"],
        unexpected_count=r.get("unexpected_count"), element_count=r.get("element_count"),
        observed=_jsonable(r.get("observed_value", err)), examples=_jsonable(examples),
        unit=meta.get("unit", "rows"),
    )


_CONTEXTS: dict[Path | None, Any] = {}


def _context(docs_dir: Path | None):
    """One ephemeral GX context per Data Docs folder (the site index lists its validations)."""
    key = None if docs_dir is None else Path(docs_dir).absolute()
    if key not in _CONTEXTS:
        gx = load_gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        for site in list(ctx.get_config().data_docs_sites or {}):
            ctx.delete_data_docs_site(site)
        if key is not None:
            ctx.add_data_docs_site(_SITE, {
                "class_name": "SiteBuilder", "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(key)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            })
        _CONTEXTS[key] = ctx
    from great_expectations.data_context import set_context

    set_context(_CONTEXTS[key])  # GX resolves suites etc. through the "current" context
    return _CONTEXTS[key]


def release_context(docs_dir: Path | None) -> None:
    """Drop the cached GX context of ``docs_dir`` (after its site has been built)."""
    _CONTEXTS.pop(None if docs_dir is None else Path(docs_dir).absolute(), None)


def _merge(into: Any, new: Any, max_examples: int) -> Any:
    """One map expectation's GX result over two chunks: counts summed, examples concatenated (up to
    ``max_examples``), percentages recomputed as GX computes them. A result without counts (the
    expectation raised) is kept as it is."""
    if "element_count" not in into.result:
        return into
    if "element_count" not in new.result:
        return new
    a, b = into.result, new.result
    r = dict(a)
    for key in ("element_count", "unexpected_count", "missing_count"):
        if key in a:
            r[key] = a[key] + b[key]
    for key in ("partial_unexpected_list", "partial_unexpected_index_list"):
        if key in a:
            r[key] = (a[key] + b[key])[:max_examples]
    if "partial_unexpected_counts" in a:
        counts: dict[str, dict[str, Any]] = {}
        for c in a["partial_unexpected_counts"] + b["partial_unexpected_counts"]:
            seen = counts.setdefault(repr(c.get("value")), {**c, "count": 0})
            seen["count"] += c.get("count", 0)
        r["partial_unexpected_counts"] = sorted(counts.values(), key=lambda c: -c["count"])[:max_examples]
    n, bad = r["element_count"], r["unexpected_count"]
    total = bad / n * 100 if n else None
    if "missing_count" in r:
        present = n - r["missing_count"]
        r["missing_percent"] = r["missing_count"] / n * 100 if n else None
        r["unexpected_percent_total"] = total
        r["unexpected_percent_nonmissing"] = r["unexpected_percent"] = bad / present * 100 if n and present else None
    else:
        r["unexpected_percent"] = total
    into.result, into.success = r, into.success and new.success
    return into


def _split_suite(suite: gx.ExpectationSuite) -> tuple[list[int], list[int], list[str]]:
    """Indices of the suite's row-wise (map) and dataset-wide expectations, and the columns the
    dataset-wide ones read (checked on the episode table, so each must be constant per episode)."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    rows, whole, columns = [], [], ["episode_id"]
    for i, e in enumerate(suite.expectations):
        if isinstance(e, (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)):
            if getattr(e, "mostly", 1) != 1:  # summed counts decide only all-or-nothing expectations
                raise ValueError(f"{e.expectation_type}: `mostly` is not supported in chunked validation")
            rows.append(i)
        else:
            whole.append(i)
            kw = e.configuration.kwargs
            columns += [c for c in (kw.get("column"), kw.get("column_A"), kw.get("column_B"),
                                    *(kw.get("column_list") or [])) if c and c not in columns]
    return rows, whole, columns


def validate_chunks(tables: Iterable[pd.DataFrame], suite: gx.ExpectationSuite, name: str, path: str = "",
                    max_examples: int = 5, docs_dir: Path | None = None) -> ValidationReport:
    """Validate a step table given as ``tables``, chunks of whole episodes (from
    :func:`step_table`; :func:`table_chunks`), against ``suite``, holding one chunk at a time.

    GX checks the row-wise expectations on each chunk; their counts and examples are summed over
    the chunks. It checks the dataset-wide ones (e.g. the episode count) on the episode table
    (each episode's first row, the columns they read). With ``docs_dir`` the merged result is also
    rendered as GX Data Docs (``docs_dir/index.html``), one page per call in the same site.
    """
    gx = load_gx()
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.exceptions import DataContextError

    ctx = _context(docs_dir)
    try:  # replace the suite of an earlier run with this name
        ctx.suites.delete(name)
    except DataContextError:
        pass
    suite.name = name
    suite = ctx.suites.add(suite)
    rows, whole, columns = _split_suite(suite)
    parts = {kind: gx.ExpectationSuite(name=f"{name} ({kind})", expectations=[
        copy.copy(suite.expectations[i]) for i in idx]) for kind, idx in (("steps", rows), ("episodes", whole))}
    source = ctx.data_sources.add_or_update_pandas(name)
    batch_defs = {kind: source.add_dataframe_asset(kind).add_batch_definition_whole_dataframe(f"all {kind}")
                  for kind in parts}
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": max_examples,
                     "unexpected_index_column_names": _INDEX}

    def check(kind: str, df: pd.DataFrame):
        batch = batch_defs[kind].get_batch(batch_parameters={"dataframe": df})
        return batch.validate(parts[kind], result_format=result_format)

    merged: list = []
    firsts: list[pd.DataFrame] = []
    steps = episodes = 0
    for table in tables:
        df = add_check_columns(table)
        steps, episodes = steps + len(df), episodes + int(df["episode_id"].nunique())
        per_episode_values = df.groupby("episode_id", sort=False)[columns].nunique(dropna=False)
        if (per_episode_values > 1).any().any():
            raise ValueError(f"dataset-wide expectations read columns that vary within an episode ({columns})")
        firsts.append(df.loc[df["episode_row"] == 0, columns])
        run = check("steps", df)
        merged = run.results if not merged else [_merge(m, r, max_examples) for m, r in zip(merged, run.results,
                                                                                            strict=True)]
        meta, batch_id = run.meta, run.batch_id
        del df, table  # free this chunk before the next one is built
    if not firsts:
        raise DatasetError(f"{name}: no steps to validate")
    results = [None] * len(suite.expectations)
    for i, r in zip(rows, merged, strict=True):
        results[i] = r
    if whole:
        for i, r in zip(whole, check("episodes", pd.concat(firsts, ignore_index=True)).results, strict=True):
            results[i] = r
    passed = sum(r.success for r in results)
    run_id = RunIdentifier(run_name=name)
    vr = ExpectationSuiteValidationResult(
        success=passed == len(results), results=results, suite_name=name, batch_id=batch_id,
        statistics={"evaluated_expectations": len(results), "successful_expectations": passed,
                    "unsuccessful_expectations": len(results) - passed,
                    "success_percent": 100 * passed / len(results) if results else None},
        meta={**meta, "run_id": run_id, "validation_time": run_id.run_time,
              "batch_parameters": {"dataframe": "<DATAFRAME>"}})
    failures = [_failure(r, max_examples) for r in vr.to_json_dict()["results"] if not r["success"]]
    page = None
    if docs_dir is not None:
        key = ValidationResultIdentifier(ExpectationSuiteIdentifier(name), run_id, batch_id)
        ctx.validation_results_store.set(key, vr)
        ctx.build_data_docs(site_names=[_SITE], resource_identifiers=[key, ExpectationSuiteIdentifier(name)])
        urls = ctx.get_docs_sites_urls(resource_identifier=key, site_name=_SITE)
        if urls and urls[0].get("site_url"):
            url = urls[0]["site_url"].removeprefix("file://")
            page = os.path.relpath(url, Path(docs_dir).absolute())
    return ValidationReport(dataset=name, path=path, success=not failures, episodes=episodes, steps=steps,
                            evaluated=len(results), failures=failures, docs_page=page)


def validate_table(df: pd.DataFrame, suite: gx.ExpectationSuite, name: str, path: str = "",
                   max_examples: int = 5, docs_dir: Path | None = None,
                   chunk_steps: int = CHUNK_STEPS) -> ValidationReport:
    """Validate a step table (from :func:`step_table`) against ``suite``, in chunks of whole
    episodes of about ``chunk_steps`` rows (see :func:`validate_chunks`)."""
    return validate_chunks(table_chunks(df, chunk_steps), suite, name, path, max_examples, docs_dir)


def read_spaces(metadata: dict[str, Any], where: str) -> tuple[Space, Space]:
    """The dataset's (observation, action) spaces from its metadata.json."""
    from minari.serialization import deserialize_space

    try:
        return (deserialize_space(metadata["observation_space"]),
                deserialize_space(metadata["action_space"]))
    except (KeyError, ValueError, TypeError) as e:
        raise DatasetError(f"{where}: metadata.json lacks valid spaces ({e}); re-run collect") from e


def check_env(metadata: dict[str, Any], env_id: str, observation_space: Space, action_space: Space, where: str,
              fix: str, settings: str = "") -> tuple[Space, Space]:
    """The dataset's (observation, action) spaces, after checking they come from the env ``env_id``
    with these spaces; raises :class:`DatasetError` naming the mismatch, the env ``settings`` that
    give those spaces (e.g. ``continuous=False``) and ``fix`` otherwise."""
    import json

    try:
        spec = json.loads(metadata.get("env_spec") or "null") or {}
    except (ValueError, TypeError) as e:
        raise DatasetError(f"{where}: metadata.json lacks a valid env_spec ({e}); re-run collect") from e
    obs_space, act_space = read_spaces(metadata, where)
    if spec.get("id") != env_id:
        raise DatasetError(f"{where}: recorded from env {spec.get('id')!r}, but params configure {env_id!r}; {fix}")
    for what, got, want in (("observation", obs_space, observation_space), ("action", act_space, action_space)):
        if got != want:
            note = f" ({settings})" if settings else ""
            raise DatasetError(f"{where}: {what} space {got} differs from the configured env's {want}{note}; {fix}")
    return obs_space, act_space


def validate_dataset(path: Path, env_id: str, spaces: tuple[Space, Space], max_episode_steps: int,
                     expected_episodes: int, fix: str, max_examples: int = 5,
                     docs_dir: Path | None = None, settings: str = "",
                     chunk_steps: int = CHUNK_STEPS) -> ValidationReport:
    """Validate the Minari dataset at ``path`` (see :func:`build_suite` for the checks), recorded
    from env ``env_id`` with (observation, action) ``spaces`` (what the env's ``settings`` give),
    reading and checking about ``chunk_steps`` steps of whole episodes at a time.

    Raises :class:`DatasetError` when the folder is missing or unreadable, or was recorded from
    another environment (naming ``fix``). Data problems are returned in the report.
    """
    path = Path(path)
    obs_space, act_space = check_env(read_metadata(path), env_id, *spaces, str(path), fix, settings)
    suite = build_suite(obs_space, act_space, max_episode_steps, expected_episodes, path.name)
    tables = (step_table(episodes) for episodes in episode_chunks(path, chunk_steps))
    return validate_chunks(tables, suite, path.name, shown_path(path), max_examples, docs_dir)


def shown_path(path: Path) -> str:
    """The dataset's one HDF5 file where it has one (what a report names), else its folder."""
    files = sorted(Path(path).glob("**/*.hdf5"))
    return str(files[0]) if len(files) == 1 else str(path)


# --------------------------------------------------------------------------- running a stage

def _print_summary(reports: list[ValidationReport], console: Console) -> None:
    table = Table(title="validate: dataset checks (Great Expectations)")
    for col in ("dataset", "episodes", "steps", "checks", "result"):
        table.add_column(col, justify="right" if col in ("episodes", "steps", "checks") else "left")
    for r in reports:
        if r.error:
            result = "[red]not checked: see below[/]"
        elif r.success:
            result = "[green]pass[/]"
        else:
            result = f"[red]{len(r.failures)} failed[/]"
        table.add_row(r.dataset, str(r.episodes), str(r.steps), str(r.evaluated), result)
    console.print(table)


Check = Callable[[str, Path, Path], ValidationReport]  # (name, dataset folder, Data Docs folder)


def check_datasets(out: Path, docs: Path, datasets: dict[str, Path], check: Check,
                   finish: Callable[[Path, dict[str, ValidationReport]], None] | None = None,
                   ) -> dict[str, ValidationReport]:
    """Run ``check(name, folder, docs)`` on each named dataset folder, writing ``<name>.json`` into a
    fresh ``out`` and the GX Data Docs site into a fresh ``docs`` (each built next to the old one and
    swapped in at the end). ``out`` holds the verdicts only, the same bytes for the same data, so it
    is what DVC tracks and relabel depends on; the Data Docs carry run times and are the human
    report, kept beside it. A dataset that cannot be checked at all (:class:`DatasetError`: missing,
    unreadable, other env) gets a report with its error. ``finish(folder, reports)`` may add files
    to ``out`` before the swap."""
    reports: dict[str, ValidationReport] = {}
    with atomic_dir(out) as tmp, atomic_dir(docs) as docs_tmp:
        try:
            for name, ds_path in datasets.items():
                try:
                    report = check(name, ds_path, docs_tmp)
                except DatasetError as e:  # missing, unreadable or from another env
                    report = ValidationReport(name, str(ds_path), success=False, error=str(e))
                reports[name] = report
                write_json(tmp / f"{name}.json", report.to_dict())
        finally:
            release_context(docs_tmp)
        if finish is not None:
            finish(tmp, reports)
    return reports


def conclude(reports: dict[str, ValidationReport], out: Path, docs: Path, fix: str) -> None:
    """Print the summary table; raise :class:`StageFailed` naming every failed check, with
    examples and the reports' paths, if any dataset failed. ``fix`` ends the message."""
    console = Console()
    _print_summary(list(reports.values()), console)
    failed = [r for r in reports.values() if not r.success]
    index = docs / "index.html"
    if not failed:
        console.print(f"[green]all {len(reports)} datasets pass[/]; report: {index}")
        return
    lines = [f"{len(failed)} of {len(reports)} datasets failed validation:"]
    for r in failed:
        lines.append(r.summary())
        if r.docs_page:
            lines.append(f"  HTML report: {docs / r.docs_page}")
        lines.append(f"  JSON report: {out / (r.dataset + '.json')}")
    if index.exists():
        lines.append(f"All results (GX Data Docs): {index}")
    lines.append(fix)
    raise StageFailed("\n".join(lines))
