"""validate (reward): the return family's Great Expectations suite on the demos, the noise-injection
rollouts and the held-out trajectories (all LunarLander steps). Reports and Data Docs under
``artifacts/reward/validate/``; any failure stops the pipeline before ranking trains on bad data.
"""

from __future__ import annotations

from pathlib import Path

from justask.config import Params
from justask.data.validation import ValidationReport, check_datasets, conclude, validate_dataset
from justask.paths import family_paths

DATASETS = ("demos", "noise", "held_out")


def expected_episodes(params: Params) -> dict[str, int]:
    cfg = params.reward.collect
    return {"demos": cfg.demos, "noise": cfg.episodes_per_noise * len(cfg.noise),
            "held_out": sum(b.episodes for b in cfg.held_out)}


def validate(params: Params, root: Path = Path(".")) -> dict[str, ValidationReport]:
    fam = params.reward
    paths = family_paths("reward", root)
    counts = expected_episodes(params)
    reports = check_datasets(
        paths.validate, {name: paths.dataset(name) for name in DATASETS},
        lambda name, path, docs: validate_dataset(path, fam.env, counts[name], fam.validate_.max_examples, docs))
    conclude(reports, paths.validate,
             "Fix or re-collect the data (`dvc repro collect@reward`) and run validate again.")
    return reports
