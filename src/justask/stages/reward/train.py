"""train (reward): learn a reward by ranking, relabel the noise-injection data with it, then fit
return-conditioned policies on the learned returns. The env's reward is never read here.

1. **Ranking.** ``train.ranking.ensemble`` reward nets r(s), each fitted with the T-REX loss on the
   ranked snippet pairs by the one training loop (optionally Optuna-tuned first); saved as
   ``ranking/member<k>/model.pt``, with each member's output scale and the validation pair
   accuracy in ``ranking/ensemble.json``.
2. **Learned returns.** Every step of the noise-injection data gets the ensemble's reward;
   return-to-go and episode returns follow (``learned/``, a return-family step table).
3. **Policies.** Each model of ``train.models`` (RvS, DT) is fitted on the learned returns, per
   seed, exactly as in the return family (``policies/<model>/seed<k>/model.pt``), and registered
   in the MLflow model registry as ``justask-reward-<model>``.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from justask.config import Params
from justask.data.atomic import write_json, write_text
from justask.data.ranking import RankingTable, SnippetPairs, load_pairs
from justask.data.relabel import StepTable, returns_to_go
from justask.models import CONDITIONED, CheckpointError, Spec, load_checkpoint, save_checkpoint
from justask.models.ranking import LearnedReward, RewardNet
from justask.paths import family_paths
from justask.seeding import seed_everything
from justask.stages import StageFailed
from justask.tracking import setup_mlflow
from justask.train import Steps, curves_csv, data_spec, fit, fit_and_save, pick_device
from justask.tune import tune


def ranking_spec(table: RankingTable, max_episode_steps: int) -> Spec:
    """Input spec of the reward nets: observation statistics of the training episodes."""
    rows = np.repeat(table.split, table.lengths) == 0
    obs = table.observations[rows]
    return Spec(obs_dim=obs.shape[1], act_dim=1, discrete=False, max_timestep=max_episode_steps,
                obs_mean=tuple(float(x) for x in obs.mean(0)), obs_std=tuple(float(x) for x in obs.std(0)),
                return_scale=1.0)


@torch.no_grad()
def pair_accuracy(members: list[RewardNet], scales: list[float], pairs: SnippetPairs, batch: int = 1024) -> float:
    """Fraction of pairs whose higher-ranked snippet gets the higher (ensemble) predicted return."""
    hits = 0
    for i in range(0, len(pairs), batch):
        b = pairs.windows(pairs.rows[i:i + batch], 1)
        returns = sum(m.eval().snippet_returns(b) / s for m, s in zip(members, scales, strict=True))
        hits += int((returns.argmax(-1) == b["label"]).sum())
    return hits / len(pairs)


def ranking_dir(root: Path) -> Path:
    return family_paths("reward", root).train / "ranking"


def load_learned_reward(root: Path, device: torch.device | str = "cpu") -> tuple[LearnedReward, dict]:
    """The trained ensemble as a NumPy reward function, and ``ensemble.json``."""
    import json

    folder = ranking_dir(root)
    index = folder / "ensemble.json"
    try:
        info = json.loads(index.read_text())
        n, scales = int(info["members"]), info["scales"]
    except (ValueError, TypeError, KeyError) as e:  # FileNotFoundError passes: the caller names the stage
        raise CheckpointError(f"{index}: not a valid ensemble index ({type(e).__name__}: {e}); "
                              "re-run `dvc repro train@reward` to rebuild it.") from e
    if n < 1 or len(scales) != n:
        raise CheckpointError(f"{index}: lists {n} members but {len(scales)} scales; "
                              "re-run `dvc repro train@reward` to rebuild it.")
    members = [load_checkpoint(folder / f"member{k}" / "model.pt", device, kinds=("reward",))[0] for k in range(n)]
    dims = {m.spec.obs_dim for m in members}
    if len(dims) > 1:
        raise CheckpointError(f"{folder}: ensemble members read observations of different sizes {sorted(dims)}; "
                              "re-run `dvc repro train@reward` to rebuild them together.")
    return LearnedReward(members, scales, device), info


def learned_table(steps: StepTable, reward: LearnedReward) -> StepTable:
    """``steps`` with return-to-go and episode returns computed from the learned reward."""
    r = reward(steps.observations)
    rtg = np.concatenate([returns_to_go(r[a:b]) for a, b in zip(steps.starts[:-1], steps.starts[1:], strict=True)])
    returns = np.array([r[a:b].sum() for a, b in zip(steps.starts[:-1], steps.starts[1:], strict=True)])
    return StepTable(observations=steps.observations, actions=steps.actions, rtg=rtg.astype(np.float32),
                     timesteps=steps.timesteps, episode=steps.episode, starts=steps.starts, returns=returns,
                     split=steps.split)


def train(params: Params, root: Path = Path(".")) -> None:
    fam, cfg = params.reward, params.reward.train
    paths = family_paths("reward", root)
    device = pick_device(cfg.device)
    seed_everything(params.seed)
    mlflow = setup_mlflow(params.tracking, root)
    t0 = time.perf_counter()
    try:
        table, _ = RankingTable.load(paths.relabeled("ranking"))
        pairs_train, _ = load_pairs(paths.relabeled("pairs_train"))
        pairs_val, _ = load_pairs(paths.relabeled("pairs_val"))
        steps, steps_meta = StepTable.load(paths.relabeled("steps"))
    except FileNotFoundError as e:
        raise StageFailed(str(e)) from None
    curves: list[dict] = []

    # 1. The ranking ensemble.
    rcfg = cfg.ranking
    spec = ranking_spec(table, fam.env.max_episode_steps)
    train_pairs = SnippetPairs(table, pairs_train, device)
    val_pairs = SnippetPairs(table, pairs_val, device, max_rows=cfg.val_rows)
    base = rcfg.model_dump(exclude={"tune", "steps", "ensemble"})
    members, scales = [], []
    with mlflow.start_run(run_name="reward-ranking"):
        mlflow.set_tags({"family": "reward", "model": "ranking", "profile": params.profile})
        hp = base
        if rcfg.tune and cfg.tune.n_trials > 0:
            hp, _ = tune("reward", base, spec, train_pairs, val_pairs, dataset="ranking",
                         data_fingerprint=_fingerprint(pairs_train.start_a, pairs_train.start_b, pairs_train.label),
                         n_trials=cfg.tune.n_trials,
                         trial_steps=max(cfg.eval_every, int(rcfg.steps * cfg.tune.trial_steps_fraction)),
                         eval_every=cfg.eval_every, patience=cfg.patience, seed=params.seed, device=device,
                         storage_path=root / "artifacts" / "optuna" / "reward-ranking", storage_kind=cfg.tune.storage,
                         mlflow=mlflow, workers=cfg.tune.workers)
        for k in range(rcfg.ensemble):
            seed = params.seed + k
            with mlflow.start_run(run_name=f"reward-ranking-member{k}", nested=True) as run:
                mlflow.log_params({**hp, "member": k, "seed": seed, "steps": rcfg.steps})
                result = fit("reward", hp, spec, train_pairs, val_pairs, steps=rcfg.steps, eval_every=cfg.eval_every,
                             patience=cfg.patience, seed=seed, device=device,
                             resume=paths.resume_file("ranking", f"member{k}", seed),
                             log=lambda p: mlflow.log_metrics({"val_loss": p["val_loss"],
                                                               "train_loss": p["train_loss"]}, step=p["step"]))
                if not np.isfinite(result.best_val_loss):
                    raise StageFailed(f"reward/ranking/member{k}: validation loss is not finite; "
                                      "lower reward.train.ranking.lr")
                train_rows = np.repeat(table.split, table.lengths) == 0
                scale = float(LearnedReward([result.model], [1.0], device).per_member(
                    table.observations[train_rows]).std())
                accuracy = pair_accuracy([result.model], [scale], val_pairs)
                mlflow.log_metrics({"best_val_loss": result.best_val_loss, "val_pair_accuracy": accuracy})
                save_checkpoint(ranking_dir(root) / f"member{k}" / "model.pt", "reward", hp, spec, result.model,
                                {"member": k, "seed": seed, "best_val_loss": result.best_val_loss,
                                 "best_step": result.best_step, "val_pair_accuracy": accuracy,
                                 "mlflow_run_id": run.info.run_id})
                members.append(result.model)
                scales.append(max(scale, 1e-8))
                curves += [{"dataset": "ranking", "model": f"member{k}", "seed": seed, **p} for p in result.curve]
        accuracy = pair_accuracy(members, scales, val_pairs)
        mlflow.log_metric("ensemble_val_pair_accuracy", accuracy)
    write_json(ranking_dir(root) / "ensemble.json", {"members": len(members), "scales": scales, "hp": hp,
                                                     "val_pair_accuracy": accuracy})
    print(f"train (reward): ranking ensemble of {len(members)}, validation pair accuracy {accuracy:.3f} "
          f"({time.perf_counter() - t0:.0f}s)")

    # 2. Learned returns on the noise-injection data.
    learned = learned_table(steps, LearnedReward(members, scales, device))
    lo, hi = float(learned.returns.min()), float(learned.returns.max())
    meta = {**steps_meta, "rtg": "learned reward (ensemble)", "ref_min_score": lo, "ref_max_score": hi,
            "learned_return_min": lo, "learned_return_max": hi}
    learned.save(paths.train / "learned", meta)

    # 3. Return-conditioned policies on the learned returns.
    pspec = data_spec(learned, meta)
    for kind, mcfg in cfg.models.items():
        base = mcfg.model_dump(exclude={"tune", "steps", "top_fraction"})
        train_data = Steps(learned, np.flatnonzero(learned.split == 0), device)
        val_data = Steps(learned, np.flatnonzero(learned.split == 1), device, max_rows=cfg.val_rows)
        with mlflow.start_run(run_name=f"reward-{kind}"):
            mlflow.set_tags({"family": "reward", "model": kind, "profile": params.profile})
            hp = base
            if mcfg.tune and kind in CONDITIONED and cfg.tune.n_trials > 0:
                hp, _ = tune(kind, base, pspec, train_data, val_data, dataset="reward-learned",
                             data_fingerprint=_fingerprint(learned.rtg, learned.actions, learned.split),
                             n_trials=cfg.tune.n_trials,
                             trial_steps=max(cfg.eval_every, int(mcfg.steps * cfg.tune.trial_steps_fraction)),
                             eval_every=cfg.eval_every, patience=cfg.patience, seed=params.seed, device=device,
                             storage_path=root / "artifacts" / "optuna" / f"reward-{kind}",
                             storage_kind=cfg.tune.storage, mlflow=mlflow, workers=cfg.tune.workers)
            write_json(paths.train / "policies" / kind / "hparams.json", {"model": kind, "hp": hp, "steps": mcfg.steps})
            for seed in cfg.seeds:
                curves += fit_and_save(mlflow, kind, hp, pspec, train_data, val_data, mcfg.steps, cfg, seed, device,
                                       "learned", paths.run_dir("policies", kind, seed), f"justask-reward-{kind}",
                                       resume=paths.resume_file("policies", kind, seed))
        print(f"train (reward): {kind} done ({time.perf_counter() - t0:.0f}s)")
    write_text(paths.base / "curves.csv", curves_csv(curves))
    shutil.rmtree(paths.checkpoints, ignore_errors=True)  # every fit finished: nothing to resume


def _fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]
