"""The language family's workloads for ``justask bench``: its BabyAI collection, its instruction
policies' training and their evaluation rollouts (see :mod:`justask.bench`)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from justask.bench import timed
from justask.bench.collection import CollectionCase, run_raw, split_steps
from justask.bench.evaluation import EvaluationCase
from justask.bench.training import TrainingCase

RECORDED_DEFAULT_SECONDS = 68 * 60 + 42  # the recorded default run (README, "Language results")
SHARE = 0.02  # of the stage's episodes per level and behaviour (its full run takes minutes)


def _levels(settings) -> list[str]:
    levels = settings.params.family("language").env.levels
    return levels[:1] if settings.quick else levels


def raw_grid(job: tuple[list[str], int, int]) -> int:
    """Step BabyAI envs (one per level, as collection makes them) with random actions for
    ``steps`` env steps in all, resetting each on termination; returns the steps taken."""
    from .env import N_ACTIONS, make_grid_env, reset_quietly

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


def collection_cases(settings, folder: Path) -> list[CollectionCase]:
    """``SHARE`` of each of the stage's behaviours (the mix and the demos' bot) on every configured
    level, so in the stage's proportions, and like the stage one call per dataset."""
    from .env import GridBehaviour, collect_grid_episodes, episode_specs

    cfg = settings.params.family("language").collect
    levels, workers = _levels(settings), settings.workers_for(cfg.workers)
    share = (lambda n: 2) if settings.quick else (lambda n: max(1, round(n * SHARE)))  # noqa: E731
    datasets = [
        [s for level in levels for b in cfg.mix
         for s in episode_specs(settings.params.seed, level, GridBehaviour(b.behaviour, b.epsilon), share(b.episodes),
                                stream="bench", max_steps=b.max_steps)],
        [s for level in levels
         for s in episode_specs(settings.params.seed, level, GridBehaviour("bot"), share(cfg.demos), "bench-demos")],
    ]
    per = {b.behaviour: share(b.episodes) for b in cfg.mix} | {"bot (demos)": share(cfg.demos)}

    def collect() -> int:
        return sum(len(e) for specs in datasets for e in collect_grid_episodes(specs, workers))

    def raw(steps: int) -> int:
        return run_raw(raw_grid, [(list(levels), s, i) for i, s in enumerate(split_steps(steps, workers))], workers)

    what = f"{len(levels)} levels x " + ", ".join(f"{n} {b}" for b, n in per.items()) + " episodes"
    return [CollectionCase("language", "language (BabyAI, bot mix)", collect, raw, what, workers)]


def _grid_table(levels: list[str], quick: bool, seed: int):
    """An instruction table of real BabyAI bot episodes, each labelled with its own mission."""
    from .env import GridBehaviour, collect_grid_episodes, episode_specs
    from .grammar import Vocabulary
    from .table import build_instruction_table

    per = 3 if quick else 30
    specs = [s for level in levels for s in episode_specs(seed, level, GridBehaviour("bot"), per, stream="bench")]
    episodes = collect_grid_episodes(specs, 1)
    missions = sorted({e.mission for e in episodes})
    labels = [[(0, len(e) - 1, missions.index(e.mission))] for e in episodes]
    split = np.zeros(len(episodes), np.int8)
    split[::5] = 1
    dicts = [{"observations": {"image": e.images, "direction": e.directions}, "actions": e.actions}
             for e in episodes]
    return build_instruction_table(dicts, labels, split), missions, Vocabulary.build(missions)


def training_cases(settings, device, val_rows: int = 64) -> list[TrainingCase]:
    """Every instruction policy; the frozen MiniLM embeddings, which the train stage computes once
    before training, are random vectors of the same size."""
    import torch

    from .policy import GridSpec, candidate, instruction_features
    from .table import InstructionSteps

    fam = settings.params.family("language")
    table, missions, vocab = _grid_table(_levels(settings), settings.quick, settings.params.seed)
    gen = torch.Generator().manual_seed(0)
    words = instruction_features("word", missions, vocab)
    features = {  # random stand-ins for MiniLM's outputs: the speed does not depend on their values
        ("word", "sentence"): words, ("word", "tokens"): words,
        ("word", "factored"): instruction_features("word", missions, vocab, "factored"),
        ("minilm", "sentence"): {"sentence": torch.randn(len(missions), 384, generator=gen).numpy()},
        ("minilm", "tokens"): {"token_states": torch.randn(len(missions), 10, 384, generator=gen).numpy(),
                               "token_mask": np.ones((len(missions), 10), bool)}}
    out = []
    for name, mcfg in fam.train.models.items():
        spec = GridSpec(act_dim=7, encoder=mcfg.encoder, vocab_size=len(vocab.words), reader=mcfg.reader)
        reads = features[mcfg.encoder, mcfg.reader]
        train = InstructionSteps(table, 0, reads, device, mirror=fam.train.mirror)
        val = InstructionSteps(table, 1, reads, device, max_rows=val_rows)
        out.append(TrainingCase(f"language/{name}", mcfg.hp, partial(candidate, spec), train, val, mcfg.context))
    return out


def raw_grid_rate(levels: list[str], num_envs: int, steps: int, seed: int = 0) -> float:
    """Env steps/s of ``num_envs`` BabyAI envs stepped one after another with random actions."""
    from .env import N_ACTIONS, make_grid_env, reset_quietly

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


def evaluation_cases(settings) -> list[EvaluationCase]:
    """One pass of a fresh word-encoder policy over ``num_envs`` asks per level, each room asked its
    own mission."""
    import torch

    from justask.seeding import stream_seeds

    from .asking import rollout_asks
    from .env import make_grid_env, reset_quietly
    from .grammar import Vocabulary, from_minigrid
    from .policy import GridSpec, build_policy

    fam = settings.params.family("language")
    levels = _levels(settings)
    num_envs = 4 if settings.quick else fam.evaluate.num_envs
    asks = []
    for level in levels:
        env = make_grid_env(level)
        for s in stream_seeds(settings.params.seed, f"bench/evaluate/{level}", num_envs):
            reset_quietly(env, s)
            text = from_minigrid(env.unwrapped.instrs).text  # the mission in the grammar's wording
            asks.append({"level": level, "env_seed": s, "instruction": text, "text": text})
        env.close()
    vocab = Vocabulary.build(a["text"] for a in asks)
    name, mcfg = next((n, m) for n, m in fam.train.models.items() if m.encoder == "word")
    torch.manual_seed(0)
    model = build_policy(mcfg.hp, GridSpec(act_dim=7, encoder="word", vocab_size=len(vocab.words))).eval()

    def run() -> list[int]:
        with torch.no_grad():
            return [r["length"] for r in rollout_asks(model, vocab, asks, torch.device("cpu"), num_envs)]

    return [EvaluationCase("language", "language instruction policy", run,
                           lambda steps: raw_grid_rate(list(levels), num_envs, steps), num_envs, {"model": name})]
