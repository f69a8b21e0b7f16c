"""validate (language): check both BabyAI datasets with Great Expectations before relabeling.

Each Minari dataset (``mix``, ``demos``) becomes a compact step table, one row per step: the
image enters as per-step min/max of its three channels (object, colour, state), so the suite
checks every cell of every observation, the final one included, without a column per cell. The
suite: image cells are valid minigrid encodings, direction in its space, actions in 0..6, rewards
finite in [0, 1], contiguous steps, exactly one terminated-or-truncated flag per episode and on
its last step, lengths within the level's ``max_steps``, a non-empty mission, the ``level`` info
one of the configured levels, the ``behaviour`` info one of the dataset's behaviours (the mix
names for ``mix``, ``bot`` for ``demos``) and the configured episode count.

Writes ``artifacts/language/validate/<dataset>.json`` and ``summary.json``, and the GX Data Docs
site under ``artifacts/language/validate-docs/``; any failure stops the pipeline naming the failed
checks with example episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from justask.config import Params
from justask.datasets import read_episodes, read_metadata
from justask.errors import DatasetError
from justask.io import write_json
from justask.paths import family_paths
from justask.validation import (
    StepTable,
    ValidationReport,
    check_datasets,
    conclude,
    discrete_expectations,
    episode_count_expectation,
    final_observation,
    load_gx,
    per_episode,
    read_spaces,
    shown_path,
    structure_expectations,
    validate_table,
)

from .env import ACTION_SPACE, OBSERVATION_SPACE, make_grid_env, reset_quietly

if TYPE_CHECKING:
    import great_expectations as gx

CHANNELS = ("object", "colour", "state")  # the three numbers minigrid encodes each cell with
INFOS = ("level", "behaviour", "mission")
REWARD_RANGE = (0.0, 1.0)  # minigrid: 1 - 0.9 * steps / max_steps on success, else 0


def channel_ranges() -> dict[str, tuple[int, int]]:
    """Valid (low, high) index of each image channel, from minigrid's own encoding tables."""
    from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

    ranges = {}
    for channel, table in zip(CHANNELS, (OBJECT_TO_IDX, COLOR_TO_IDX, STATE_TO_IDX), strict=True):
        values = sorted(set(table.values()))
        if values != list(range(values[0], values[-1] + 1)):  # min/max columns need a range
            raise RuntimeError(f"minigrid's {channel} indices {values} are not contiguous")
        ranges[channel] = (values[0], values[-1])
    return ranges


# --------------------------------------------------------------------------- step limits


@dataclass
class StepLimits:
    """Each episode's time limit: its level's ``max_steps`` (or its behaviour's ``max_steps``
    override), read from the env after a reset. BabyAI sets the limit at reset from the mission;
    where it is the same over a few seeds (every single-instruction level) one value serves the
    level, otherwise the episode's own env seed is reset to read it exactly."""

    levels: list[str]
    overrides: dict[str, int | None] = field(default_factory=dict)  # behaviour name -> max_steps
    probe_seeds: int = 4
    _fixed: dict[tuple[str, int | None], int | None] = field(default_factory=dict)
    _envs: dict[tuple[str, int | None], Any] = field(default_factory=dict)

    def _env(self, key: tuple[str, int | None]):
        if key not in self._envs:
            self._envs[key] = make_grid_env(*key)
        return self._envs[key]

    def _read(self, key: tuple[str, int | None], seed: int) -> int:
        env = self._env(key)
        reset_quietly(env, int(seed))
        return int(env.unwrapped.max_steps)

    def __call__(self, level: str, behaviour: str, seed: int | None) -> float:
        """The limit of one episode; NaN for a level that is not configured."""
        if level not in self.levels:
            return np.nan
        key = (level, self.overrides.get(behaviour))
        if key not in self._fixed:
            seen = {self._read(key, s) for s in range(self.probe_seeds)}
            self._fixed[key] = seen.pop() if len(seen) == 1 else None
        fixed = self._fixed[key]
        if fixed is not None:
            return fixed
        return self._read(key, seed) if seed is not None else np.nan

    def describe(self) -> str:
        parts = []
        for (level, override), limit in sorted(self._fixed.items(), key=str):
            name = level.removeprefix("BabyAI-") + (" with a behaviour's override" if override else "")
            parts.append(f"{name}: {limit if limit is not None else 'per mission'}")
        return ", ".join(parts)

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


