"""collect (language): BabyAI episodes from behaviour that mostly does not follow its mission.

Two Minari datasets under ``artifacts/language/collect/``:

* ``mix``: the behaviour mix of ``language.collect.mix`` on every level (the bot on its own
  mission, the bot on another goal, the noisy bot, a random walk); relabeled in hindsight later.
* ``demos``: the bot on its own mission only, kept with the original missions, for the
  demos-only baseline.

Observations are ``Dict(image, direction)``; each step's infos carry the level, the behaviour and
the env's own mission (bytes). Episode i of (level, behaviour) always gets the same env seed and
behaviour seed, so the files are byte-identical for the same params whatever the worker count.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from gymnasium import spaces
from minari.data_collector.episode_buffer import EpisodeBuffer
from rich.progress import Progress

from justask.config import Params
from justask.data.atomic import write_json
from justask.data.episodes import write_buffers
from justask.envs.babyai import DONE, GridBehaviour, GridEpisode, collect_grid_episodes
from justask.paths import family_paths
from justask.seeding import stream_seeds

OBSERVATION_SPACE = spaces.Dict({
    "image": spaces.Box(0, 255, (7, 7, 3), np.uint8),
    "direction": spaces.Discrete(4),
})
ACTION_SPACE = spaces.Discrete(DONE + 1)


def episode_specs(seed: int, level: str, behaviour: GridBehaviour, n: int, stream: str = "collect",
                  max_steps: int | None = None):
    """(level, env_seed, behaviour, behaviour_seed, max_steps) of the first ``n`` episodes of a behaviour."""
    env_seeds = stream_seeds(seed, f"language/{stream}/{level}/{behaviour.label}/env", n)
    beh_seeds = stream_seeds(seed, f"language/{stream}/{level}/{behaviour.label}/behaviour", n)
    return [(level, e, behaviour, b, max_steps) for e, b in zip(env_seeds, beh_seeds, strict=True)]


def collect_env_seeds(params: Params) -> set[int]:
    """Every env seed collection uses (evaluation must stay disjoint from these)."""
    cfg = params.language.collect
    seeds: set[int] = set()
    for level in cfg.levels:
        for b in cfg.mix:
            seeds |= {s[1] for s in episode_specs(params.seed, level, GridBehaviour(b.behaviour, b.epsilon),
                                                  b.episodes)}
        seeds |= {s[1] for s in episode_specs(params.seed, level, GridBehaviour("bot"), cfg.demos, "demos")}
    return seeds


def to_buffer(i: int, ep: GridEpisode) -> EpisodeBuffer:
    n = len(ep) + 1
    text = lambda s: np.full(n, s.encode())  # noqa: E731 (h5py stores bytes, not str)
    return EpisodeBuffer(
        id=i, seed=ep.env_seed,
        observations={"image": ep.images, "direction": ep.directions},
        actions=ep.actions, rewards=ep.rewards, terminations=ep.terminations, truncations=ep.truncations,
        infos={"level": text(ep.level), "behaviour": text(ep.behaviour), "mission": text(ep.mission)},
    )


def _summary(episodes: list[GridEpisode]) -> dict:
    groups: dict[tuple[str, str], list[GridEpisode]] = defaultdict(list)
    for ep in episodes:
        groups[ep.level, ep.behaviour].append(ep)
    return {
        f"{level}/{behaviour}": {
            "episodes": len(eps),
            "own_mission_success": round(float(np.mean([e.success for e in eps])), 4),
            "mean_length": round(float(np.mean([len(e) for e in eps])), 2),
            "bot_failures": int(sum(e.bot_failed for e in eps)),
        }
        for (level, behaviour), eps in sorted(groups.items())
    }


def collect(params: Params, root: Path = Path(".")) -> None:
    cfg = params.language.collect
    paths = family_paths("language", root)
    specs = {
        "mix": [s for level in cfg.levels for b in cfg.mix
                for s in episode_specs(params.seed, level, GridBehaviour(b.behaviour, b.epsilon), b.episodes,
                                       max_steps=b.max_steps)],
        "demos": [s for level in cfg.levels
                  for s in episode_specs(params.seed, level, GridBehaviour("bot"), cfg.demos, "demos")],
    }
    t0 = time.perf_counter()
    summary: dict = {"levels": list(cfg.levels), "datasets": {}}
    with Progress(transient=True) as bar:
        for name, dataset_specs in specs.items():
            task = bar.add_task(f"collect {name}", total=len(dataset_specs))
            start = time.perf_counter()
            episodes = collect_grid_episodes(dataset_specs, cfg.workers, lambda n, t=task: bar.advance(t, n),
                                             params.scale)
            seconds = time.perf_counter() - start
            steps = int(sum(len(e) for e in episodes))
            write_buffers(paths.dataset(name), [to_buffer(i, e) for i, e in enumerate(episodes)],
                          OBSERVATION_SPACE, ACTION_SPACE, None,
                          {"dataset_id": f"justask/language-{name}-v0", "levels": list(cfg.levels),
                           "algorithm_name": "BabyAI bot / other-goal bot / noisy bot / random walk"})
            summary["datasets"][name] = {"episodes": len(episodes), "steps": steps,
                                         "steps_per_second": round(steps / max(seconds, 1e-9), 1),
                                         "behaviours": _summary(episodes)}
    write_json(paths.collect_summary, summary)
    print(f"collect (language): {sum(d['episodes'] for d in summary['datasets'].values())} episodes "
          f"in {time.perf_counter() - t0:.1f}s")
