"""Section b: training throughput of the one loop (:func:`justask.train.fit`) for every model at
its configured size, on CPU and, when CUDA is visible, on the GPU (fit's bf16 autocast and fused
AdamW select themselves there).

Data: real rollouts of each family's env (a few dozen episodes, enough for realistic windows),
put on the device by the same ``Steps`` / ``SnippetPairs`` / ``InstructionSteps`` classes the
train stages use. Labels that only matter for what a model learns are filled simply: BabyAI
episodes are labelled with their own mission, and the frozen MiniLM sentence embeddings, which
the train stage computes once before training, are random vectors of the same size.

Figures: samples/s, tokens/s (samples x context x tokens per step: 3 for the Decision
Transformer's (R, s, a), 1 otherwise; a ranking sample is two snippets), and the share of step
time spent producing batches (``sample``), measured with a wrapper around the data object.
"""

from __future__ import annotations

import time

import numpy as np

from justask.bench import Figure, Settings, median_run

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


def _lunar_table(env, quick: bool, seed: int):
    """A relabeled step table of real LunarLander episodes (expert, hoverer, random)."""
    from justask.data.relabel import build_step_table
    from justask.envs.lunar import Job, run_job
    from justask.seeding import stream_seeds

    per = 2 if quick else 16
    episodes = []
    for c in ("expert", "hoverer", "random"):
        _, eps = run_job(Job(c, 0.0, tuple(stream_seeds(seed, f"bench/train/{c}", per)), 0, env, per))
        episodes += eps
    split = np.zeros(len(episodes), np.int8)
    split[::5] = 1
    dicts = [{"observations": e.observations, "actions": e.actions, "rewards": e.rewards} for e in episodes]
    return build_step_table(dicts, split)


def _grid_table(levels: list[str], quick: bool, seed: int):
    """An instruction table of real BabyAI bot episodes, each labelled with its own mission."""
    from justask.data.language.grammar import Vocabulary
    from justask.data.language.table import build_instruction_table
    from justask.envs.babyai import GridBehaviour, collect_grid_episodes
    from justask.stages.language.collect import episode_specs

    per = 3 if quick else 30
    specs = [s for level in levels for s in episode_specs(seed, level, GridBehaviour("bot"), per, stream="bench")]
    episodes = collect_grid_episodes(specs, 1)
    missions = sorted({e.mission for e in episodes})
    labels = [[(len(e) - 1, missions.index(e.mission))] for e in episodes]
    split = np.zeros(len(episodes), np.int8)
    split[::5] = 1
    dicts = [{"observations": {"image": e.images, "direction": e.directions}, "actions": e.actions}
             for e in episodes]
    return build_instruction_table(dicts, labels, split), missions, Vocabulary.build(missions)


def cases(settings: Settings, device):
    """(name, kind, hp, spec, train data, val data, tokens per sample) of every model."""
    from justask.stages.train import episodes_for
    from justask.train import Steps, data_spec

    p, quick = settings.params, settings.quick
    env = p.return_.env.model_copy(update={"max_episode_steps": 100}) if quick else p.return_.env
    table = _lunar_table(env, quick, p.seed)
    spec = data_spec(table, {"max_episode_steps": env.max_episode_steps, "ref_min_score": -200.0,
                             "ref_max_score": 250.0})
    val_rows = 64
    out = []
    for family, tcfg in (("return", p.return_.train), ("reward", p.reward.train if p.reward else None)):
        if tcfg is None:
            continue
        for kind, mcfg in tcfg.models.items():
            hp = mcfg.model_dump(exclude={"tune", "steps", "top_fraction"})
            train = Steps(table, episodes_for(kind, table, 0, mcfg.top_fraction), device)
            val = Steps(table, episodes_for(kind, table, 1, mcfg.top_fraction), device, max_rows=val_rows)
            tokens = hp["context"] * 3 if kind == "dt" else 1  # DT: (R, s, a) per step; an MLP reads one step
            out.append((f"{family}/{kind}", kind, hp, spec, train, val, tokens))
    if p.reward is not None:
        out += _reward_cases(p, table, spec, env, device, quick, val_rows)
    if p.language is not None:
        out += _language_cases(p, device, quick, val_rows)
    return out


