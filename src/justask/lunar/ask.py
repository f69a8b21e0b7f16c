"""Asking a trained lander policy from the command line (`justask ask return|reward ...`): the
episodes, the table printed and the GIF, shared by the families whose policies fly LunarLander.

A family's ``ask.py`` turns what the user asked for into the condition its policy reads (a
target return, a skill, a learned return) and calls :func:`ask_lander` (and :func:`save_gif`). The env seeds are drawn
from a stream of their own and checked disjoint from the frozen evaluation seeds, so an ask never
reuses an evaluation episode.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import typer

from justask.conditioned import ConditionedRollout
from justask.lunar.config import EnvConfig
from justask.lunar.env import from_config
from justask.rollout import Episode, run_episodes
from justask.seeding import stream_seeds


class AskError(ValueError):
    """The request cannot be carried out as given; the message says why and what to change."""


@dataclass(frozen=True)
class AskedEpisode:
    env_seed: int
    ret: float  # the env's return
    score: float  # normalized: 0 random, 100 expert
    length: int
    learned: float | None = None  # the learned return, for a policy of a learned reward


# The options every lander ask shares (typer reads a default's OptionInfo; reusing one is safe).
TRAIN_SEED = typer.Option(None, help="training seed of the model (default: the first)")
EPISODES = typer.Option(5, min=1, max=256, help="episodes to roll out")
SEED = typer.Option(None, help="first env seed (default: a stream of seeds never used for evaluation)")
GIF = typer.Option(True, help="save the first episode as a GIF (under artifacts/<family>/ask/)")
PARAMS = typer.Option(Path("params.yaml"), help="parameters file")


def trained(family: str, fam, model: str, train_seed: int | None) -> tuple[str, int]:
    """``model`` and ``train_seed`` (None: the first configured), checked against ``fam.train``."""
    if model not in fam.train.models:
        raise AskError(f"no model {model!r} in families.{family}.train.models; trained: {', '.join(fam.train.models)}")
    train_seed = fam.train.seeds[0] if train_seed is None else train_seed
    if train_seed not in fam.train.seeds:
        raise AskError(f"no training seed {train_seed} in families.{family}.train.seeds {fam.train.seeds}")
    return model, train_seed


def run_ask(params: Path, ask: Callable) -> None:
    """The body of a ``justask ask`` command: ``ask(params) -> (what, episodes, gif or None)``
    printed; what cannot be asked, exit 2 with the message; a checkpoint that cannot be loaded,
    its message."""
    from justask.console import console, err_console, fail, load_params_or_fail
    from justask.errors import CheckpointError, StageFailed

    cfg = load_params_or_fail(params)
    try:
        what, asked, gif = ask(cfg)
    except (AskError, StageFailed, FileNotFoundError) as e:
        err_console.print(f"[red]cannot ask that[/]\n{e}")
        raise typer.Exit(2) from None
    except CheckpointError as e:
        fail("cannot load the policy", e)
    print_asked(console, what, asked)
    if gif is not None:
        console.print(f"GIF of the first episode: {gif}")


def ask_seeds(params_seed: int, stream: str, n: int, first: int | None, eval_seeds_file: Path) -> list[int]:
    """``n`` env seeds for asks: ``first, first+1, ...`` when given, else the stream's; refused if
    any is one of the frozen evaluation seeds."""
    seeds = list(range(first, first + n)) if first is not None else stream_seeds(params_seed, stream, n)
    try:
        frozen = set(json.loads(eval_seeds_file.read_text())["seeds"])
    except FileNotFoundError:
        frozen = set()
    used = sorted(set(seeds) & frozen)
    if used:
        raise AskError(f"env seeds {used[:5]} are evaluation seeds ({eval_seeds_file}); pick another --seed")
    return [int(s) for s in seeds]


def ask_lander(model, env_cfg: EnvConfig, seeds: list[int], target: float,
               countdown: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Episode]:
    """One episode per seed of ``model`` asked for ``target`` (``countdown``: what the ask drops by
    per state for a learned reward; None: the env's reward), observations recorded."""
    envs = from_config(env_cfg, len(seeds))
    policy = ConditionedRollout(model, len(seeds), np.full(len(seeds), target), torch.device("cpu"), countdown)
    try:
        with torch.inference_mode():
            return run_episodes(envs, seeds, policy)
    finally:
        envs.close()


def save_gif(model, env_cfg: EnvConfig, target: float, env_seed: int, path: Path, max_steps: int,
             countdown: Callable[[np.ndarray], np.ndarray] | None = None) -> Path:
    """The episode of ``env_seed`` replayed with frames (the same actions: the rollout is
    deterministic) and saved as a GIF at ``path``, at most ``max_steps`` steps of it."""
    from justask.lunar.asking import record_gif

    return record_gif(model, env_cfg, target, env_seed, path, torch.device("cpu"), max_steps=max_steps,
                      reward_fn=countdown)


def print_asked(console, what: str, episodes: list[AskedEpisode]) -> None:
    """The episodes of one ask as a table, then their mean."""
    from rich.table import Table

    learned = any(e.learned is not None for e in episodes)
    table = Table(title=what)
    for col in ("env seed", "return", "score", "steps", *(["learned return"] if learned else [])):
        table.add_column(col, justify="right")
    for e in episodes:
        table.add_row(str(e.env_seed), f"{e.ret:.1f}", f"{e.score:.1f}", str(e.length),
                      *([f"{e.learned:.2f}"] if learned else []))
    console.print(table)
    mean = lambda k: float(np.mean([getattr(e, k) for e in episodes]))  # noqa: E731
    console.print(f"mean over {len(episodes)} episodes: return {mean('ret'):.1f}, score {mean('score'):.1f} "
                  f"(0 random, 100 expert), {mean('length'):.0f} steps"
                  + (f", learned return {mean('learned'):.2f}" if learned else ""))
