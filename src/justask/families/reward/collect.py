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

from justask.config import Params
from justask.datasets import write_dataset
from justask.io import write_json
from justask.lunar.env import from_config
from justask.lunar.jobs import chunk_jobs, rollout_behaviours
from justask.metrics import normalized_score
from justask.paths import family_paths
from justask.rollout import Episode, rollout_many
from justask.seeding import stream_seeds

from .asks import clone_provenance
from .clone import CloneJob, clone_demonstrator, run_clone_job
from .streams import seed_streams


def collect(params: Params, root: Path = Path(".")) -> dict:
    fam = params.family("reward")
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

    # 2. Clone the demonstrator (its provenance names the demos dataset, so that is written
    #    first), then roll the clone out at every noise level.
    env = from_config(env_cfg)
    refs = {"ref_min_score": ref_min, "ref_max_score": ref_max}
    write_dataset(paths.dataset("demos"), pools["demos"], env, {
        "dataset_id": "justask/lunarlander/reward-demos-v0", **refs,
        "algorithm_name": f"scripted controller: {cfg.demonstrator}",
        "behaviours": json.dumps([cfg.demonstrator] * len(pools["demos"]))})
    ckpt = paths.collect / "clone" / "model.pt"
    clone_meta = clone_demonstrator(pools["demos"], cfg.clone, env_cfg, params.seed, ckpt,
                                    {"role": "BC clone of the demonstrator", "demonstrator": cfg.demonstrator,
                                     "demos": len(pools["demos"])}, clone_provenance(params, paths))
    clone_jobs = {
        f"noise/{e:g}": [CloneJob(str(ckpt), j.epsilon, j.seeds, j.first_index, env_cfg, j.num_envs)
                         for j in chunk_jobs("clone", e, seeds[f"noise/{e:g}"], env_cfg, cfg.workers,
                                          cfg.envs_per_worker)]
        for e in cfg.noise}
    pools |= rollout_many(clone_jobs, cfg.workers, "collect (reward): the clone at graded noise", run=run_clone_job,
                          scale=params.scale)

    # 3. The other datasets, and the summary.
    noise_eps = [(e, ep) for e in cfg.noise for ep in pools[f"noise/{e:g}"]]
    held = [(b.name, ep) for b in cfg.held_out for ep in pools[f"held_out/{b.name}"]]
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
