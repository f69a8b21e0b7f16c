"""train (language): fit every instruction-conditioned policy on every seed, with the one loop.

Per model (``language.train.models``): Optuna tunes it first when ``tune: true`` (same study
storage and search space as the return family), then each seed is fitted and saved as
``artifacts/language/train/<model>/seed<k>/model.pt`` (weights, settings and vocabulary; loads
with ``weights_only=True``). Every trial and fit is an MLflow run; every fit is registered as
``justask-language-<model>`` (see :mod:`justask.registry`).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from justask.config import Params
from justask.data.atomic import write_json, write_text
from justask.data.language.grammar import Vocabulary, tokenize
from justask.data.language.table import InstructionTable
from justask.models import CheckpointError, build_model, load_state, read_payload, write_torch
from justask.models.instruction_policy import GridSpec
from justask.paths import family_paths
from justask.registry import register
from justask.seeding import seed_everything
from justask.stages import StageFailed
from justask.tracking import setup_mlflow
from justask.train import InstructionSteps, curves_csv, fit, pick_device
from justask.tune import tune

KIND = "instruction"


def instruction_features(encoder: str, texts: list[str], vocab: Vocabulary) -> dict[str, np.ndarray]:
    """What a policy reads for each instruction text: token ids (word; padded to the longest text,
    which the word encoder ignores) or a frozen embedding (minilm)."""
    if encoder == "word":
        return {"tokens": vocab.encode(texts, max([len(tokenize(t)) for t in texts], default=1))}
    from justask.models.encoders import SentenceEmbedder

    return {"sentence": SentenceEmbedder().embed(texts)}


def save_policy(path: Path, hp: dict, spec: GridSpec, model: torch.nn.Module, vocab: Vocabulary, meta: dict) -> None:
    """Write what :func:`load_policy` needs to act on new instructions: weights, settings, vocabulary."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"kind": KIND, "hp": hp, "spec": asdict(spec), "vocabulary": list(vocab.words),
               "meta": meta, "state_dict": state}
    write_torch(path, payload)


def load_policy(path: Path, device: torch.device | str = "cpu"):
    """Rebuild an instruction policy and its vocabulary from ``model.pt`` (``weights_only=True``);
    returns ``(model, vocabulary, payload)``. Raises :class:`CheckpointError` naming the file when it
    is damaged, holds another family's model or weights of another shape than its settings."""
    payload = read_payload(path, device, (KIND,), "language")
    try:
        spec = GridSpec(**payload["spec"])
        model = build_model(KIND, payload["hp"], spec)
        vocab = Vocabulary(tuple(payload["vocabulary"]))
    except (TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: its settings do not describe an instruction policy ({type(e).__name__}: "
                              f"{e}); re-run `dvc repro train@language` to rebuild it.") from e
    load_state(path, model, payload["state_dict"])
    return model.to(device).eval(), vocab, payload


def train(params: Params, root: Path = Path(".")) -> None:
    cfg = params.language.train
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
    features_cache: dict[str, dict[str, np.ndarray]] = {}
    curves: list[dict] = []

    for name, mcfg in cfg.models.items():
        table, tmeta = tables[mcfg.data]
        if mcfg.encoder not in features_cache:
            features_cache[mcfg.encoder] = instruction_features(mcfg.encoder, tmeta["instructions"], vocab)
        features = features_cache[mcfg.encoder]
        spec = GridSpec(act_dim=7, encoder=mcfg.encoder, vocab_size=len(vocab.words))
        try:
            train_data = InstructionSteps(table, 0, features, device, mirror=cfg.mirror)
            val_data = InstructionSteps(table, 1, features, device, max_rows=cfg.val_rows)
        except ValueError as e:
            raise StageFailed(f"language.train.models.{name}: {e}") from None
        base = mcfg.model_dump(exclude={"tune", "steps", "data", "encoder"})
        with mlflow.start_run(run_name=f"language-{name}"):
            mlflow.set_tags({"family": "language", "model": name, "data": mcfg.data, "encoder": mcfg.encoder,
                             "profile": params.profile})
            hp = base
            if mcfg.tune and cfg.tune.n_trials > 0:
                hp, _ = tune(
                    KIND, base, spec, train_data, val_data, dataset=name, data_fingerprint=_fingerprint(table),
                    n_trials=cfg.tune.n_trials,
                    trial_steps=max(cfg.eval_every, int(mcfg.steps * cfg.tune.trial_steps_fraction)),
                    eval_every=cfg.eval_every, patience=cfg.patience, seed=params.seed, device=device,
                    storage_path=root / "artifacts" / "optuna" / f"language-{name}", storage_kind=cfg.tune.storage,
                    mlflow=mlflow, workers=cfg.tune.workers)
            write_json(paths.train / name / "hparams.json", {"model": name, "hp": hp, "steps": mcfg.steps,
                                                            "data": mcfg.data, "encoder": mcfg.encoder})
            for seed in cfg.seeds:
                with mlflow.start_run(run_name=f"language-{name}-seed{seed}", nested=True) as run:
                    mlflow.log_params({**hp, "seed": seed, "steps": mcfg.steps, "device": device.type})
                    result = fit(KIND, hp, spec, train_data, val_data, steps=mcfg.steps, eval_every=cfg.eval_every,
                                 patience=cfg.patience, seed=seed, device=device,
                                 resume=paths.resume_file(mcfg.data, name, seed),
                                 log=lambda p: mlflow.log_metrics({"val_loss": p["val_loss"],
                                                                   "train_loss": p["train_loss"]}, step=p["step"]))
                    if not np.isfinite(result.best_val_loss):
                        raise StageFailed(f"language/{name}/seed{seed}: validation loss is not finite; lower "
                                          f"language.train.models.{name}.lr")
                    mlflow.log_metrics({"best_val_loss": result.best_val_loss, "train_seconds": result.seconds,
                                        "samples_per_second": result.samples_per_second})
                    ckpt = paths.train / name / f"seed{seed}" / "model.pt"
                    save_policy(ckpt, hp, spec, result.model, vocab,
                                {"model": name, "seed": seed, "best_val_loss": result.best_val_loss,
                                 "best_step": result.best_step, "mlflow_run_id": run.info.run_id})
                    register(mlflow, ckpt, f"justask-language-{name}", language=True)
                    curves += [{"dataset": mcfg.data, "model": name, "seed": seed, **p} for p in result.curve]
            print(f"train (language): {name} done ({time.perf_counter() - t0:.0f}s)")
    write_text(paths.base / "curves.csv", curves_csv(curves))
    shutil.rmtree(paths.checkpoints, ignore_errors=True)  # every fit finished: nothing to resume


def _fingerprint(table: InstructionTable) -> str:
    h = hashlib.sha256()
    for name in ("actions", "label_episode", "label_end", "label_instruction", "split"):
        h.update(np.ascontiguousarray(getattr(table, name)).tobytes())
    return h.hexdigest()[:16]
