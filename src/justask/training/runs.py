"""A tracked fit: one seed of one model fitted by the loop as a nested MLflow run, saved as
``model.pt`` + ``curve.csv`` and registered in MLflow's model registry; and the curves CSV every
family's train stage writes for ``dvc plots``.

MLflow points at the checkpoint, never the other way round: the run is tagged with the file's path
and SHA-256, so the tracked file is the same bytes on every rerun.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from justask.errors import StageFailed
from justask.io import write_text
from justask.registry import Entry, register
from justask.training.checkpoints import file_sha256
from justask.training.loop import Batches, Loop, Optimisation, fit
from justask.training.resume import Resume

CURVE_FIELDS = ["dataset", "model", "seed", "step", "train_loss", "val_loss"]


def curves_csv(rows: list[dict]) -> str:
    """Training curves as CSV (``CURVE_FIELDS``), the ``dvc plots`` source of every family."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in CURVE_FIELDS})
    return buf.getvalue()


def log_curve(mlflow) -> Callable[[dict], None]:
    """A ``fit(log=...)`` callback logging each evaluation to the active MLflow run."""
    return lambda p: mlflow.log_metrics({"val_loss": p["val_loss"], "train_loss": p["train_loss"]}, step=p["step"])


def fit_and_save(mlflow, *, run_name: str, label: dict, hp: dict, build: Callable[[], torch.nn.Module],
                 train: Batches, val: Batches, optimisation: Optimisation, loop: Loop,
                 save: Callable[[Path, torch.nn.Module, dict], None], run_dir: Path, meta: dict,
                 register_as: str | None = None, entry: Entry | None = None, resume: Resume | None = None,
                 fix: str = "lower its lr in params.yaml or check the relabeled data",
                 measure: Callable[[torch.nn.Module], dict] | None = None, keep_last: bool = False,
                 parent: tuple[str, str] | None = None) -> list[dict]:
    """Fit one seed as a nested MLflow run; ``save(path, model, meta)`` writes ``run_dir/model.pt``
    (``meta`` plus the best validation loss and step, and what ``measure(model)`` returns, also
    logged to MLflow); with ``keep_last`` the weights of the last step go to ``run_dir/last.pt``
    (same format); ``curve.csv`` goes beside it; with
    ``register_as`` the checkpoint is registered as a new version of that model, as ``entry`` says
    (:func:`justask.registry.register`; tagged with ``label``). ``label`` (dataset, model, seed)
    heads each curve row; returns the rows. ``fix`` ends the message of a non-finite validation
    loss. On a terminal a progress bar follows the fit; one line reports it when it ends. ``parent``
    (experiment id, run id) nests the run under a run of another process (a pool worker's fit)."""
    under = {} if parent is None else {"experiment_id": parent[0], "parent_run_id": parent[1]}
    with mlflow.start_run(run_name=run_name, nested=True, **under):
        # Threads are logged: on CPU a transformer's trained weights depend on them (benchmarks/README.md).
        mlflow.log_params({**hp, "seed": loop.seed, "steps": optimisation.steps, "device": loop.device.type,
                           "threads": torch.get_num_threads()})
        with fit_progress(run_name, optimisation.steps, log_curve(mlflow)) as log:
            result = fit(build, train, val, optimisation, loop, resume=resume, log=log)
        if not math.isfinite(result.best_val_loss):
            raise StageFailed(f"{run_name}: validation loss is not finite; {fix}")
        mlflow.log_metrics({"best_val_loss": result.best_val_loss, "best_step": result.best_step,
                            "train_seconds": result.seconds, "samples_per_second": result.samples_per_second})
        measured = measure(result.model) if measure is not None else {}
        mlflow.log_metrics(measured)
        ckpt = run_dir / "model.pt"
        save(ckpt, result.model, {**meta, "best_val_loss": result.best_val_loss, "best_step": result.best_step,
                                  **measured})
        if keep_last:
            last = build().to(loop.device)
            last.load_state_dict(result.last_state)
            save(run_dir / "last.pt", last.eval(), {**meta, "step": result.steps_run})
        mlflow.set_tags({"checkpoint": str(ckpt), "checkpoint_sha256": file_sha256(ckpt)})
        rows = [{**label, **p} for p in result.curve]
        write_text(run_dir / "curve.csv", curves_csv(rows))
        if register_as is not None:
            register(mlflow, ckpt, register_as, entry, {k: str(v) for k, v in label.items()})
    print(f"fit {run_name}: {result.steps_run} steps in {result.seconds:.0f} s, best validation loss "
          f"{result.best_val_loss:.4g} at step {result.best_step}", flush=True)
    return rows


@contextlib.contextmanager
def fit_progress(name: str, steps: int, log: Callable[[dict], None]) -> Iterator[Callable[[dict], None]]:
    """A progress bar of one fit on a terminal (step, losses at the last evaluation, time left),
    removed when it ends; nothing when the output is a file or a pipe. Yields ``fit``'s ``log``
    callback: ``log`` plus the bar's update."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[losses]}"), TimeRemainingColumn())
    with Progress(*columns, transient=True, disable=not sys.stdout.isatty()) as progress:
        task = progress.add_task(f"fit {name}", total=steps, losses="")

        def logged(point: dict) -> None:
            log(point)
            progress.update(task, completed=point["step"],
                            losses=f"train {point['train_loss']:.4g}  val {point['val_loss']:.4g}")

        yield logged
