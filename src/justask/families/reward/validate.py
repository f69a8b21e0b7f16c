"""validate (reward): the return family's Great Expectations suite on the demos, the noise-injection
rollouts and the held-out trajectories (all LunarLander steps). Reports and Data Docs under
``artifacts/reward/validate/``; any failure stops the pipeline before ranking trains on bad data.
"""

from __future__ import annotations

from pathlib import Path

from justask.config import Params
from justask.lunar.datasets import validate_lunar_dataset
from justask.paths import family_paths
from justask.validation import ValidationReport, check_datasets, conclude

DATASETS = ("demos", "noise", "held_out")


def expected_episodes(params: Params) -> dict[str, int]:
    cfg = params.family("reward").collect
    return {"demos": cfg.demos, "noise": cfg.episodes_per_noise * len(cfg.noise),
            "held_out": sum(b.episodes for b in cfg.held_out)}


def validate(params: Params, root: Path = Path(".")) -> dict[str, ValidationReport]:
    fam = params.family("reward")
    paths = family_paths("reward", root)
    counts = expected_episodes(params)
    reports = check_datasets(
        paths.validate, paths.validate_docs, {name: paths.dataset(name) for name in DATASETS},
        lambda name, path, docs: validate_lunar_dataset(path, fam.env, counts[name], "reward",
                                                        fam.validate_.max_examples, docs))
    conclude(reports, paths.validate, paths.validate_docs,
             "Fix or re-collect the data (`dvc repro collect@reward`) and run validate again.")
    return reports
