"""Section b: training throughput of the one loop (:func:`justask.training.loop.fit`) for every
model of every configured family at its configured size, on CPU and, when CUDA is visible, on the
GPU (fit's bf16 autocast and fused AdamW select themselves there).

Each family's ``bench.training_cases`` supplies the data: real rollouts of its env (a few dozen
episodes, enough for realistic windows), put on the device by the same data classes its train
stage uses; labels that only matter for what a model learns are filled simply (e.g. BabyAI
episodes labelled with their own mission, random vectors in place of frozen sentence embeddings).

Figures: samples/s, tokens/s (samples x context x tokens per step: 3 for the Decision
Transformer's (R, s, a), 1 otherwise; a ranking sample is two snippets), and the share of step
time spent producing batches (``sample``), measured with a wrapper around the data object.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from justask.bench import Figure, Settings, family_benches, median_run

DATA_SHARE_TARGET = 0.5  # producing a batch takes less time than the model step: not the bottleneck
STEP_SECONDS = 2.0  # timed duration of one repeat (full run)


class TimedData:
    """Delegates to a training data object, adding up the time its ``sample`` takes (synchronised
    on CUDA, so the time is the batch's, not the launch's)."""

    def __init__(self, data, device):
        self.data, self.device, self.seconds = data, device, 0.0

    def __len__(self) -> int:
        return len(self.data)

    def sample(self, gen, batch: int, k: int):
        import torch

        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        out = self.data.sample(gen, batch, k)
        sync()
        self.seconds += time.perf_counter() - t0
        return out


@dataclass
class TrainingCase:
    """One model as its train stage fits it: ``candidate(hp, steps)`` (see
    :data:`justask.training.tune.Candidate`), its data, and the tokens one sample feeds it."""

    name: str  # e.g. "return/dt"
    hp: dict
    candidate: Callable[[dict, int], tuple[Callable[[], Any], Any]]
    train: Any
    val: Any
    tokens: int
    cpu_only: bool = False  # fitted on CPU by its stage whatever the device


@functools.cache
def lunar_table(env, quick: bool, seed: int):
    """A relabeled step table of real LunarLander episodes (expert, hoverer, random), for the
    families whose models train on one."""
    from justask.lunar.jobs import Job, run_job
    from justask.seeding import stream_seeds
    from justask.steps import build_step_table

    per = 2 if quick else 16
    episodes = []
    for c in ("expert", "hoverer", "random"):
        _, eps = run_job(Job(c, 0.0, tuple(stream_seeds(seed, f"bench/train/{c}", per)), 0, env, per))
        episodes += eps
    split = np.zeros(len(episodes), np.int8)
    split[::5] = 1
    dicts = [{"observations": e.observations, "actions": e.actions, "rewards": e.rewards} for e in episodes]
    table = build_step_table(dicts, split)
    table.skill = np.repeat(np.array([1.0, 0.5, 0.0], np.float32), per)  # the three behaviours' ranks
    return table


def lunar_spec(table, env):
    from justask.steps import data_spec

    return data_spec(table, {"max_episode_steps": env.max_episode_steps, "ref_min_score": -200.0,
                             "ref_max_score": 250.0})


def policy_cases(family: str, models: dict, env, quick: bool, seed: int, device, val_rows: int = 64) -> list:
    """A case per return-conditioned policy of ``models`` (name -> PolicyConfig), on a LunarLander table."""
    from functools import partial

    from justask.models import candidate
    from justask.policies import policy_data

    table = lunar_table(env, quick, seed)
    out = []
    for kind, mcfg in models.items():
        spec, train, val = policy_data(kind, table, lunar_spec(table, env), device, mcfg.top_fraction, val_rows,
                                         sampling=mcfg.sampling)
        # DT: (R, s[, a]) per step; an MLP reads one step
        tokens = mcfg.context * (3 if mcfg.actions else 2) if kind == "dt" else 1
        out.append(TrainingCase(f"{family}/{kind}", mcfg.hp, partial(candidate, kind, spec), train, val, tokens))
    return out


def cases(settings: Settings, device) -> list[TrainingCase]:
    """Every configured family's training cases (``bench.training_cases``)."""
    return [c for bench in family_benches(settings) if hasattr(bench, "training_cases")
            for c in bench.training_cases(settings, device)]


def measure(case: TrainingCase, device, quick: bool, repeats: int) -> dict:
    """Median step time of ``fit`` (warm-up run first) and the share of it spent in ``sample``."""
    from justask.training.loop import Loop, fit

    def run_fit(steps: int) -> tuple[float, float]:
        data = TimedData(case.train, device)
        build, optimisation = case.candidate(case.hp, steps)
        r = fit(build, data, case.val, optimisation, Loop(eval_every=steps, patience=10**9, seed=0, device=device))
        return r.seconds, data.seconds

    warm_s, _ = run_fit(3)
    steps = 3 if quick else int(np.clip(STEP_SECONDS / max(warm_s / 3, 1e-6), 10, 2000))
    shares: list[float] = []

    def per_step() -> float:
        seconds, data_s = run_fit(steps)
        shares.append(data_s / seconds)
        return seconds / steps

    step_s, runs = median_run(per_step, repeats, warmup=0)
    return {"steps_per_repeat": steps, "step_seconds": step_s, "step_seconds_runs": runs,
            "samples_per_s": case.hp["batch_size"] / step_s, "data_share": float(np.median(shares)),
            "data_share_runs": shares}


def run(settings: Settings) -> tuple[list[Figure], dict]:
    import torch

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    figures, detail = [], {}
    for device in devices:
        for case in cases(settings, device):
            if case.cpu_only and device.type == "cuda":
                continue
            settings.log(f"bench b: {case.name} on {device.type}")
            r = measure(case, device, settings.quick, settings.repeats)
            r |= {"tokens_per_sample": case.tokens, "tokens_per_s": r["samples_per_s"] * case.tokens,
                  "batch_size": case.hp["batch_size"], "hp": case.hp, "train_rows": len(case.train),
                  "autocast": "bf16" if device.type == "cuda" else None}
            detail[f"{case.name} [{device.type}]"] = r
            label = f"train {case.name} [{device.type}]"
            figures += [Figure("b", f"{label}: samples/s", r["samples_per_s"], "samples/s"),
                        Figure("b", f"{label}: tokens/s", r["tokens_per_s"], "tokens/s"),
                        Figure("b", f"{label}: batch share of step time", r["data_share"], "", DATA_SHARE_TARGET,
                               "<=")]
    return figures, detail