# --------------------------------------------------------------------------- step table


def _text(infos: dict[str, Any], key: str) -> tuple[str, bool]:
    """The info's value at the episode's first step ("" if absent) and whether every step has it."""
    values = infos.get(key)
    if values is None or len(values) == 0:
        return "", False
    values = np.asarray(values)
    first = values[0]
    text = first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
    return text, bool((values == first).all())


def language_step_table(episodes: list[dict[str, Any]], limits: Callable[[str, str, int | None], float],
                        ) -> pd.DataFrame:
    """One row per step: ``episode_id, step``, ``direction`` and ``image_<channel>_{min,max}`` of
    the observation before the step and (``next_*``) after it, ``action, reward, terminated,
    truncated``, the episode's ``level, behaviour, mission`` (from its first step's infos),
    ``infos_constant`` (every step carries the same three infos), ``max_steps`` (its time
    limit), then ``episode_length, is_last, step_complete`` (see :class:`StepTable`)."""
    table = StepTable()
    for i, ep in enumerate(episodes):
        obs = ep["observations"]
        if not isinstance(obs, dict) or not {"image", "direction"} <= set(obs):
            raise DatasetError(f"episode {ep.get('id', i)}: observations are not Dict(image, direction)")
        image = np.asarray(obs["image"])
        if image.ndim != 4 or image.shape[-1] != len(CHANNELS):
            raise DatasetError(f"episode {ep.get('id', i)}: image shape {image.shape} is not (T+1, H, W, 3)")
        cells = image.reshape(len(image), -1, len(CHANNELS))
        low, high = cells.min(axis=1), cells.max(axis=1)
        per_obs = {"direction": np.asarray(obs["direction"])}
        for c, channel in enumerate(CHANNELS):
            per_obs[f"image_{channel}_min"] = low[:, c]
            per_obs[f"image_{channel}_max"] = high[:, c]
        infos = ep.get("infos") or {}
        texts = {k: _text(infos, k) for k in INFOS}
        seed = ep.get("seed")
        per_episode_values = {k: texts[k][0] for k in INFOS}
        per_episode_values["infos_constant"] = all(ok for _, ok in texts.values())
        per_episode_values["max_steps"] = limits(texts["level"][0], texts["behaviour"][0],
                                                 None if seed is None else int(seed))
        table.add(ep.get("id", i), per_obs,
                  {"action": ep["actions"], "reward": ep["rewards"], "terminated": ep["terminations"],
                   "truncated": ep["truncations"]},
                  per_episode_values)
    return table.frame()


# --------------------------------------------------------------------------- suite


def language_suite(levels: list[str], behaviours: list[str], expected_episodes: int, limits: str,
                   name: str = "episodes") -> gx.ExpectationSuite:
    """The expectation suite for a :func:`language_step_table` (after ``add_check_columns``)."""
    gx = load_gx()
    E = gx.expectations
    expectations: list = []
    add = expectations.append
    final = {"row_condition": final_observation(), "meta": {"unit": "episodes"}}
    for prefix, what, kw in (("", "observation", {}), ("next_", "final observation", final)):
        add(E.ExpectColumnValuesToNotBeNull(
            column=f"{prefix}image_object_min", description=f"{what} image is present", **kw))
        for channel, (lo, hi) in channel_ranges().items():
            for stat in ("min", "max"):
                add(E.ExpectColumnValuesToBeBetween(
                    column=f"{prefix}image_{channel}_{stat}", min_value=lo, max_value=hi, **kw,
                    description=f"{what} image: every cell's {channel} index is a valid minigrid "
                                f"encoding [{lo}, {hi}] ({stat} over the cells)"))
        expectations += discrete_expectations(f"{prefix}direction", OBSERVATION_SPACE["direction"],
                                              f"{what} direction", "the direction space",
                                              final=bool(prefix))
    expectations += discrete_expectations("action", ACTION_SPACE, "action", "the action space")
    lo, hi = REWARD_RANGE
    add(E.ExpectColumnValuesToNotBeNull(column="reward", description="reward is present (not NaN)"))
    add(E.ExpectColumnValuesToBeBetween(
        column="reward", min_value=lo, max_value=hi, description=f"reward is finite and in [{lo:g}, {hi:g}]"))
    expectations += structure_expectations()
    length = per_episode()
    length["meta"]["column"] = "episode_length"  # label the pair check by the column it is about
    add(E.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A="max_steps", column_B="episode_length", or_equal=True,
        ignore_row_if="either_value_is_missing", **length,
        description=f"episode length is at most its level's max_steps ({limits}); values are "
                    "[max_steps, length]"))
    add(E.ExpectColumnValuesToMatchRegex(
        column="mission", regex=r"\S", **per_episode(), description="the mission is non-empty text"))
    add(E.ExpectColumnValuesToBeInSet(
        column="level", value_set=list(levels), **per_episode(),
        description=f"the level info is one of the configured levels {list(levels)}"))
    add(E.ExpectColumnValuesToBeInSet(
        column="behaviour", value_set=list(behaviours), **per_episode(),
        description=f"the behaviour info is one of {list(behaviours)}"))
    add(E.ExpectColumnValuesToBeInSet(
        column="infos_constant", value_set=[True], **per_episode(),
        description="every step of the episode carries the same level, behaviour and mission"))
    add(episode_count_expectation(expected_episodes))
    return gx.ExpectationSuite(name=name, expectations=expectations)


