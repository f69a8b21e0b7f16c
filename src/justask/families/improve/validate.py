"""validate (improve): the shared Great Expectations suite on the learning histories (cells on the
grid, actions in 0..4, rewards finite, episodes of ``max_episode_steps`` steps, the episode count),
then the family's own checks (:func:`justask.families.improve.histories.read_histories`): whole
histories in order, training goals only (never a held-out one), every reward the one its goal
gives. Verdicts under ``artifacts/improve/validate/``."""

from __future__ import annotations

from pathlib import Path

from justask.config import Params
from justask.paths import family_paths
from justask.validation import ValidationReport, check_datasets, conclude, validate_dataset

from .env import ENV_ID, make_env
from .goals import training_goals
from .histories import read_histories


def validate(params: Params, root: Path = Path(".")) -> dict[str, ValidationReport]:
    fam = params.family("improve")
    paths = family_paths("improve", root)
    env = make_env(fam.env)
    expected = len(training_goals(fam.env)) * fam.collect.histories_per_goal * fam.collect.episodes

    def check(name: str, path: Path, docs: Path) -> ValidationReport:
        report = validate_dataset(path, ENV_ID, (env.observation_space, env.action_space), fam.env.max_episode_steps,
                                  expected, "re-run `dvc repro collect@improve`", fam.validate_.max_examples, docs,
                                  settings=f"size {fam.env.size}")
        if report.success:
            # DatasetError (reported by check_datasets), also from a pool worker
            read_histories(path, fam.env, fam.collect.episodes, params.scale.workers, params.scale)
        return report

    reports = check_datasets(paths.validate, paths.validate_docs, {"histories": paths.dataset("histories")}, check)
    conclude(reports, paths.validate, paths.validate_docs,
             "Fix or re-collect the data (`dvc repro collect@improve`) and run validate again.")
    return reports
