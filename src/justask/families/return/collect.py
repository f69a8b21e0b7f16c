"""collect: roll out behaviour policies of mixed quality and store each named mix as a Minari dataset;
copy in each Minari dataset a user brings (``{minari: <path or id>}``) after checking it.

Each behaviour (controller + epsilon) is rolled out once, as many episodes as the largest mix
needs; a mix takes the first N episodes of each of its behaviours. Each behaviour is also rated on
``rating_episodes`` episodes of its own seeds (its skill rating, for skill-conditioned models).
Episode i of a behaviour is always reset with the same seed and uses its own random stream, so
files are byte-identical for the same params whatever the worker count.

A brought dataset is one behaviour, ``minari:<dataset>``, rated by its mean return (no episodes
outside it exist); its reference scores are its metadata's ``ref_min_score``/``ref_max_score``
when it records both, else the measured ones.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from justask.config import Params
from justask.datasets import write_dataset
from justask.external import check_minari, copy_minari
from justask.io import write_json
from justask.lunar.config import behaviour_name
from justask.lunar.env import from_config, spaces
from justask.lunar.jobs import Job, chunk_jobs, rollout_behaviours
from justask.paths import family_paths
from justask.seeding import stream_seeds


def collect(params: Params, root: Path = Path(".")) -> dict:
    """Run the collect stage for the ``return`` family; returns the summary it writes."""
    fam = params.family("return")
    cfg, env_cfg = fam.collect, fam.env
    paths = family_paths("return", root)
    t0 = time.perf_counter()
    # Brought datasets are checked before anything runs, so a refused one leaves every output as it was.
    imported = {name: check_minari(src.minari, f"families.return.collect.datasets.{name}.minari", env_cfg.id,
                                   spaces(env_cfg), f"continuous={env_cfg.continuous}", root)
                for name, src in cfg.imported.items()}

    # How many episodes each distinct behaviour must supply (the largest mix that uses it).
    needed: dict[tuple[str, float], int] = {}
    for mix in cfg.mixes.values():
        for b in mix:
            key = (b.controller, b.epsilon)
            needed[key] = max(needed.get(key, 0), b.episodes)

    jobs: dict[str, list[Job]] = {}
    for (controller, eps), n in sorted(needed.items()):
        name = behaviour_name(controller, eps)
        seeds = stream_seeds(params.seed, f"collect/{name}", n)
        jobs[name] = chunk_jobs(controller, eps, seeds, env_cfg, cfg.workers, cfg.envs_per_worker)
        # Its skill rating, the way a player's MMR is known before a game: its mean return on
        # rating episodes of its own seeds, none of which is in any dataset.
        rating = stream_seeds(params.seed, f"rating/{name}", cfg.rating_episodes)
        jobs[f"rating/{name}"] = chunk_jobs(controller, eps, rating, env_cfg, cfg.workers, cfg.envs_per_worker)
    # Reference scores for normalisation: expert and random on their own seeds.
    for ref in ("expert", "random"):
        seeds = stream_seeds(params.seed, f"reference/{ref}", cfg.reference_episodes)
        jobs[f"reference/{ref}"] = chunk_jobs(ref, 0.0, seeds, env_cfg, cfg.workers, cfg.envs_per_worker)

    pools = rollout_behaviours(jobs, cfg.workers, "collect: rolling out behaviour policies",
                               params.scale)
    ref_min = float(np.mean([e.ret for e in pools.pop("reference/random")]))
    ref_max = float(np.mean([e.ret for e in pools.pop("reference/expert")]))
    ratings = {name: float(np.mean([e.ret for e in pools.pop(f"rating/{name}")]))
               for name in [k for k in pools if not k.startswith("rating/")]}

    behaviours = {
        name: {"mean_return": float(np.mean([e.ret for e in eps])),
               "std_return": float(np.std([e.ret for e in eps])),
               "mean_length": float(np.mean([len(e) for e in eps])),
               "episodes": len(eps), "rating": ratings[name], "rating_episodes": cfg.rating_episodes}
        for name, eps in pools.items()
    }
    env = from_config(env_cfg)
    datasets = {}
    for ds_name, mix in cfg.mixes.items():
        episodes = [e for b in mix for e in pools[b.name][: b.episodes]]
        write_dataset(
            paths.dataset(ds_name), episodes, env,
            {
                "dataset_id": f"justask/lunarlander/{ds_name}-v0",
                "ref_min_score": ref_min,
                "ref_max_score": ref_max,
                "algorithm_name": "mixture of scripted controllers: "
                + ", ".join(f"{b.name} x{b.episodes}" for b in mix),
                "behaviours": json.dumps([b.name for b in mix for _ in range(b.episodes)]),
                "num_episodes_average_score": len(episodes),
            },
        )
        datasets[ds_name] = _returns([e.ret for e in episodes], [len(e) for e in episodes])
    env.close()
    for ds_name, ext in imported.items():
        name = f"minari:{ds_name}"
        refs = ext.ref_scores or (ref_min, ref_max)
        copy_minari(ext, paths.dataset(ds_name), {
            "ref_min_score": refs[0], "ref_max_score": refs[1],
            "behaviours": json.dumps([name] * len(ext.returns)),
            "source": str(ext.path), "source_sha256": ext.sha256,
        })
        stats = _returns(ext.returns, ext.lengths)
        behaviours[name] = {
            "mean_return": stats["mean_return"], "std_return": float(np.std(ext.returns)),
            "mean_length": float(np.mean(ext.lengths)), "episodes": stats["episodes"],
            "rating": stats["mean_return"], "rating_episodes": stats["episodes"]}
        datasets[ds_name] = stats | {
            "source": {"minari": cfg.imported[ds_name].minari, "path": str(ext.path), "sha256": ext.sha256},
            "ref_min_score": refs[0], "ref_max_score": refs[1],
            "ref_scores_from": "dataset metadata" if ext.ref_scores else "measured"}
    summary = {
        "env": env_cfg.model_dump(), "ref_min_score": ref_min, "ref_max_score": ref_max,
        "behaviours": behaviours, "datasets": datasets,
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }
    # Wall time varies run to run; keep it out of the hashed output.
    write_json(paths.collect_summary, {k: v for k, v in summary.items() if k != "wall_seconds"})
    return summary


def _returns(returns, lengths) -> dict:
    """A dataset's size and returns, as the summary records them."""
    returns = np.asarray(returns)
    return {"episodes": len(returns), "steps": int(np.sum(lengths)), "mean_return": float(returns.mean()),
            "max_return": float(returns.max()), "min_return": float(returns.min())}
