"""Improvement without RL: rounds of generalize-then-infer (the essay's "improve from experience").

Round r asks each of round r-1's return-conditioned policies (one per kind and training seed) for
more learned return than the data hold (``train.rounds.ask``, a quantile target above 1, see
:func:`.asks.quantile_target`), rolls it out with the collection's noise schedule
(``collect.noise``, ``rounds.episodes_per_noise`` episodes per level on env seeds of their own),
adds those episodes to the data, their env rewards blanked and their conditions computed with
the learned reward (:func:`.ranking.learned_table`), and refits every policy from scratch on the
enlarged data with round 0's hyper-parameters. The learned reward is the one the ranking learned
and stays fixed. The env's reward never reaches training: the rollouts' true returns are only
logged, for the report.

Round r's data are ``train/round<r>/learned/``, its policies ``train/round<r>/<kind>/seed<k>/``.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np

from justask.config import Params
from justask.datasets import split_mask
from justask.lunar.jobs import chunk_jobs
from justask.paths import FamilyPaths, family_paths
from justask.policies import fit_policy
from justask.rollout import rollout_many
from justask.seeding import stream_seeds
from justask.steps import StepTable, blank_rewards, build_step_table, data_spec
from justask.training.checkpoints import trained_on

from .asks import learned_folder, policy_folder, quantile_target
from .clone import CloneJob, run_clone_job
from .ranking import LearnedReward, countdown_fn, learned_table
from .streams import round_stream


def append_episodes(table: StepTable, other: StepTable) -> StepTable:
    """``table``'s episodes followed by ``other``'s."""
    n, rows = table.n_episodes, table.starts[-1]
    return StepTable(
        observations=np.concatenate([table.observations, other.observations]),
        actions=np.concatenate([table.actions, other.actions]), rtg=np.concatenate([table.rtg, other.rtg]),
        timesteps=np.concatenate([table.timesteps, other.timesteps]),
        episode=np.concatenate([table.episode, other.episode + n]),
        starts=np.concatenate([table.starts, other.starts[1:] + rows]),
        returns=np.concatenate([table.returns, other.returns]), split=np.concatenate([table.split, other.split]))


def learned_meta(meta: dict, table: StepTable) -> dict:
    lo, hi = float(table.returns.min()), float(table.returns.max())
    return {**meta, "rtg": "learned reward (ensemble)", "ref_min_score": lo, "ref_max_score": hi,
            "learned_return_min": lo, "learned_return_max": hi}


def round_episodes(params: Params, root: Path, r: int, target: float) -> list:
    """Round ``r``'s rollouts of every round ``r-1`` policy asked for learned return ``target``,
    at every noise level, in a fixed order (kind, seed, noise)."""
    fam = params.family("reward")
    cfg, paths = fam.collect, family_paths("reward", root)
    reward = partial(countdown_fn, root.absolute())
    jobs = {}
    for kind in fam.train.models:
        for s in fam.train.seeds:
            ckpt = str((paths.run_dir(policy_folder(r - 1), kind, s) / "model.pt").absolute())
            for e in cfg.noise:
                seeds = stream_seeds(params.seed, round_stream(r, kind, s, e), fam.train.rounds.episodes_per_noise)
                jobs[f"{kind}/seed{s}/noise/{e:g}"] = [
                    CloneJob(ckpt, e, j.seeds, j.first_index, fam.env, j.num_envs, targets=(target,) * len(j.seeds),
                             reward=reward)
                    for j in chunk_jobs("clone", e, seeds, fam.env, cfg.workers, cfg.envs_per_worker)]
    pools = rollout_many(jobs, cfg.workers, f"train (reward): round {r}, asking for learned return {target:.0f}",
                         run=run_clone_job, scale=params.scale)
    return [ep for key in jobs for ep in pools[key]]


def improve(mlflow, params: Params, paths: FamilyPaths, data: StepTable, meta: dict, hps: dict[str, dict],
            reward: LearnedReward, device, t0: float) -> tuple[list[dict], list[dict]]:
    """Run ``train.rounds.rounds`` rounds from the round-0 ``data`` (learned returns) and policies;
    returns one summary per round and the training curves."""
    fam = params.family("reward")
    cfg, rc = fam.train, fam.train.rounds
    summaries, curves = [], []
    for r in range(1, rc.rounds + 1):
        target = quantile_target(rc.ask, data.returns)
        episodes = round_episodes(params, paths.root, r, target)
        split = split_mask(len(episodes), fam.relabel.val_fraction, params.seed + r)
        new = learned_table(build_step_table(blank_rewards(episodes), split), reward)
        data = append_episodes(data, new)
        meta = learned_meta(meta, data)
        data.save(paths.train / learned_folder(r), meta)
        summary = {"round": r, "asked_learned_return": target, "episodes_added": len(episodes),
                   "episodes": data.n_episodes, "added_learned_return_mean": float(new.returns.mean()),
                   "added_learned_return_max": float(new.returns.max()),
                   # the env's return of the new episodes: reported, never trained on
                   "added_true_return_mean": float(np.mean([e.ret for e in episodes]))}
        with mlflow.start_run(run_name=f"reward-round{r}"):
            mlflow.set_tags({"family": "reward", "stage": "train", "round": str(r), "profile": params.profile})
            mlflow.log_metrics({k: v for k, v in summary.items() if k != "round"})
        spec = data_spec(data, meta)
        for kind, mcfg in cfg.models.items():
            fixed = mcfg.model_copy(update={**hps[kind], "tune": False})
            _, rows = fit_policy(mlflow, paths=paths, dataset=f"round{r}", folder=policy_folder(r), kind=kind,
                                 mcfg=fixed, table=data, spec=spec, cfg=cfg, seed=params.seed, device=device,
                                 profile=params.profile, register_as=None,
                                 source=trained_on(params, "reward", paths.train / learned_folder(r)))
            curves += rows
        summaries.append(summary)
        print(f"train (reward): round {r}: asked for learned return {target:.0f}, added {len(episodes)} episodes "
              f"(learned return mean {summary['added_learned_return_mean']:.0f}); refitted "
              f"({time.perf_counter() - t0:.0f}s)")
    return summaries, curves