# --------------------------------------------------------------------------- datasets


def expected(params: Params) -> dict[str, tuple[int, list[str], dict[str, int | None]]]:
    """Per dataset: (episodes, behaviour names, behaviour -> max_steps override)."""
    fam = params.family("language")
    cfg, levels = fam.collect, fam.env.levels
    return {
        "mix": (sum(b.episodes for b in cfg.mix) * len(levels), [b.name for b in cfg.mix],
                {b.name: b.max_steps for b in cfg.mix}),
        "demos": (cfg.demos * len(levels), ["bot"], {}),
    }


def validate_language_dataset(path: Path, levels: list[str], behaviours: list[str], episodes: int,
                              overrides: dict[str, int | None] | None = None, max_examples: int = 5,
                              docs_dir: Path | None = None) -> ValidationReport:
    """Validate the BabyAI Minari dataset at ``path``. Raises :class:`DatasetError` when it is
    missing, unreadable or has other spaces than the collect stage writes; data problems are
    returned in the report."""
    path = Path(path)
    obs_space, act_space = read_spaces(read_metadata(path), str(path))
    fix = "re-run `justask stage collect language`"
    for what, got, want in (("observation", obs_space, OBSERVATION_SPACE), ("action", act_space, ACTION_SPACE)):
        if got != want:
            raise DatasetError(f"{path}: {what} space {got} is not the BabyAI collect stage's {want}; {fix}")
    eps = read_episodes(path)
    if not eps:
        raise DatasetError(f"{path}: the dataset holds no episodes; {fix}")
    limits = StepLimits(list(levels), dict(overrides or {}))
    try:
        df = language_step_table(eps, limits)
    finally:
        limits.close()
    suite = language_suite(levels, behaviours, episodes, limits.describe(), path.name)
    return validate_table(df, suite, path.name, shown_path(path), max_examples, docs_dir)


def validate(params: Params, root: Path = Path(".")) -> dict[str, ValidationReport]:
    """Validate ``mix`` and ``demos``; raise :class:`StageFailed` (after writing all reports) if
    either is missing, unreadable or fails a check."""
    fam = params.family("language")
    paths = family_paths("language", root)
    want = expected(params)

    def check(name: str, path: Path, docs: Path) -> ValidationReport:
        episodes, behaviours, overrides = want[name]
        return validate_language_dataset(path, fam.env.levels, behaviours, episodes, overrides,
                                         fam.validate_.max_examples, docs)

    def summary(folder: Path, reports: dict[str, ValidationReport]) -> None:
        write_json(folder / "summary.json", {
            "success": all(r.success for r in reports.values()),
            "datasets": {n: {"success": r.success, "episodes": r.episodes, "steps": r.steps,
                             "checks": r.evaluated, "failed": [f.column for f in r.failures],
                             "error": r.error} for n, r in reports.items()},
        })

    reports = check_datasets(paths.validate, paths.validate_docs, {n: paths.dataset(n) for n in want}, check,
                             summary)
    conclude(reports, paths.validate, paths.validate_docs,
             "Fix or re-collect the data (`justask stage collect language`) and run validate again.")
    return reports
