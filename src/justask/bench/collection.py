"""Section a: collection throughput of each family vs the raw env rate.

The collection side calls the functions the collect stages call (``chunk_jobs`` +
``rollout_behaviours``; ``rollout_many`` with the reward family's ``run_clone_job``;
``episode_specs`` + ``collect_grid_episodes``) on the stages' own workloads: reward's whole
noise-injection run, ``LANGUAGE_SHARE`` of language's episodes, return's mix at one vector env's
worth of episodes per behaviour. The raw side steps the same env with random actions in a bare
loop, in the same number of spawn processes, for the same number of steps. Both are timed
wall-clock from the pool's start, so process start-up counts on both sides; the ratio is the
figure (target >= 0.8).

This module is imported by spawned workers: keep its top-level imports light (no torch).
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from justask.bench import Figure, Settings, median_run, timed

TARGET = 0.8
LANGUAGE_SHARE = 0.02  # of the stage's episodes per level and behaviour (its full run takes minutes)


# --------------------------------------------------------------------------- raw loops (workers)

def step_randomly(envs, num_envs: int, steps: int) -> int:
    """Step a vector env with random actions for at least ``steps`` env steps, resetting finished
    slots (the bare loop every raw rate is measured with); returns the env steps taken."""
    n = 0
    while n < steps:
        _, _, term, trunc, _ = envs.step(envs.action_space.sample())
        n += num_envs
        done = term | trunc
        if done.any():
            envs.reset(options={"reset_mask": done})
    return n


def raw_lunar(job: tuple[dict, int, int, int]) -> int:
    """Step a LunarLander vector env (as collection builds it) with random actions for ``steps``
    env steps; returns the env steps taken."""
    from justask.envs.lunar import make_vector_env

    env, num_envs, steps, seed = job
    envs = make_vector_env(num_envs, env["id"], env["continuous"], env["max_episode_steps"])
    envs.reset(seed=seed)
    envs.action_space.seed(seed)
    n = step_randomly(envs, num_envs, steps)
    envs.close()
    return n


def raw_grid(job: tuple[list[str], int, int]) -> int:
    """Step BabyAI envs (one per level, as collection makes them) with random actions for
    ``steps`` env steps in all, resetting each on termination; returns the steps taken."""
    from justask.envs.babyai import N_ACTIONS, make_grid_env, reset_quietly

    levels, steps, seed = job
    rng = np.random.default_rng(seed)
    n = 0
    for i, level in enumerate(levels):
        env = make_grid_env(level)
        reset_quietly(env, seed + i)
        share = steps // len(levels) + (i < steps % len(levels))
        for k in range(share):
            _, _, term, trunc, _ = env.step(int(rng.integers(N_ACTIONS)))
            if term or trunc:
                reset_quietly(env, seed + i + 1000 * (k + 1))
        n += share
        env.close()
    return n


def run_raw(fn, jobs: list, workers: int) -> int:
    """Run the raw loops in ``workers`` spawn processes (in-process for one worker)."""
    if workers <= 1:
        return sum(fn(j) for j in jobs)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        return sum(pool.map(fn, jobs))


def split_steps(total: int, workers: int) -> list[int]:
    return [total // workers + (i < total % workers) for i in range(workers)]


# --------------------------------------------------------------------------- real collection paths

def _scaled_env(settings: Settings, env):
    return env.model_copy(update={"max_episode_steps": min(env.max_episode_steps, 100)}) if settings.quick else env


def return_collection(settings: Settings):
    """(collect() -> env steps, raw(steps) -> steps, what) for the return family's behaviour mix."""
    from justask.envs.lunar import chunk_jobs, rollout_behaviours
    from justask.seeding import stream_seeds

    cfg = settings.params.return_.collect
    env = _scaled_env(settings, settings.params.return_.env)
    behaviours = sorted({(b.controller, b.epsilon) for mix in cfg.datasets.values() for b in mix})
    per = 2 if settings.quick else cfg.envs_per_worker
    if settings.quick:
        behaviours = behaviours[:2]
    num_envs = min(cfg.envs_per_worker, per)

    def collect() -> int:
        jobs = {f"{c}-{e:g}": chunk_jobs(c, e, stream_seeds(settings.params.seed, f"bench/{c}-{e:g}", per), env,
                                         settings.workers, num_envs) for c, e in behaviours}
        pools = rollout_behaviours(jobs, settings.workers, "bench: return collection")
        return sum(len(e) for eps in pools.values() for e in eps)

    def raw(steps: int) -> int:
        return run_raw(raw_lunar, [(env.model_dump(), num_envs, s, i) for i, s in
                                   enumerate(split_steps(steps, settings.workers))], settings.workers)

    what = f"{len(behaviours)} behaviours x {per} episodes, {num_envs} envs per worker"
    return collect, raw, what


