"""train (reward): learn a reward by ranking, relabel the noise-injection data with it, then fit
return-conditioned policies on the learned returns. The env's reward is read only by the
oracle-filter reference (step 5), never by the ranking, the policies or the rounds.

1. **Ranking.** ``train.ranking.ensemble`` reward nets (a potential Phi(s) or a reward r(s) per
   state, ``train.ranking.form``; :mod:`.ranking`), each fitted with the T-REX loss on the
   ranked pairs by the one training loop (optionally Optuna-tuned first), each on its own share of
   the pairs with ``distinct_pairs`` (D-REX: members see different pairs); saved as
   ``ranking/member<k>/model.pt``, with each member's output scale and the validation pair
   accuracy in ``ranking/ensemble.json``.
2. **Learned returns.** Every step of the noise-injection data gets the ensemble's reward;
   episode returns and each step's condition follow (the return-to-go, or for a potential the
   episode's learned return, held; ``learned/``, a step table like the return family's).
3. **Policies.** Each model of ``train.models`` (RvS, DT) is fitted on the learned returns, per
   seed, exactly as in the return family (``policies/<model>/seed<k>/model.pt``), and registered
   in the MLflow model registry as ``justask-reward-<model>``.
4. **Improvement rounds** (``train.rounds``, :mod:`.rounds`): each round asks the last policies for
   more learned return than the data hold, rolls them out with the noise schedule, adds the
   episodes (relabeled with the learned reward) and refits (``round<r>/``; ``rounds.json``).
5. **Oracle filter** (``train.oracle``): %BC on the noise data's top episodes by *true* return
   (``oracle/pct_bc/seed<k>/``), a bound on what the data allow without extrapolation.
6. **PPO on the learned reward** (``train.ppo``, :mod:`.ppo`): D-REX's own route, per seed
   (``ppo/seed<k>/``), fanned out over ``scale.workers``; its env steps are the RL route's cost.
"""

from __future__ import annotations

import shutil
import time
from functools import partial
from pathlib import Path

import numpy as np

from justask.config import Params
from justask.device import pick_device
from justask.errors import StageFailed
from justask.executors import run_all
from justask.io import write_json, write_text
from justask.paths import family_paths
from justask.policies import fit_policy
from justask.seeding import seed_everything, stream_seeds
from justask.steps import StepTable, data_spec
from justask.tracking import setup_mlflow
from justask.training.checkpoints import file_sha256, save_checkpoint, trained_on
from justask.training.loop import Loop, fit
from justask.training.resume import Resume
from justask.training.runs import curves_csv, log_curve
from justask.training.tune import tune

from .asks import ppo_provenance, ranking_provenance
from .pairs import RankingTable, SnippetPairs, load_pairs, member_shard
from .ppo import PPOJob, run_ppo_job
from .ranking import LearnedReward, learned_table, pair_accuracy, ranking_candidate, ranking_dir, ranking_spec
from .rounds import improve, learned_meta
from .streams import ppo_stream


