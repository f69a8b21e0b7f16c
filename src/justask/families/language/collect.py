"""collect (language): BabyAI episodes from behaviour that mostly does not follow its mission.

Two Minari datasets under ``artifacts/language/collect/``:

* ``mix``: the behaviour mix of ``families.language.collect.mix`` on every level (the bot on its own
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
from minari.data_collector.episode_buffer import EpisodeBuffer
from rich.progress import Progress

from justask.config import Params
from justask.datasets import write_buffers
from justask.io import write_json
from justask.paths import family_paths

from .env import ACTION_SPACE, OBSERVATION_SPACE, GridBehaviour, GridEpisode, collect_grid_episodes, episode_specs


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
    fam = params.family("language")
    cfg, levels = fam.collect, fam.env.levels
    paths = family_paths("language", root)
    specs = {
        "mix": [s for level in levels for b in cfg.mix
                for s in episode_specs(params.seed, level, GridBehaviour(b.behaviour, b.epsilon), b.episodes,
                                       max_steps=b.max_steps)],
        "demos": [s for level in levels
                  for s in episode_specs(params.seed, level, GridBehaviour("bot"), cfg.demos, "demos")],
    }
    t0 = time.perf_counter()
    summary: dict = {"levels": list(levels), "datasets": {}}
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
                          {"dataset_id": f"justask/language-{name}-v0", "levels": list(levels),
                           "algorithm_name": "BabyAI bot / other-goal bot / noisy bot / random walk"})
            # Speed is printed, not written: the summary is a DVC output, the same bytes on every run.
            print(f"collect (language): {name}: {steps} steps at {steps / max(seconds, 1e-9):.0f} steps/s")
            summary["datasets"][name] = {"episodes": len(episodes), "steps": steps, "behaviours": _summary(episodes)}
    write_json(paths.collect_summary, summary)
    print(f"collect (language): {sum(d['episodes'] for d in summary['datasets'].values())} episodes "
          f"in {time.perf_counter() - t0:.1f}s")
