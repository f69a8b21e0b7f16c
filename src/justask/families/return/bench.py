"""The return family's workloads for ``justask bench``: its collection mix, its policies' training
and their evaluation rollouts (see :mod:`justask.bench`)."""

from __future__ import annotations

from pathlib import Path

from justask.bench.collection import CollectionCase, raw_lunar_steps
from justask.bench.evaluation import EvaluationCase, raw_vector_rate
from justask.bench.training import policy_cases

# Wall time of the recorded default run on the project's 2-core CPU (README, "Results"): what the
# orchestration overhead is a share of.
RECORDED_DEFAULT_SECONDS = 22 * 60 + 40


def _env(settings):
    env = settings.params.family("return").env
    return env.model_copy(update={"max_episode_steps": 100}) if settings.quick else env


def collection_cases(settings, folder: Path) -> list[CollectionCase]:
    """The stage's behaviour mix at one vector env's worth of episodes per behaviour."""
    from justask.lunar.jobs import chunk_jobs, rollout_behaviours
    from justask.seeding import stream_seeds

    cfg = settings.params.family("return").collect
    env, workers = _env(settings), settings.workers_for(cfg.workers)
    behaviours = sorted({(b.controller, b.epsilon) for mix in cfg.mixes.values() for b in mix})
    per = 2 if settings.quick else cfg.envs_per_worker
    if settings.quick:
        behaviours = behaviours[:2]
    num_envs = min(cfg.envs_per_worker, per)

    def collect() -> int:
        jobs = {f"{c}-{e:g}": chunk_jobs(c, e, stream_seeds(settings.params.seed, f"bench/{c}-{e:g}", per), env,
                                         workers, num_envs) for c, e in behaviours}
        pools = rollout_behaviours(jobs, workers, "bench: return collection")
        return sum(len(e) for eps in pools.values() for e in eps)

    what = f"{len(behaviours)} behaviours x {per} episodes, {num_envs} envs per worker"
    return [CollectionCase("return", "return (LunarLander, behaviour mix)", collect,
                           raw_lunar_steps(env, num_envs, workers), what, workers)]


def training_cases(settings, device) -> list:
    return policy_cases("return", settings.params.family("return").train.models, _env(settings), settings.quick,
                        settings.params.seed, device)


def evaluation_cases(settings) -> list[EvaluationCase]:
    """One batch of evaluation episodes of each conditioned model (freshly initialised)."""
    return [rollout_case(settings, kind) for kind in ("rvs", "dt")
            if kind in settings.params.family("return").train.models]


def rollout_case(settings, kind: str) -> EvaluationCase:
    import torch

    from justask.lunar.asking import rollout
    from justask.models import build_model
    from justask.seeding import stream_seeds
    from justask.steps import Spec

    fam = settings.params.family("return")
    env = _env(settings)
    num_envs = 8 if settings.quick else fam.evaluate.num_envs
    spec = Spec(obs_dim=8, act_dim=4, discrete=True, max_timestep=env.max_episode_steps, obs_mean=(0.0,) * 8,
                obs_std=(1.0,) * 8, return_scale=430.0)
    torch.manual_seed(0)
    model = build_model(kind, fam.train.models[kind].hp, spec).eval()
    seeds = stream_seeds(settings.params.seed, "bench/evaluate", num_envs)
    targets = [233.0] * num_envs

    def run() -> list[int]:
        with torch.no_grad():
            return [r.length for r in rollout(model, env, seeds, targets, num_envs, torch.device("cpu"))]

    return EvaluationCase(kind, f"return {kind}", run, lambda steps: raw_vector_rate(env, num_envs, steps), num_envs)