def train(params: Params, root: Path = Path(".")) -> None:
    fam = params.family("reward")
    cfg = fam.train
    paths = family_paths("reward", root)
    device = pick_device(cfg.device)
    seed_everything(params.seed)
    mlflow = setup_mlflow(params.tracking, root)
    t0 = time.perf_counter()
    try:
        steps, steps_meta = StepTable.load(paths.relabeled("steps"), "dvc repro relabel@reward")
    except FileNotFoundError as e:
        raise StageFailed(str(e)) from None

    # 1. The ranking ensemble.
    reward, curves = fit_ranking(params, root, device, mlflow)
    print(f"train (reward): ranking ensemble of {len(reward.members)} ({time.perf_counter() - t0:.0f}s)")

    # 2. Learned returns on the noise-injection data.
    learned = learned_table(steps, reward)
    meta = learned_meta(steps_meta, learned)
    learned.save(paths.train / "learned", meta)

    # 3. Return-conditioned policies on the learned returns.
    pspec = data_spec(learned, meta)
    hps = {}
    for kind, mcfg in cfg.models.items():
        hps[kind], rows = fit_policy(mlflow, paths=paths, dataset="learned", folder="policies", kind=kind, mcfg=mcfg,
                                     table=learned, spec=pspec, cfg=cfg, seed=params.seed, device=device,
                                     profile=params.profile, register_as=f"justask-reward-{kind}",
                                     source=trained_on(params, "reward", paths.train / "learned"))
        write_json(paths.train / "policies" / kind / "hparams.json",
                   {"model": kind, "hp": hps[kind], "steps": mcfg.steps})
        curves += rows
        print(f"train (reward): {kind} done ({time.perf_counter() - t0:.0f}s)")

    # 4. Improvement rounds: ask for more, roll out, relabel with the learned reward, refit.
    rounds, rows = improve(mlflow, params, paths, learned, meta, hps, reward, device, t0)
    write_json(paths.train / "rounds.json", {"ask": cfg.rounds.ask, "rounds": rounds})
    curves += rows

    # 5. The oracle-filter reference: the one model here that reads the env's reward (relabel's
    # oracle table), the best the noise data give without extrapolation; never a candidate.
    if cfg.oracle is not None:
        try:
            oracle, oracle_meta = StepTable.load(paths.relabeled("oracle"), "dvc repro relabel@reward")
        except FileNotFoundError as e:
            raise StageFailed(str(e)) from None
        _, rows = fit_policy(mlflow, paths=paths, dataset="oracle", folder="oracle", kind="pct_bc", mcfg=cfg.oracle,
                             table=oracle, spec=data_spec(oracle, oracle_meta), cfg=cfg, seed=params.seed,
                             device=device, profile=params.profile, register_as=None,
                             source=trained_on(params, "reward", paths.relabeled("oracle")))
        curves += rows
        print(f"train (reward): oracle filter done ({time.perf_counter() - t0:.0f}s)")
    # 6. The RL reference: PPO on the learned reward (the env's reward never reaches it).
    if cfg.ppo is not None:
        ppo_reference(mlflow, params, paths)
        print(f"train (reward): PPO on the learned reward done ({time.perf_counter() - t0:.0f}s)")
    write_text(paths.base / "curves.csv", curves_csv(curves))
    shutil.rmtree(paths.checkpoints, ignore_errors=True)  # every fit finished: nothing to resume


def ppo_reference(mlflow, params: Params, paths) -> list[dict]:
    """One PPO run per training seed (``train/ppo/seed<k>/``), each an MLflow run with its curve;
    ``ppo/runs.json`` lists what each cost and reached."""
    cfg = params.family("reward").train.ppo
    fam = params.family("reward")
    prov = ppo_provenance(params, paths)
    jobs = [PPOJob(paths.root.absolute(), (paths.train / "ppo" / f"seed{s}").absolute(), fam.env, cfg.hp,
                   cfg.timesteps, params.seed + s, tuple(stream_seeds(params.seed, ppo_stream(s), cfg.n_envs)), prov)
            for s in fam.train.seeds]
    runs = run_all(run_ppo_job, jobs, params.scale.workers, params.scale)
    for s, run in zip(fam.train.seeds, runs, strict=True):
        with mlflow.start_run(run_name=f"reward-ppo-seed{s}"):
            mlflow.set_tags({"family": "reward", "model": "ppo", "reads_env_reward": "no", "profile": params.profile})
            mlflow.log_params({**cfg.hp, "timesteps": cfg.timesteps, "n_envs": cfg.n_envs, "seed": s})
            for row in run["curve"]:
                mlflow.log_metrics({"learned_return_mean": row["learned_return_mean"],
                                    "true_return_mean": row["true_return_mean"]}, step=row["env_steps"])
            mlflow.log_metric("env_steps", run["env_steps"])
    summary = [{"seed": s, **{k: v for k, v in run.items() if k not in ("curve", "seconds")}}
               for s, run in zip(fam.train.seeds, runs, strict=True)]
    write_json(paths.train / "ppo" / "runs.json", {"timesteps": cfg.timesteps, "runs": summary})
    return summary


