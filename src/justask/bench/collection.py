"""Section a: collection throughput of each family vs the raw env rate.

Each configured family that has a ``bench.py`` offers :class:`CollectionCase` s: its real
collection code on (a share of) the stage's own workload, and the same env stepped with random
actions in a bare loop, in the same number of spawn processes, for the same number of steps. Both
are timed wall-clock from the pool's start, so process start-up counts on both sides; the ratio is
the figure (target >= 0.8).

This module is imported by spawned workers: keep its top-level imports light (no torch).
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from justask.bench import Figure, Settings, family_benches, median_run, timed

TARGET = 0.8


@dataclass
class CollectionCase:
    """One family's collection workload: ``collect()`` runs it and returns the env steps taken;
    ``raw(steps)`` steps the same env with random actions as often and returns the steps taken."""

    family: str
    name: str  # e.g. "return (LunarLander, behaviour mix)"
    collect: Callable[[], int]
    raw: Callable[[int], int]
    what: str  # the workload, in words
    workers: int


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
    env steps; returns the env steps taken. ``job``: (env config dict, envs, steps, seed)."""
    from justask.lunar.env import make_vector_env

    env, num_envs, steps, seed = job
    envs = make_vector_env(num_envs, env["id"], env["continuous"], env["max_episode_steps"])
    envs.reset(seed=seed)
    envs.action_space.seed(seed)
    n = step_randomly(envs, num_envs, steps)
    envs.close()
    return n


def raw_lunar_steps(env, num_envs: int, workers: int) -> Callable[[int], int]:
    """``raw(steps)`` of a LunarLander collection: :func:`raw_lunar` in ``workers`` processes."""
    return lambda steps: run_raw(raw_lunar, [(env.model_dump(), num_envs, s, i) for i, s in
                                             enumerate(split_steps(steps, workers))], workers)


def run_raw(fn, jobs: list, workers: int) -> int:
    """Run the raw loops in ``workers`` spawn processes (in-process for one worker)."""
    if workers <= 1:
        return sum(fn(j) for j in jobs)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        return sum(pool.map(fn, jobs))


def split_steps(total: int, workers: int) -> list[int]:
    return [total // workers + (i < total % workers) for i in range(workers)]


def measure(case: CollectionCase, repeats: int) -> dict:
    """Median collection and raw rates (steps/s) over ``repeats`` runs after one warm-up each."""
    steps = {}

    def collect_rate() -> float:
        seconds, n = timed(case.collect)
        steps["collection"] = n
        return n / seconds

    c_rate, c_all = median_run(collect_rate, repeats)

    def raw_rate() -> float:
        seconds, n = timed(lambda: case.raw(steps["collection"]))
        return n / seconds

    r_rate, r_all = median_run(raw_rate, repeats)
    return {"env_steps": steps["collection"], "collection_steps_per_s": c_rate, "raw_steps_per_s": r_rate,
            "ratio": c_rate / r_rate, "collection_runs": c_all, "raw_runs": r_all}


def cases(settings: Settings, folder: Path) -> list[CollectionCase]:
    """Every configured family's collection cases (``bench.collection_cases``)."""
    return [c for bench in family_benches(settings) if hasattr(bench, "collection_cases")
            for c in bench.collection_cases(settings, folder)]


def run(settings: Settings) -> tuple[list[Figure], dict]:
    figures, detail = [], {}
    with tempfile.TemporaryDirectory(prefix="justask-bench-") as tmp:
        for case in cases(settings, Path(tmp)):
            settings.log(f"bench a: {case.name}: {case.what}")
            r = measure(case, settings.repeats)
            detail[case.name] = {"workload": case.what, "workers": case.workers, **r}
            figures.append(Figure("a", f"collection {case.name}: x raw env rate", r["ratio"], "x", TARGET,
                                  note=f"{r['collection_steps_per_s']:.0f} vs {r['raw_steps_per_s']:.0f} steps/s",
                                  profile=f"collection-{case.family}"))
            figures.append(Figure("a", f"collection {case.name}: env steps/s", r["collection_steps_per_s"], "steps/s"))
    return figures, detail
