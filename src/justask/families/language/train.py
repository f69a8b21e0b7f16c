"""train (language): fit every instruction-conditioned policy on every seed, with the one loop.

Per model (``families.language.train.models``): Optuna tunes it first when ``tune: true`` (same study
storage and search space as every family), then each seed is fitted and saved as
``artifacts/language/train/<model>/seed<k>/model.pt`` (weights, settings and vocabulary; loads
with ``weights_only=True``). Every trial and fit is an MLflow run; every fit is registered as
``justask-language-<model>``, a pyfunc model on image, direction and instruction
(``registered_policy.py``, logged as a model from code).
"""

from __future__ import annotations

import shutil
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from justask.config import Params
from justask.device import pick_device
from justask.errors import StageFailed
from justask.io import files_digest, write_json, write_text
from justask.paths import family_paths
from justask.registry import Entry
from justask.seeding import seed_everything
from justask.tracking import setup_mlflow
from justask.training.loop import Loop
from justask.training.resume import Resume
from justask.training.runs import curves_csv, fit_and_save
from justask.training.tune import tune

from .grammar import Vocabulary
from .policy import GridSpec, candidate, instruction_features, policy_provenance, save_policy
from .table import InstructionSteps, InstructionTable


def registry_entry() -> Entry:
    """How instruction policies enter MLflow's registry: the model-from-code file beside this one;
    columns ``image`` (a 7x7x3 nested list, minigrid's encoding), ``direction`` and ``instruction``."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec
    from mlflow.types.schema import Array

    inputs = Schema([ColSpec(Array(Array(Array("long"))), "image"), ColSpec("long", "direction"),
                     ColSpec("string", "instruction")])
    example = pd.DataFrame({"image": [np.zeros((7, 7, 3), np.int64).tolist()], "direction": [0],
                            "instruction": ["go to the red ball"]})
    return Entry(Path(__file__).with_name("registered_policy.py"), example,
                 ModelSignature(inputs, Schema([TensorSpec(np.dtype(np.int64), (-1,))])))


def train(params: Params, root: Path = Path(".")) -> None:
    cfg = params.family("language").train
    paths = family_paths("language", root)
    device = pick_device(cfg.device)
    seed_everything(params.seed)
    mlflow = setup_mlflow(params.tracking, root)
    t0 = time.perf_counter()
    tables = {}
    for data in {m.data for m in cfg.models.values()}:
        try:
            tables[data] = InstructionTable.load(paths.relabel / data)
        except FileNotFoundError as e:
            raise StageFailed(str(e)) from None
    _, meta = tables["relabeled"] if "relabeled" in tables else next(iter(tables.values()))
    vocab = Vocabulary(tuple(meta["vocabulary"]))
    features_cache: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    curves: list[dict] = []

    for name, mcfg in cfg.models.items():
        table, tmeta = tables[mcfg.data]
        reads = (mcfg.encoder, mcfg.reader)
        if reads not in features_cache:
            features_cache[reads] = instruction_features(mcfg.encoder, tmeta["instructions"], vocab, mcfg.reader)
        features = features_cache[reads]
        spec = GridSpec(act_dim=7, encoder=mcfg.encoder, vocab_size=len(vocab.words), reader=mcfg.reader)
        try:
            train_data = InstructionSteps(table, 0, features, device, mirror=cfg.mirror)
            val_data = InstructionSteps(table, 1, features, device, max_rows=cfg.val_rows)
        except ValueError as e:
            raise StageFailed(f"families.language.train.models.{name}: {e}") from None
        with mlflow.start_run(run_name=f"language-{name}"):
            mlflow.set_tags({"family": "language", "model": name, "data": mcfg.data, "encoder": mcfg.encoder,
                             "reader": mcfg.reader, "profile": params.profile})
            hp = mcfg.hp
            if mcfg.tune and cfg.tune.n_trials > 0:
                hp, _ = tune(f"language-{name}", hp, partial(candidate, spec), train_data, val_data, cfg=cfg,
                             steps=mcfg.steps, seed=params.seed, device=device, mlflow=mlflow,
                             storage_path=root / "artifacts" / "optuna" / f"language-{name}")
            write_json(paths.train / name / "hparams.json", {"model": name, "hp": hp, "steps": mcfg.steps,
                                                            "data": mcfg.data, "encoder": mcfg.encoder,
                                                            "reader": mcfg.reader})
            prov = policy_provenance(params, name, files_digest(paths.relabel / mcfg.data))
            for seed in cfg.seeds:
                build, optimisation = candidate(spec, hp, mcfg.steps)
                curves += fit_and_save(
                    mlflow, run_name=f"language-{name}-seed{seed}",
                    label={"dataset": mcfg.data, "model": name, "seed": seed}, hp=hp, build=build,
                    train=train_data, val=val_data, optimisation=optimisation,
                    loop=Loop(cfg.eval_every, cfg.patience, seed, device, cfg.val_batch),
                    save=partial(_save, hp, spec, vocab, prov), run_dir=paths.train / name / f"seed{seed}",
                    meta={"model": name, "seed": seed}, register_as=f"justask-language-{name}",
                    entry=registry_entry(),
                    resume=Resume(paths.resume_file(mcfg.data, name, seed), {"hp": hp, "spec": repr(spec)}),
                    fix=f"lower families.language.train.models.{name}.lr")
            print(f"train (language): {name} done ({time.perf_counter() - t0:.0f}s)")
    write_text(paths.base / "curves.csv", curves_csv(curves))
    shutil.rmtree(paths.checkpoints, ignore_errors=True)  # every fit finished: nothing to resume


def _save(hp: dict, spec: GridSpec, vocab: Vocabulary, prov: dict, path: Path, model: torch.nn.Module,
          meta: dict) -> None:
    save_policy(path, hp, spec, model, vocab, meta, prov)
