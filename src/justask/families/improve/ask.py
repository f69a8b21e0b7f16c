"""Run a frozen in-context model on a goal you choose: `justask ask improve --goal 0 8`.

The model (``ad`` by default) gets ``--episodes`` consecutive episodes on that goal with no weight
update, keeping its own context; each episode's return is printed beside the best an episode can
earn there. With ``--gif``, its first and last episode side by side go to
``artifacts/improve/ask/``. A training goal is allowed but said so: only a held-out one tests
in-context learning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

EXAMPLES = (
    "justask ask improve --goal 0 8                 # AD on the corner cell (0, 8), 20 episodes",
    "justask ask improve --goal 2 2 --model ed      # the control: expert distillation on a held-out goal",
    "justask ask improve --goal 7 7 --model hindsight  # AD trained on hindsight labels",
    "justask ask improve --goal 6 1 --episodes 40 --seed 3 --gif",
)


class AskError(ValueError):
    """The request cannot be carried out as given; the message says why and what to change."""


def ask_improve(params, root: Path, goal: tuple[int, int], *, model: str = "ad", train_seed: int | None = None,
                episodes: int = 20, seed: int = 0, gif: bool = False) -> tuple[str, np.ndarray, float, Path | None]:
    """(what was run, in words; the return of each episode; the best return an episode can earn on
    the goal; the GIF's path or None)."""
    from justask.paths import family_paths

    from .goals import best_return, start_cell, training_goals
    from .incontext import run_in_context, write_first_and_last
    from .model import load_model, model_provenance

    if "improve" not in params.families:
        raise AskError("params.yaml has no families.improve section; add one (see profiles/default.yaml)")
    fam = params.family("improve")
    size, horizon = fam.env.size, fam.env.max_episode_steps
    if not all(0 <= v < size for v in goal) or tuple(goal) == start_cell(size):
        raise AskError(f"--goal {goal[0]} {goal[1]}: a goal is a cell of the {size} x {size} room other than the start "
                       f"{list(start_cell(size))} (rows and columns 0..{size - 1})")
    if model not in fam.train.models:
        raise AskError(f"--model {model}: trained models are {', '.join(fam.train.models)}")
    train_seed = fam.train.seeds[0] if train_seed is None else train_seed
    if train_seed not in fam.train.seeds:
        raise AskError(f"--train-seed {train_seed}: trained seeds are {fam.train.seeds}")
    paths = family_paths("improve", root)
    ckpt = paths.train / model / f"seed{train_seed}" / "model.pt"
    if not ckpt.exists():
        raise AskError(f"{ckpt}: no trained model; run `dvc repro train@improve`")
    net, _ = load_model(ckpt, model_provenance(params, model, root))
    returns, cells = run_in_context(net, np.asarray([goal], np.int64), episodes, size, horizon, seed, keep_cells=gif)
    kind = "a training goal (seen in training)" if tuple(goal) in training_goals(fam.env) else "a held-out goal"
    what = (f"{model} (training seed {train_seed}) on goal {list(goal)}, {kind}, {episodes} episodes, "
            f"sampling seed {seed}")
    path = None
    if gif:
        name = f"{model}-seed{train_seed}-goal{goal[0]}-{goal[1]}-s{seed}.gif"
        path = write_first_and_last(cells[0], goal, size, paths.base / "ask" / name)
    return what, returns[0], best_return(tuple(goal), size, horizon), path


def command(
    goal: tuple[int, int] = typer.Option(..., help="the goal cell: row column"),
    model: str = typer.Option("ad", help="ad (Algorithm Distillation), hindsight (AD on hindsight labels) or ed "
                                         "(expert distillation, the control)"),
    train_seed: int = typer.Option(None, help="training seed of the model (default: the first trained)"),
    episodes: int = typer.Option(20, min=1, max=500, help="consecutive episodes to run"),
    seed: int = typer.Option(0, help="seed of the model's action sampling"),
    gif: bool = typer.Option(False, help="save the first and last episode as a GIF"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    """Run a frozen in-context model on a goal; print the return of each episode."""
    from justask.console import console, err_console, load_params_or_fail
    from justask.errors import CheckpointError, StageFailed

    cfg = load_params_or_fail(params)
    try:
        what, returns, best, path = ask_improve(cfg, Path("."), goal, model=model, train_seed=train_seed,
                                                episodes=episodes, seed=seed, gif=gif)
    except (AskError, StageFailed, CheckpointError, FileNotFoundError) as e:
        err_console.print(f"[red]cannot ask that[/]\n{e}")
        raise typer.Exit(2) from None
    console.print(what)
    console.print("return per episode: " + " ".join(f"{r:g}" for r in returns))
    console.print(f"best possible per episode: {best:g}; first {min(5, len(returns))}: mean "
                  f"{returns[:5].mean():.1f}, last {min(5, len(returns))}: mean {returns[-5:].mean():.1f}")
    if path is not None:
        console.print(f"GIF: {path}")
