"""Section c: evaluation throughput with the model in the loop vs the raw env rate.

Each configured family with a ``bench.py`` offers :class:`EvaluationCase` s: one pass of its real
evaluation rollouts (freshly initialised models of the configured size: speed, not quality) and the
same envs stepped with random actions for the same number of steps. Target: >= 0.5x the raw rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from justask.bench import Figure, Settings, family_benches, median_run, timed
from justask.bench.collection import step_randomly

TARGET = 0.5


@dataclass
class EvaluationCase:
    """``run()`` rolls one batch of evaluation episodes out and returns their lengths;
    ``raw_rate(steps)`` is the env steps/s of the same envs under random actions."""

    key: str  # the workload's name for `--profile` (evaluate-<key>)
    name: str
    run: Callable[[], list[int]]
    raw_rate: Callable[[int], float]
    num_envs: int
    info: dict = field(default_factory=dict)


def raw_vector_rate(env, num_envs: int, steps: int, seed: int = 0) -> float:
    """Env steps/s of a LunarLander vector env (as evaluation builds it) under random actions."""
    from justask.lunar.env import from_config

    envs = from_config(env, num_envs)
    envs.reset(seed=seed)
    envs.action_space.seed(seed)

    seconds, n = timed(lambda: step_randomly(envs, num_envs, steps))
    envs.close()
    return n / seconds


def measure(case: EvaluationCase, repeats: int) -> dict:
    lengths: list[int] = []

    def rate() -> float:
        seconds, lengths[:] = timed(case.run)
        return sum(lengths) / seconds

    steps_s, runs = median_run(rate, repeats)
    raw, raw_runs = median_run(lambda: case.raw_rate(sum(lengths)), repeats)
    return {**case.info, "episodes": len(lengths), "env_steps": sum(lengths), "num_envs": case.num_envs,
            "steps_per_s": steps_s, "episodes_per_s": steps_s * len(lengths) / sum(lengths), "raw_steps_per_s": raw,
            "ratio": steps_s / raw, "runs": runs, "raw_runs": raw_runs}


def cases(settings: Settings) -> list[EvaluationCase]:
    """Every configured family's evaluation cases (``bench.evaluation_cases``)."""
    return [c for bench in family_benches(settings) if hasattr(bench, "evaluation_cases")
            for c in bench.evaluation_cases(settings)]


def run(settings: Settings) -> tuple[list[Figure], dict]:
    figures, detail = [], {}
    for case in cases(settings):
        settings.log(f"bench c: {case.name}")
        r = measure(case, settings.repeats)
        detail[case.name] = r
        figures += [Figure("c", f"evaluate {case.name}: x raw env rate", r["ratio"], "x", TARGET,
                           note=f"{r['steps_per_s']:.0f} vs {r['raw_steps_per_s']:.0f} steps/s",
                           profile=f"evaluate-{case.key}"),
                    Figure("c", f"evaluate {case.name}: episodes/s", r["episodes_per_s"], "episodes/s")]
    return figures, detail
