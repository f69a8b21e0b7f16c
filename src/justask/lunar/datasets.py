"""Validating a LunarLander dataset: the shared Great Expectations suite against the configured env."""

from __future__ import annotations

from pathlib import Path

from justask.lunar.config import EnvConfig
from justask.lunar.env import spaces
from justask.validation import ValidationReport, validate_dataset


def validate_lunar_dataset(path: Path, env: EnvConfig, expected_episodes: int, family: str, max_examples: int = 5,
                           docs_dir: Path | None = None) -> ValidationReport:
    """:func:`justask.validation.validate_dataset` for a dataset of ``family`` recorded in the env
    ``env`` configures; a dataset of another env is refused naming ``families.<family>.env``."""
    fix = (f"re-run collect with the configured env, or set params families.{family}.env to the env the dataset was "
           "recorded with")
    return validate_dataset(path, env.id, spaces(env), env.max_episode_steps, expected_episodes, fix, max_examples,
                            docs_dir, f"continuous={env.continuous}")