def _reward_cases(p, table, spec, env, device, quick: bool, val_rows: int) -> list:
    from justask.data.ranking import RankingTable, SnippetPairs, make_pairs
    from justask.stages.reward.train import ranking_spec
    from justask.train import Steps

    out = []
    clone = p.reward.collect.clone
    hp = {"hidden": clone.hidden, "layers": clone.layers, "dropout": 0.0, "lr": clone.lr,
          "weight_decay": clone.weight_decay, "batch_size": clone.batch_size}
    out.append(("reward/clone (bc)", "bc", hp, spec, Steps(table, np.flatnonzero(table.split == 0), device),
                Steps(table, np.flatnonzero(table.split == 1), device, max_rows=val_rows), 1))

    rcfg = p.reward.train.ranking
    # every 5th episode validates: cycle noise levels across those so both splits hold several
    i = np.arange(table.n_episodes)
    noise = np.asarray(p.reward.collect.noise, float)[(i + i // 5) % len(p.reward.collect.noise)]
    rtable = RankingTable(observations=table.observations, starts=table.starts, noise=noise, split=table.split)
    snippet = min(p.reward.relabel.snippet, 20) if quick else p.reward.relabel.snippet
    pairs = make_pairs(rtable, np.flatnonzero(table.split == 0), 256 if quick else p.reward.relabel.pairs, snippet,
                       p.seed)
    vpairs = make_pairs(rtable, np.flatnonzero(table.split == 1), 32, snippet, p.seed + 1)
    hp = rcfg.model_dump(exclude={"tune", "steps", "ensemble"})
    out.append(("reward/ranking", "reward", hp, ranking_spec(rtable, env.max_episode_steps),
                SnippetPairs(rtable, pairs, device), SnippetPairs(rtable, vpairs, device), 2 * int(pairs.length.max())))
    return out


def _language_cases(p, device, quick: bool, val_rows: int) -> list:
    import torch

    from justask.models.instruction_policy import GridSpec
    from justask.stages.language.train import instruction_features
    from justask.train import InstructionSteps

    out = []
    lcfg = p.language
    gtable, missions, vocab = _grid_table(lcfg.collect.levels[:1] if quick else lcfg.collect.levels, quick, p.seed)
    gen = torch.Generator().manual_seed(0)
    features = {"word": instruction_features("word", missions, vocab),
                "minilm": {"sentence": torch.randn(len(missions), 384, generator=gen).numpy()}}
    for name, mcfg in lcfg.train.models.items():
        hp = mcfg.model_dump(exclude={"tune", "steps", "data", "encoder"})
        gspec = GridSpec(act_dim=7, encoder=mcfg.encoder, vocab_size=len(vocab.words))
        train = InstructionSteps(gtable, 0, features[mcfg.encoder], device, mirror=lcfg.train.mirror)
        val = InstructionSteps(gtable, 1, features[mcfg.encoder], device, max_rows=val_rows)
        out.append((f"language/{name}", "instruction", hp, gspec, train, val, hp["context"]))
    return out


def measure(kind, hp, spec, train, val, device, quick: bool, repeats: int) -> dict:
    """Median step time of ``fit`` (warm-up run first) and the share of it spent in ``sample``."""
    from justask.train import fit

    def run_fit(steps: int) -> tuple[float, float]:
        data = TimedData(train, device)
        r = fit(kind, hp, spec, data, val, steps=steps, eval_every=steps, patience=10**9, seed=0, device=device)
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
            "samples_per_s": hp["batch_size"] / step_s, "data_share": float(np.median(shares)),
            "data_share_runs": shares}


def run(settings: Settings) -> tuple[list[Figure], dict]:
    import torch

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    figures, detail = [], {}
    for device in devices:
        for name, kind, hp, spec, train, val, tokens in cases(settings, device):
            if name == "reward/clone (bc)" and device.type == "cuda":
                continue  # the collect stage fits the clone on CPU
            settings.log(f"bench b: {name} on {device.type}")
            r = measure(kind, hp, spec, train, val, device, settings.quick, settings.repeats)
            r |= {"tokens_per_sample": tokens, "tokens_per_s": r["samples_per_s"] * tokens, "batch_size":
                  hp["batch_size"], "hp": hp, "train_rows": len(train), "autocast": "bf16" if device.type == "cuda"
                  else None}
            detail[f"{name} [{device.type}]"] = r
            label = f"train {name} [{device.type}]"
            figures += [Figure("b", f"{label}: samples/s", r["samples_per_s"], "samples/s"),
                        Figure("b", f"{label}: tokens/s", r["tokens_per_s"], "tokens/s"),
                        Figure("b", f"{label}: batch share of step time", r["data_share"], "", DATA_SHARE_TARGET,
                               "<=")]
    return figures, detail
