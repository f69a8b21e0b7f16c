"""Ask a trained language policy for something, in words: `justask ask language "..."`.

The policy is told the text as written. Whether it succeeded is judged by minigrid's verifier on
the same request in the instruction grammar: the text itself when it is in the grammar ("pick up
the purple key"), otherwise the ``means`` the user gives ("fetch the purple key" means "pick up
the purple key"). The room is the first env seed, from ``env_seed`` (or from seeds never used for
collection), whose layout holds the objects the instruction names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from justask.paths import family_paths
from justask.seeding import stream_seeds

if TYPE_CHECKING:
    from justask.config import Params

# The command is registered with the CLI at start-up: minigrid, torch and the policy load when it runs.

SEARCH = 1000  # env seeds tried for a room holding the named objects


class AskError(ValueError):
    """The request cannot be carried out as given; the message says why and what to change."""


@dataclass
class AskResult:
    text: str
    instruction: str
    model: str
    train_seed: int
    level: str
    env_seed: int
    success: bool
    steps: int
    gif: Path | None


def _room_has_objects(env, seed: int, instruction) -> bool:
    from .env import reset_quietly

    reset_quietly(env, seed)
    verifier = instruction.to_minigrid()
    try:
        verifier.reset_verifier(env.unwrapped)
    except AssertionError:  # minigrid: "no object matching description"
        return False
    return all(desc.obj_set for desc in _descriptions(verifier))


def _descriptions(verifier) -> list:
    """Every object description (minigrid ``ObjDesc``) of a verifier, ``then`` sequences included."""
    out, stack = [], [verifier]
    while stack:
        v = stack.pop()
        stack += [getattr(v, name) for name in ("instr_a", "instr_b") if hasattr(v, name)]
        out += [getattr(v, name) for name in ("desc", "desc_move", "desc_fixed") if hasattr(v, name)]
    return out


def _candidate_seeds(params: Params, level: str, env_seed: int | None) -> list[int]:
    if env_seed is not None:
        return list(range(env_seed, env_seed + SEARCH))
    from .env import collect_env_seeds

    used = collect_env_seeds(params)
    return [s for s in stream_seeds(params.seed, f"language/ask/{level}", SEARCH) if s not in used]


def ask_language(text: str, params: Params, root: Path = Path("."), *, model: str | None = None,
                 train_seed: int | None = None, level: str | None = None, env_seed: int | None = None,
                 means: str | None = None, gif: bool = True, gif_path: Path | None = None) -> AskResult:
    """Roll out the trained policy ``model`` (default: the first in params) told ``text``; with
    ``gif``, save the episode to ``gif_path`` (default: under artifacts/language/ask/)."""
    import torch

    from justask.io import files_digest
    from justask.render import write_gif

    from .asking import rollout_asks
    from .encoders import unknown_words_message
    from .env import make_grid_env
    from .grammar import parse
    from .policy import load_policy, policy_provenance

    if "language" not in params.families:
        raise AskError("params.yaml has no families.language section; add one (see profiles/default.yaml)")
    cfg = params.family("language")
    model = model or next(iter(cfg.train.models))
    if model not in cfg.train.models:
        raise AskError(f"no model {model!r} in families.language.train.models; trained: {', '.join(cfg.train.models)}")
    train_seed = cfg.train.seeds[0] if train_seed is None else train_seed
    level = level or cfg.env.levels[0]
    ckpt = family_paths("language", root).train / model / f"seed{train_seed}" / "model.pt"
    if not ckpt.exists():
        raise AskError(f"{ckpt}: no trained policy; run `dvc repro train@language` (or pick --model/--train-seed "
                       f"among models {', '.join(cfg.train.models)} and seeds {cfg.train.seeds})")
    data = family_paths("language", root).relabel / cfg.train.models[model].data
    if not data.exists():
        raise AskError(f"{data}: missing, so the policy's provenance cannot be checked; "
                       "run `dvc repro relabel@language`")
    policy, vocab, _ = load_policy(ckpt, expect=policy_provenance(params, model, files_digest(data)))
    if policy.spec.encoder == "word" and (msg := unknown_words_message(text, vocab)):
        raise AskError(msg)
    try:
        instruction = parse(means or text)
    except ValueError as e:
        if means is not None:
            raise AskError(f"--means {means!r} is not in the instruction grammar: {e}") from None
        raise AskError(
            f"{text!r} is not in the instruction grammar, so minigrid's verifier cannot judge it ({e}). "
            "The policy can still be told it: add --means with the same request in the grammar, e.g. "
            "--means \"pick up the purple key\" (verbs: go to, pick up, open, put ... next to; "
            "'<a> then <b>')") from None
    env = make_grid_env(level)
    try:
        seed = next((s for s in _candidate_seeds(params, level, env_seed)
                     if _room_has_objects(env, s, instruction)), None)
    finally:
        env.close()
    if seed is None:
        raise AskError(f"no room of {level} among {SEARCH} env seeds holds what {instruction.text!r} names; "
                       "try another --level")
    ask = {"level": level, "env_seed": int(seed), "instruction": instruction.text, "text": text}
    [result] = rollout_asks(policy, vocab, [ask], torch.device("cpu"), frames=gif)
    path = None
    if gif:
        slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "ask"
        name = f"{slug}-{model}-seed{train_seed}-env{seed}.gif"
        path = gif_path or family_paths("language", root).base / "ask" / name
        write_gif(result["frames"], path, duration_ms=200)
    return AskResult(text, instruction.text, model, train_seed, level, int(seed), result["success"],
                     result["length"], path)


EXAMPLES = (
    'justask ask language "pick up the purple key"                                 # judged by the verifier',
    'justask ask language "fetch the purple key" --means "pick up the purple key"  # free wording',
    'justask ask language "go to the red ball" --model relabeled-word-factored --level BabyAI-GoToLocal-v0',
)


def command(
    text: str = typer.Argument(..., help='what to ask for, e.g. "pick up the purple key"'),
    model: str = typer.Option(None, help="trained model (default: the first of families.language.train.models)"),
    train_seed: int = typer.Option(None, help="training seed of the model (default: the first)"),
    level: str = typer.Option(None, help="BabyAI level whose room to use (default: the first configured)"),
    seed: int = typer.Option(None, help="env seed to start the search for a room holding the objects "
                                        "(default: seeds never used for collection)"),
    means: str = typer.Option(None, help="TEXT in the instruction grammar, when TEXT is free wording "
                                         "(the verifier judges success on it)"),
    gif: bool = typer.Option(True, help="save the episode as a GIF"),
    params: Path = typer.Option(Path("params.yaml"), help="parameters file"),
) -> None:
    """Ask a trained language policy, in words: roll it out once, print success and steps, save a GIF."""
    from justask.console import console, err_console, fail, load_params_or_fail
    from justask.errors import CheckpointError

    cfg = load_params_or_fail(params)
    try:
        r = ask_language(text, cfg, Path("."), model=model, train_seed=train_seed, level=level, env_seed=seed,
                         means=means, gif=gif)
    except AskError as e:
        err_console.print(f"[red]cannot ask that[/]\n{e}")
        raise typer.Exit(2) from None
    except CheckpointError as e:
        fail("cannot load the policy", e, 1)
    outcome = "[green]success[/]" if r.success else "[red]failed[/]"
    console.print(f"{r.model} (seed {r.train_seed}) asked {r.text!r} in {r.level}, env seed {r.env_seed}: "
                  f"{outcome} after {r.steps} steps" + (f" (judged as {r.instruction!r})" if r.instruction != r.text
                                                         else ""))
    if r.gif:
        console.print(f"GIF: {r.gif}")
