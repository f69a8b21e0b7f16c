"""collect (reward): a weak demonstrator's few demonstrations, its BC clone rolled out at graded
noise levels, and held-out trajectories for judging the learned reward later.

Outputs under ``artifacts/reward/collect/`` (Minari datasets unless noted):

* ``demos/``: the demonstrator (one of the return family's flawed, *consistent* controllers);
* ``clone/model.pt``: behavioural cloning of those demos (the BC baseline). It is fitted on
  observations and actions only; the demos' rewards are blanked before it sees them;
* ``noise/``: the clone with epsilon-random actions at each level of ``collect.noise``; the
  metadata key ``noise`` lists each episode's epsilon, the only label the ranking model gets;
* ``held_out/``: policies the ranking model never sees (``collect.held_out``);
* ``summary.json``: reference scores (random and expert on their own seeds) and the true mean
  return of every group, for reporting; no training stage reads a true return.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from justask.config import Params
from justask.data.atomic import write_json
from justask.data.episodes import write_dataset
from justask.data.relabel import blank_rewards, build_step_table
from justask.data.splits import split_episodes
from justask.envs.lunar import CloneJob, chunk_jobs, make_env, rollout_behaviours, run_clone_job
from justask.envs.runner import Episode, rollout_many
from justask.metrics import normalized_score
from justask.paths import family_paths
from justask.seeding import seed_everything, stream_seeds
from justask.train import Steps, data_spec, fit


def seed_streams(params: Params) -> dict[str, tuple[str, int]]:
    """Every group of episodes collect rolls out: name -> (seed stream, episode count)."""
    cfg = params.reward.collect
    streams = {"demos": (f"reward/demos/{cfg.demonstrator}", cfg.demos)}
    streams |= {f"noise/{e:g}": (f"reward/noise/{e:g}", cfg.episodes_per_noise) for e in cfg.noise}
    streams |= {f"held_out/{b.name}": (f"reward/held_out/{b.name}", b.episodes) for b in cfg.held_out}
    streams |= {f"reference/{r}": (f"reward/reference/{r}", cfg.reference_episodes) for r in ("expert", "random")}
    return streams


def collect_env_seeds(params: Params) -> set[int]:
    """Every env seed collect uses (evaluation must avoid them)."""
    return {s for stream, n in seed_streams(params).values() for s in stream_seeds(params.seed, stream, n)}


def clone_demonstrator(episodes: list[Episode], params: Params, path: Path) -> dict:
    """Fit BC on the demos (observations and actions; rewards blanked) and save it at ``path``."""
    from justask.models import save_checkpoint

    cfg, env = params.reward.collect.clone, params.reward.env
    blind = blank_rewards(episodes)
    train_eps, val_eps = split_episodes(len(blind), cfg.val_fraction, params.seed)
    split = np.zeros(len(blind), np.int8)
    split[val_eps] = 1
    table = build_step_table(blind, split)
    spec = data_spec(table, {"max_episode_steps": env.max_episode_steps, "ref_min_score": 0.0, "ref_max_score": 1.0})
    hp = {"hidden": cfg.hidden, "layers": cfg.layers, "dropout": 0.0, "lr": cfg.lr,
          "weight_decay": cfg.weight_decay, "batch_size": cfg.batch_size}
    device = torch.device("cpu")  # a few thousand rows: a GPU would only add transfer time
    seed_everything(params.seed)
    result = fit("bc", hp, spec, Steps(table, train_eps, device), Steps(table, val_eps, device),
                 steps=cfg.steps, eval_every=max(1, cfg.steps // 20), patience=5, seed=params.seed, device=device)
    meta = {"role": "BC clone of the demonstrator", "demonstrator": params.reward.collect.demonstrator,
            "demos": len(episodes), "best_val_loss": result.best_val_loss, "best_step": result.best_step}
    save_checkpoint(path, "bc", hp, spec, result.model, meta)
    return meta


def collect(params: Params, root: Path = Path(".")) -> dict:
    fam = params.reward
    cfg, env_cfg = fam.collect, fam.env
    paths = family_paths("reward", root)
    t0 = time.perf_counter()
    streams = seed_streams(params)
    seeds = {name: stream_seeds(params.seed, stream, n) for name, (stream, n) in streams.items()}

    # 1. Scripted rollouts: the demonstrator, held-out behaviours, reference scores.
    jobs = {"demos": chunk_jobs(cfg.demonstrator, 0.0, seeds["demos"], env_cfg, cfg.workers, cfg.envs_per_worker)}
    for b in cfg.held_out:
        jobs[f"held_out/{b.name}"] = chunk_jobs(b.controller, b.epsilon, seeds[f"held_out/{b.name}"], env_cfg,
                                             cfg.workers, cfg.envs_per_worker)
    for ref in ("expert", "random"):
        jobs[f"reference/{ref}"] = chunk_jobs(ref, 0.0, seeds[f"reference/{ref}"], env_cfg, cfg.workers,
                                           cfg.envs_per_worker)
    pools = rollout_behaviours(jobs, cfg.workers, "collect (reward): demonstrator, held-out and reference rollouts",
                               params.scale)
    ref_min = float(np.mean([e.ret for e in pools.pop("reference/random")]))
    ref_max = float(np.mean([e.ret for e in pools.pop("reference/expert")]))

    # 2. Clone the demonstrator, then roll the clone out at every noise level.
    ckpt = paths.collect / "clone" / "model.pt"
    clone_meta = clone_demonstrator(pools["demos"], params, ckpt)
    clone_jobs = {
        f"noise/{e:g}": [CloneJob(str(ckpt), j.epsilon, j.seeds, j.first_index, env_cfg, j.num_envs)
                         for j in chunk_jobs("clone", e, seeds[f"noise/{e:g}"], env_cfg, cfg.workers,
                                          cfg.envs_per_worker)]
        for e in cfg.noise}
    pools |= rollout_many(clone_jobs, cfg.workers, "collect (reward): the clone at graded noise", run=run_clone_job,
                          scale=params.scale)

    # 3. Datasets and summary.
    env = make_env(env_cfg.id, env_cfg.continuous, env_cfg.max_episode_steps)
    noise_eps = [(e, ep) for e in cfg.noise for ep in pools[f"noise/{e:g}"]]
    held = [(b.name, ep) for b in cfg.held_out for ep in pools[f"held_out/{b.name}"]]
    refs = {"ref_min_score": ref_min, "ref_max_score": ref_max}
    write_dataset(paths.dataset("demos"), pools["demos"], env, {
        "dataset_id": "justask/lunarlander/reward-demos-v0", **refs,
        "algorithm_name": f"scripted controller: {cfg.demonstrator}",
        "behaviours": json.dumps([cfg.demonstrator] * len(pools["demos"]))})
    write_dataset(paths.dataset("noise"), [ep for _, ep in noise_eps], env, {
        "dataset_id": "justask/lunarlander/reward-noise-v0", **refs,
        "algorithm_name": f"BC clone of {cfg.demonstrator} with epsilon-random actions",
        "behaviours": json.dumps([f"clone-eps{e:g}" for e, _ in noise_eps]),
        "noise": json.dumps([e for e, _ in noise_eps])})
    write_dataset(paths.dataset("held_out"), [ep for _, ep in held], env, {
        "dataset_id": "justask/lunarlander/reward-held-out-v0", **refs,
        "algorithm_name": "held-out scripted behaviours: " + ", ".join(b.name for b in cfg.held_out),
        "behaviours": json.dumps([name for name, _ in held])})
    env.close()

    def stats(eps: list[Episode]) -> dict:
        returns = np.array([e.ret for e in eps])
        return {"episodes": len(eps), "mean_return": float(returns.mean()),
                "score": float(normalized_score(returns.mean(), ref_min, ref_max)),
                "mean_length": float(np.mean([len(e) for e in eps]))}

    summary = {
        "env": env_cfg.model_dump(), **refs, "demonstrator": cfg.demonstrator, "clone": clone_meta,
        "groups": {name: stats(eps) for name, eps in sorted(pools.items())},
    }
    write_json(paths.collect_summary, summary)
    d = summary["groups"]["demos"]
    print(f"collect (reward): demonstrator {cfg.demonstrator} score {d['score']:.0f}; "
          + ", ".join(f"clone eps {e:g}: {summary['groups'][f'noise/{e:g}']['score']:.0f}" for e in cfg.noise)
          + f" ({time.perf_counter() - t0:.1f}s)")
    return summary
