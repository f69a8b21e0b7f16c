"""Ask a trained D-REX policy for more learned reward: `justask ask reward --quantile 1.1`.

A policy of round ``--round`` (0: fitted on the noise data) is asked for the learned return at
quantile ``--quantile`` of the data it was fitted on (1 = its best episode, 1.1 = a tenth of the
range past it; :func:`.asks.quantile_target`), or for ``--learned-return`` itself, counting down
as evaluate does (a potential's ask is held). Each episode's learned return (what was asked for)
is printed beside the env's return and score, which the policy never saw.
"""

from __future__ import annotations

from pathlib import Path

import typer

from justask.lunar import ask as lander
from justask.paths import family_paths


def ask_reward(params, root: Path = Path("."), *, quantile: float = 1.1, learned_return: float | None = None,
               round_: int = 0, model: str | None = None, train_seed: int | None = None, episodes: int = 5,
               env_seed: int | None = None, gif: bool = False) -> tuple[str, list[lander.AskedEpisode], Path | None]:
    """Roll out a round's ``model`` (default: the first configured) ``episodes`` times; returns
    what was asked, in words, the episodes, and with ``gif`` the first one's GIF."""
    import json

    import numpy as np

    from justask.lunar.asking import load_for_env
    from justask.metrics import normalized_score
    from justask.steps import StepTable

    from .asks import learned_folder, policy_folder, policy_provenance, quantile_target, ranking_provenance
    from .ranking import episode_rewards, load_learned_reward

    if "reward" not in params.families:
        raise lander.AskError("params.yaml has no families.reward section; add one (see profiles/default.yaml)")
    fam = params.family("reward")
    model, train_seed = lander.trained("reward", fam, model or next(iter(fam.train.models)), train_seed)
    if not 0 <= round_ <= fam.train.rounds.rounds:
        raise lander.AskError(f"--round {round_}: the rounds trained are 0 to {fam.train.rounds.rounds} "
                       "(families.reward.train.rounds.rounds)")
    paths = family_paths("reward", root)
    ckpt = paths.run_dir(policy_folder(round_), model, train_seed) / "model.pt"
    if not ckpt.exists():
        raise lander.AskError(f"{ckpt}: no trained policy; run `dvc repro train@reward`")
    reward, _ = load_learned_reward(root, expect=ranking_provenance(params, paths))
    data, _ = StepTable.load(paths.train / learned_folder(round_), "dvc repro train@reward")
    if learned_return is None:
        target = quantile_target(quantile, data.returns)
        what = f"learned return {target:.2f} (quantile {quantile:g} of round {round_}'s data)"
    else:
        target, what = learned_return, f"learned return {learned_return:g}"
    summary = json.loads(paths.collect_summary.read_text())
    refs = (summary["ref_min_score"], summary["ref_max_score"])
    policy, _ = load_for_env(ckpt, fam.env, provenance=policy_provenance(params, paths, round_, model),
                             rerun="dvc repro train@reward")
    seeds = lander.ask_seeds(params.seed, f"reward/ask/round{round_}", episodes, env_seed, paths.eval_seeds)
    rolled = lander.ask_lander(policy, fam.env, seeds, target, reward.countdown)
    asked = [lander.AskedEpisode(e.seed, e.ret, float(normalized_score(e.ret, *refs)), len(e),
                          float(np.sum(episode_rewards(reward(np.asarray(e.observations[:len(e)])), reward.form))))
             for e in rolled]
    name = f"{model}-round{round_}-seed{train_seed}-learned{target:.2f}-env{seeds[0]}.gif"
    path = lander.save_gif(policy, fam.env, target, seeds[0], paths.base / "ask" / name, fam.evaluate.gif_max_steps,
                    reward.countdown) if gif else None
    return f"{model} of round {round_} (training seed {train_seed}) asked for {what}", asked, path


EXAMPLES = (
    "justask ask reward                              # round 0's policy, quantile 1.1 of its data's learned returns",
    "justask ask reward --quantile 0.99 --round 3    # the last round's policy, inside its data's range",
    "justask ask reward --learned-return 4 --episodes 10 --seed 7",
)


def command(
    quantile: float = typer.Option(1.1, min=0.0, help="quantile of the data's learned returns to ask for "
                                                      "(1 = the best episode; above 1, past it)"),
    learned_return: float = typer.Option(None, help="the learned return to ask for (instead of --quantile)"),
    round_: int = typer.Option(0, "--round", min=0, help="improvement round whose policy to ask (0: the first fit)"),
    model: str = typer.Option(None, help="trained model (default: the first configured)"),
    train_seed: int = lander.TRAIN_SEED, episodes: int = lander.EPISODES, seed: int = lander.SEED,
    gif: bool = lander.GIF, params: Path = lander.PARAMS,
) -> None:
    """Ask a D-REX policy for a learned return; print each episode's learned and true return."""
    lander.run_ask(params, lambda cfg: ask_reward(cfg, Path("."), quantile=quantile, learned_return=learned_return,
                                           round_=round_, model=model, train_seed=train_seed, episodes=episodes,
                                           env_seed=seed, gif=gif))
