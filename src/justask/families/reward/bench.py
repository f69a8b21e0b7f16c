"""The reward family's workloads for ``justask bench``: the clone's noise-injection rollouts, and
the training of its clone, ranking nets and policies (see :mod:`justask.bench`)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from justask.bench.collection import CollectionCase, raw_lunar_steps
from justask.bench.training import TrainingCase, lunar_spec, lunar_table, policy_cases

RECORDED_DEFAULT_SECONDS = 3 * 60 + 6  # the recorded default run (README, "Reward results")


def _env(settings):
    env = settings.params.family("reward").env
    return env.model_copy(update={"max_episode_steps": min(env.max_episode_steps, 100)}) if settings.quick else env


def collection_cases(settings, folder: Path) -> list[CollectionCase]:
    """The stage's whole noise-injection run (every noise level x episodes_per_noise, chunked as the
    stage chunks it) with a freshly initialised clone of the configured size (speed, not quality),
    in one pool, as the stage runs it: a smaller share would weigh the workers' start-up (torch, the
    model) more than the stage does."""
    import torch

    from justask.lunar.jobs import chunk_jobs
    from justask.models import build_model
    from justask.rollout import rollout_many
    from justask.seeding import stream_seeds
    from justask.steps import Spec
    from justask.training.checkpoints import save_checkpoint

    from .clone import CloneJob, run_clone_job

    cfg = settings.params.family("reward").collect
    env, workers = _env(settings), settings.workers_for(cfg.workers)
    spec = Spec(obs_dim=8, act_dim=4, discrete=True, max_timestep=env.max_episode_steps,
                obs_mean=(0.0,) * 8, obs_std=(1.0,) * 8, return_scale=1.0)
    hp = _clone_hp(cfg.clone)
    torch.manual_seed(0)
    ckpt = folder / "clone.pt"
    save_checkpoint(ckpt, "bc", hp, spec, build_model("bc", hp, spec), {"role": "bench: untrained clone"})
    noise = cfg.noise[:2] if settings.quick else cfg.noise
    per = 2 if settings.quick else cfg.episodes_per_noise
    num_envs = min(cfg.envs_per_worker, per)

    def collect() -> int:
        jobs = {f"noise/{e:g}": [CloneJob(str(ckpt), j.epsilon, j.seeds, j.first_index, env, j.num_envs)
                                 for j in chunk_jobs("clone", e, stream_seeds(settings.params.seed, f"bench/noise{e:g}",
                                                                              per), env, workers, num_envs)]
                for e in noise}
        pools = rollout_many(jobs, workers, "bench: reward collection", run=run_clone_job)
        return sum(len(e) for eps in pools.values() for e in eps)

    what = (f"the stage's noise rollouts: untrained clone ({cfg.clone.hidden}x{cfg.clone.layers}) at {len(noise)} "
            f"noise levels x {per} episodes")
    return [CollectionCase("reward", "reward (LunarLander, BC clone + noise)", collect,
                           raw_lunar_steps(env, num_envs, workers), what, workers)]


def _clone_hp(clone) -> dict:
    return {"hidden": clone.hidden, "layers": clone.layers, "dropout": 0.0, "lr": clone.lr,
            "weight_decay": clone.weight_decay, "batch_size": clone.batch_size}


def training_cases(settings, device, val_rows: int = 64) -> list[TrainingCase]:
    from justask.models import candidate
    from justask.steps import Steps

    from .pairs import RankingTable, SnippetPairs, make_pairs
    from .ranking import ranking_candidate, ranking_spec

    fam, quick, seed = settings.params.family("reward"), settings.quick, settings.params.seed
    env = _env(settings)
    table = lunar_table(env, quick, seed)
    spec = lunar_spec(table, env)
    out = policy_cases("reward", fam.train.models, env, quick, seed, device, val_rows)
    out.append(TrainingCase("reward/clone (bc)", _clone_hp(fam.collect.clone), partial(candidate, "bc", spec),
                            Steps(table, np.flatnonzero(table.split == 0), device),
                            Steps(table, np.flatnonzero(table.split == 1), device, max_rows=val_rows), 1,
                            cpu_only=True))  # the collect stage fits the clone on CPU
    # every 5th episode validates: cycle noise levels across those so both splits hold several
    i = np.arange(table.n_episodes)
    noise = np.asarray(fam.collect.noise, float)[(i + i // 5) % len(fam.collect.noise)]
    rtable = RankingTable(observations=table.observations, starts=table.starts, noise=noise, split=table.split)
    snippet = min(fam.relabel.snippet, 20) if quick else fam.relabel.snippet
    rel = fam.relabel
    pairs = make_pairs(rtable, np.flatnonzero(table.split == 0), 256 if quick else rel.pairs, snippet, seed,
                       margin=rel.noise_margin, whole=rel.whole_episodes)
    vpairs = make_pairs(rtable, np.flatnonzero(table.split == 1), 32, snippet, seed + 1, margin=rel.noise_margin,
                        whole=rel.whole_episodes)
    out.append(TrainingCase("reward/ranking", fam.train.ranking.hp,
                            partial(ranking_candidate, ranking_spec(rtable, env.max_episode_steps)),
                            SnippetPairs(rtable, pairs, device), SnippetPairs(rtable, vpairs, device),
                            int(pairs.count.sum(1).max())))
    return out