def fit_ranking(params: Params, root: Path, device, mlflow) -> tuple[LearnedReward, list[dict]]:
    """Fit (after tuning, when asked) the ranking ensemble on the relabeled pairs, save it under
    ``train/ranking/``; returns it as a reward function, and the training curves."""
    fam = params.family("reward")
    cfg, paths = fam.train, family_paths("reward", root)
    try:
        table, _ = RankingTable.load(paths.relabeled("ranking"))
        pairs_train, _ = load_pairs(paths.relabeled("pairs_train"))
        pairs_val, _ = load_pairs(paths.relabeled("pairs_val"))
    except FileNotFoundError as e:
        raise StageFailed(str(e)) from None
    curves: list[dict] = []
    rcfg = cfg.ranking
    spec = ranking_spec(table, fam.env.max_episode_steps)
    train_pairs = SnippetPairs(table, pairs_train, device)  # for tuning; members may see shards of it
    val_pairs = SnippetPairs(table, pairs_val, device, max_rows=cfg.val_rows)
    members, scales = [], []
    prov = ranking_provenance(params, paths)
    with mlflow.start_run(run_name="reward-ranking"):
        mlflow.set_tags({"family": "reward", "model": "ranking", "profile": params.profile})
        hp = rcfg.hp
        if rcfg.tune and cfg.tune.n_trials > 0:
            hp, _ = tune("reward-ranking", hp, partial(ranking_candidate, spec), train_pairs, val_pairs, cfg=cfg,
                         steps=rcfg.steps, seed=params.seed, device=device, mlflow=mlflow,
                         storage_path=root / "artifacts" / "optuna" / "reward-ranking")
        train_rows = np.repeat(table.split, table.lengths) == 0
        for k in range(rcfg.ensemble):
            seed = params.seed + k
            with mlflow.start_run(run_name=f"reward-ranking-member{k}", nested=True):
                try:
                    member_pairs = (SnippetPairs(table, member_shard(pairs_train, k, rcfg.ensemble), device)
                                    if rcfg.distinct_pairs else train_pairs)
                except ValueError as e:
                    raise StageFailed(f"reward.train.ranking: {e}") from None
                mlflow.log_params({**hp, "member": k, "seed": seed, "steps": rcfg.steps, "pairs": len(member_pairs)})
                build, optimisation = ranking_candidate(spec, hp, rcfg.steps)
                result = fit(build, member_pairs, val_pairs, optimisation,
                             Loop(cfg.eval_every, cfg.patience, seed, device, cfg.val_batch), log=log_curve(mlflow),
                             resume=Resume(paths.resume_file("ranking", f"member{k}", seed),
                                           {"kind": "reward", "hp": hp, "spec": repr(spec)}))
                if not np.isfinite(result.best_val_loss):
                    raise StageFailed(f"reward/ranking/member{k}: validation loss is not finite; "
                                      "lower families.reward.train.ranking.lr")
                scale = float(LearnedReward([result.model], [1.0], device).per_member(
                    table.observations[train_rows]).std())
                accuracy = pair_accuracy([result.model], [scale], val_pairs)
                mlflow.log_metrics({"best_val_loss": result.best_val_loss, "val_pair_accuracy": accuracy})
                ckpt = ranking_dir(root) / f"member{k}" / "model.pt"
                save_checkpoint(ckpt, "reward", hp, spec, result.model,
                                {"member": k, "seed": seed, "best_val_loss": result.best_val_loss,
                                 "best_step": result.best_step, "val_pair_accuracy": accuracy}, prov)
                mlflow.set_tags({"checkpoint": str(ckpt), "checkpoint_sha256": file_sha256(ckpt)})
                members.append(result.model)
                scales.append(max(scale, 1e-8))
                curves += [{"dataset": "ranking", "model": f"member{k}", "seed": seed, **p} for p in result.curve]
        accuracy = pair_accuracy(members, scales, val_pairs)
        mlflow.log_metric("ensemble_val_pair_accuracy", accuracy)
    write_json(ranking_dir(root) / "ensemble.json", {"members": len(members), "scales": scales, "hp": hp,
                                                     "val_pair_accuracy": accuracy})
    print(f"train (reward): validation pair accuracy of the ensemble {accuracy:.3f}")
    return LearnedReward(members, scales, device), curves