def reward_collection(settings: Settings, folder: Path):
    """The reward family's noise-injection rollouts of a BC clone (a freshly initialised clone of
    the configured size: speed, not quality)."""
    import torch

    from justask.envs.lunar import chunk_jobs
    from justask.envs.runner import rollout_many
    from justask.models import Spec, build_model, save_checkpoint
    from justask.seeding import stream_seeds
    from justask.stages.reward.collect import CloneJob, run_clone_job

    cfg = settings.params.reward.collect
    env = _scaled_env(settings, settings.params.reward.env)
    spec = Spec(obs_dim=8, act_dim=4, discrete=True, max_timestep=env.max_episode_steps,
                obs_mean=(0.0,) * 8, obs_std=(1.0,) * 8, return_scale=1.0)
    hp = {"hidden": cfg.clone.hidden, "layers": cfg.clone.layers, "dropout": 0.0, "lr": cfg.clone.lr,
          "weight_decay": cfg.clone.weight_decay, "batch_size": cfg.clone.batch_size}
    torch.manual_seed(0)
    ckpt = folder / "clone.pt"
    save_checkpoint(ckpt, "bc", hp, spec, build_model("bc", hp, spec), {"role": "bench: untrained clone"})
    # The stage's whole noise-injection workload (every noise level x episodes_per_noise, chunked
    # as the stage chunks it) in one pool, as the stage runs it: a smaller share would weigh the
    # workers' start-up (torch, the model) more than the stage does.
    noise = cfg.noise[:2] if settings.quick else cfg.noise
    per = 2 if settings.quick else cfg.episodes_per_noise
    num_envs = min(cfg.envs_per_worker, per)

    def collect() -> int:
        jobs = {f"noise/{e:g}": [CloneJob(str(ckpt), j.epsilon, j.seeds, j.first_index, env, j.num_envs)
                                 for j in chunk_jobs("clone", e, stream_seeds(settings.params.seed, f"bench/noise{e:g}",
                                                                              per), env, settings.workers, num_envs)]
                for e in noise}
        pools = rollout_many(jobs, settings.workers, "bench: reward collection", run=run_clone_job)
        return sum(len(e) for eps in pools.values() for e in eps)

    def raw(steps: int) -> int:
        return run_raw(raw_lunar, [(env.model_dump(), num_envs, s, i) for i, s in
                                   enumerate(split_steps(steps, settings.workers))], settings.workers)

    what = (f"the stage's noise rollouts: untrained clone ({cfg.clone.hidden}x{cfg.clone.layers}) at {len(noise)} "
            f"noise levels x {per} episodes")
    return collect, raw, what


def language_collection(settings: Settings):
    """The language family's collection on every configured level: ``LANGUAGE_SHARE`` of each of
    the stage's behaviours (the mix and the demos' bot), so in the stage's proportions, and like
    the stage one ``collect_grid_episodes`` call per dataset."""
    from justask.envs.babyai import GridBehaviour, collect_grid_episodes
    from justask.stages.language.collect import episode_specs

    cfg = settings.params.language.collect
    levels = cfg.levels[:1] if settings.quick else cfg.levels
    share = (lambda n: 2) if settings.quick else (lambda n: max(1, round(n * LANGUAGE_SHARE)))  # noqa: E731
    datasets = [
        [s for level in levels for b in cfg.mix
         for s in episode_specs(settings.params.seed, level, GridBehaviour(b.behaviour, b.epsilon), share(b.episodes),
                                stream="bench", max_steps=b.max_steps)],
        [s for level in levels
         for s in episode_specs(settings.params.seed, level, GridBehaviour("bot"), share(cfg.demos), "bench-demos")],
    ]
    per = {b.behaviour: share(b.episodes) for b in cfg.mix} | {"bot (demos)": share(cfg.demos)}

    def collect() -> int:
        return sum(len(e) for specs in datasets for e in collect_grid_episodes(specs, settings.workers))

    def raw(steps: int) -> int:
        return run_raw(raw_grid, [(list(levels), s, i) for i, s in enumerate(split_steps(steps, settings.workers))],
                       settings.workers)

    what = f"{len(levels)} levels x " + ", ".join(f"{n} {b}" for b, n in per.items()) + " episodes"
    return collect, raw, what


def measure(collect, raw, repeats: int) -> dict:
    """Median collection and raw rates (steps/s) over ``repeats`` runs after one warm-up each."""
    steps = {}

    def collect_rate() -> float:
        seconds, n = timed(collect)
        steps["collection"] = n
        return n / seconds

    c_rate, c_all = median_run(collect_rate, repeats)

    def raw_rate() -> float:
        seconds, n = timed(lambda: raw(steps["collection"]))
        return n / seconds

    r_rate, r_all = median_run(raw_rate, repeats)
    return {"env_steps": steps["collection"], "collection_steps_per_s": c_rate, "raw_steps_per_s": r_rate,
            "ratio": c_rate / r_rate, "collection_runs": c_all, "raw_runs": r_all}


CASES = {"return": "return (LunarLander, behaviour mix)", "reward": "reward (LunarLander, BC clone + noise)",
         "language": "language (BabyAI, bot mix)"}


def make_case(key: str, settings: Settings, folder: Path):
    """(collect, raw, description) of family ``key``."""
    if key == "return":
        return return_collection(settings)
    if key == "reward":
        return reward_collection(settings, folder)
    return language_collection(settings)


def run(settings: Settings) -> tuple[list[Figure], dict]:
    figures, detail = [], {}
    with tempfile.TemporaryDirectory(prefix="justask-bench-") as tmp:
        for key, name in CASES.items():
            if key != "return" and getattr(settings.params, key) is None:
                continue  # the family is not configured
            collect, raw, what = make_case(key, settings, Path(tmp))
            settings.log(f"bench a: {name}: {what}")
            r = measure(collect, raw, settings.repeats)
            detail[name] = {"workload": what, "workers": settings.workers, **r}
            figures.append(Figure("a", f"collection {name}: x raw env rate", r["ratio"], "x", TARGET,
                                  note=f"{r['collection_steps_per_s']:.0f} vs {r['raw_steps_per_s']:.0f} steps/s",
                                  profile=f"collection-{key}"))
            figures.append(Figure("a", f"collection {name}: env steps/s", r["collection_steps_per_s"], "steps/s"))
    return figures, detail
