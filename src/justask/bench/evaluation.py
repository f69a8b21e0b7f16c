"""Section c: evaluation throughput with the model in the loop vs the raw env rate.

Return family: :func:`justask.evaluate.rollout` (one batched forward pass per step across a vector
env) with freshly initialised RvS and DT models of the configured size (speed, not quality).
Language family: :func:`justask.stages.language.evaluate.rollout_asks` with a fresh instruction
policy (word encoder), asked each room's own mission. Raw: the same envs stepped in-process with
random actions for the same number of steps. Target: >= 0.5x the raw rate.
"""

from __future__ import annotations

import numpy as np

from justask.bench import Figure, Settings, median_run, timed
from justask.bench.collection import step_randomly

TARGET = 0.5


def raw_vector_rate(env, num_envs: int, steps: int, seed: int = 0) -> float:
    """Env steps/s of a LunarLander vector env (as evaluation builds it) under random actions."""
    from justask.envs.lunar import make_vector_env

    envs = make_vector_env(num_envs, env.id, env.continuous, env.max_episode_steps)
    envs.reset(seed=seed)
    envs.action_space.seed(seed)

    seconds, n = timed(lambda: step_randomly(envs, num_envs, steps))
    envs.close()
    return n / seconds


def raw_grid_rate(levels: list[str], num_envs: int, steps: int, seed: int = 0) -> float:
    """Env steps/s of ``num_envs`` BabyAI envs stepped one after another with random actions."""
    from justask.envs.babyai import N_ACTIONS, make_grid_env, reset_quietly

    rng = np.random.default_rng(seed)
    envs = [make_grid_env(levels[i % len(levels)]) for i in range(num_envs)]
    for i, e in enumerate(envs):
        reset_quietly(e, seed + i)

    def loop() -> int:
        n, resets = 0, 0
        while n < steps:
            for e in envs:
                _, _, term, trunc, _ = e.step(int(rng.integers(N_ACTIONS)))
                n += 1
                if term or trunc:
                    resets += 1
                    reset_quietly(e, seed + num_envs + resets)
        return n

    seconds, n = timed(loop)
    for e in envs:
        e.close()
    return n / seconds


def return_rollout(settings: Settings, kind: str):
    """(run() -> episode lengths, env config, num_envs): one batch of evaluation episodes."""
    import torch

    from justask.evaluate import rollout
    from justask.models import Spec, build_model
    from justask.seeding import stream_seeds

    p = settings.params
    env = p.return_.env.model_copy(update={"max_episode_steps": 100}) if settings.quick else p.return_.env
    num_envs = 8 if settings.quick else p.return_.evaluate.num_envs
    spec = Spec(obs_dim=8, act_dim=4, discrete=True, max_timestep=env.max_episode_steps, obs_mean=(0.0,) * 8,
                obs_std=(1.0,) * 8, return_scale=430.0)
    hp = p.return_.train.models[kind].model_dump(exclude={"tune", "steps", "top_fraction"})
    torch.manual_seed(0)
    model = build_model(kind, hp, spec).eval()
    seeds = stream_seeds(p.seed, "bench/evaluate", num_envs)
    targets = [233.0] * num_envs

    def run() -> list[int]:
        with torch.no_grad():
            return [r.length for r in rollout(model, env, seeds, targets, num_envs, torch.device("cpu"))]

    return run, env, num_envs


def return_case(settings: Settings, kind: str) -> dict:
    run, env, num_envs = return_rollout(settings, kind)
    lengths: list[int] = []

    def rate() -> float:
        seconds, lengths[:] = timed(run)
        return sum(lengths) / seconds

    steps_s, runs = median_run(rate, settings.repeats)
    raw, raw_runs = median_run(lambda: raw_vector_rate(env, num_envs, sum(lengths)), settings.repeats)
    return {"episodes": num_envs, "env_steps": sum(lengths), "num_envs": num_envs, "steps_per_s": steps_s,
            "episodes_per_s": steps_s * num_envs / sum(lengths), "raw_steps_per_s": raw, "ratio": steps_s / raw,
            "runs": runs, "raw_runs": raw_runs}


def language_rollout(settings: Settings):
    """(run() -> episode lengths, levels, num_envs, model name): one pass over the asks."""
    import torch

    from justask.data.language.grammar import Vocabulary, from_minigrid
    from justask.envs.babyai import make_grid_env, reset_quietly
    from justask.models import build_model
    from justask.models.instruction_policy import GridSpec
    from justask.seeding import stream_seeds
    from justask.stages.language.evaluate import rollout_asks

    p = settings.params.language
    levels = p.collect.levels[:1] if settings.quick else p.collect.levels
    num_envs = 4 if settings.quick else p.evaluate.num_envs
    asks = []
    for level in levels:
        env = make_grid_env(level)
        for s in stream_seeds(settings.params.seed, f"bench/evaluate/{level}", num_envs):
            reset_quietly(env, s)
            text = from_minigrid(env.unwrapped.instrs).text  # the mission in the grammar's wording
            asks.append({"level": level, "env_seed": s, "instruction": text, "text": text})
        env.close()
    vocab = Vocabulary.build(a["text"] for a in asks)
    name, mcfg = next((n, m) for n, m in p.train.models.items() if m.encoder == "word")
    hp = mcfg.model_dump(exclude={"tune", "steps", "data", "encoder"})
    torch.manual_seed(0)
    model = build_model("instruction", hp, GridSpec(act_dim=7, encoder="word", vocab_size=len(vocab.words))).eval()

    def run() -> list[int]:
        with torch.no_grad():
            return [r["length"] for r in rollout_asks(model, vocab, asks, torch.device("cpu"), num_envs)]

    return run, levels, num_envs, name


def language_case(settings: Settings) -> dict:
    run, levels, num_envs, name = language_rollout(settings)
    lengths: list[int] = []

    def rate() -> float:
        seconds, lengths[:] = timed(run)
        return sum(lengths) / seconds

    steps_s, runs = median_run(rate, settings.repeats)
    raw, raw_runs = median_run(lambda: raw_grid_rate(list(levels), num_envs, sum(lengths)), settings.repeats)
    return {"model": name, "episodes": len(lengths), "env_steps": sum(lengths), "num_envs": num_envs,
            "steps_per_s": steps_s, "episodes_per_s": steps_s * len(lengths) / sum(lengths), "raw_steps_per_s": raw,
            "ratio": steps_s / raw, "runs": runs, "raw_runs": raw_runs}


def run(settings: Settings) -> tuple[list[Figure], dict]:
    figures, detail = [], {}
    results = {f"return {kind}": (kind, lambda k=kind: return_case(settings, k)) for kind in ("rvs", "dt")
               if kind in settings.params.return_.train.models}
    if settings.params.language is not None:
        results["language instruction policy"] = ("language", lambda: language_case(settings))
    for name, (key, fn) in results.items():
        settings.log(f"bench c: {name}")
        r = fn()
        detail[name] = r
        figures += [Figure("c", f"evaluate {name}: x raw env rate", r["ratio"], "x", TARGET,
                           note=f"{r['steps_per_s']:.0f} vs {r['raw_steps_per_s']:.0f} steps/s",
                           profile=f"evaluate-{key}"),
                    Figure("c", f"evaluate {name}: episodes/s", r["episodes_per_s"], "episodes/s")]
    return figures, detail
