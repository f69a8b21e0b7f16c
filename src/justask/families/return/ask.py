"""Ask a trained return-family policy for a score: `justask ask return --score 100`.

A return-conditioned model (RvS, DT) is asked for the return whose normalized score is
``--score`` (0 random, 100 the expert, as in evaluate), its return-to-go counted down by the env's
rewards; the skill-conditioned model for ``--skill`` (1 = the dataset's best-rated behaviour); BC
and %BC read no condition and just act. Episodes run on env seeds never used for evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from justask.lunar import ask as lander
from justask.paths import family_paths


def ask_return(params, root: Path = Path("."), *, score: float = 100.0, skill: float = 1.0,
               dataset: str | None = None, model: str | None = None, train_seed: int | None = None,
               episodes: int = 5, env_seed: int | None = None,
               gif: bool = False) -> tuple[str, list[lander.AskedEpisode], Path | None]:
    """Roll out ``model`` of ``dataset`` (defaults: the first configured) ``episodes`` times;
    returns what was asked, in words, the episodes, and with ``gif`` the first one's GIF."""
    from justask.lunar.asking import load_for_env
    from justask.metrics import normalized_score, target_return
    from justask.models import CONDITIONED, SKILL_CONDITIONED

    from .provenance import expected_provenance

    if "return" not in params.families:
        raise lander.AskError("params.yaml has no families.return section; add one (see profiles/default.yaml)")
    fam = params.family("return")
    dataset = dataset or next(iter(fam.collect.datasets))
    if dataset not in fam.collect.datasets:
        raise lander.AskError(f"no dataset {dataset!r} in families.return.collect.datasets; "
                       f"configured: {', '.join(fam.collect.datasets)}")
    model, train_seed = lander.trained("return", fam, model or ("dt" if "dt" in fam.train.models
                                                         else next(iter(fam.train.models))), train_seed)
    paths = family_paths("return", root)
    ckpt = paths.run_dir(dataset, model, train_seed) / "model.pt"
    if not ckpt.exists():
        raise lander.AskError(f"{ckpt}: no trained policy; run `dvc repro train@return`")
    cond = json.loads(paths.conditions.read_text())["datasets"][dataset]  # what evaluate scores in
    refs = (cond["ref_min_score"], cond["ref_max_score"])
    policy, _ = load_for_env(ckpt, fam.env, provenance=expected_provenance(params, paths, dataset, model),
                             rerun="dvc repro train@return")
    if model in CONDITIONED:
        target, label = target_return(score / 100.0, *refs), f"score{score:g}"
        what = f"score {score:g} (return {target:.1f})"
    elif model in SKILL_CONDITIONED:
        if not 0.0 <= skill <= 1.0:
            raise lander.AskError(f"--skill {skill:g}: a skill rank is in [0, 1] "
                                  "(1 = the dataset's best-rated behaviour)")
        target, label, what = skill, f"skill{skill:g}", f"skill {skill:g}"
    else:
        target, label, what = 0.0, "unconditioned", "nothing (it reads no condition)"
    seeds = lander.ask_seeds(params.seed, f"return/ask/{dataset}", episodes, env_seed, paths.eval_seeds)
    rolled = lander.ask_lander(policy, fam.env, seeds, target)
    asked = [lander.AskedEpisode(e.seed, e.ret, float(normalized_score(e.ret, *refs)), len(e)) for e in rolled]
    name = f"{dataset}-{model}-seed{train_seed}-{label}-env{seeds[0]}.gif"
    path = lander.save_gif(policy, fam.env, target, seeds[0], paths.base / "ask" / name, fam.evaluate.gif_max_steps) \
        if gif else None
    return f"{model} of {dataset} (training seed {train_seed}) asked for {what}", asked, path


EXAMPLES = (
    "justask ask return --score 100                      # the first dataset's DT, asked for the expert's score",
    "justask ask return --score 60 --dataset mixed --model rvs --episodes 10",
    "justask ask return --model skill --skill 1 --dataset rare-expert   # the skill model, top-rated behaviour",
)


def command(
    score: float = typer.Option(100.0, help="normalized score to ask for: 0 random, 100 the expert (RvS, DT)"),
    skill: float = typer.Option(1.0, help="skill rank to ask for, in [0, 1] (the skill model)"),
    dataset: str = typer.Option(None, help="dataset the model was trained on (default: the first configured)"),
    model: str = typer.Option(None, help="trained model (default: dt, else the first configured)"),
    train_seed: int = lander.TRAIN_SEED, episodes: int = lander.EPISODES, seed: int = lander.SEED,
    gif: bool = lander.GIF, params: Path = lander.PARAMS,
) -> None:
    """Ask a trained lander policy for a score; print each episode's return and score."""
    lander.run_ask(params, lambda cfg: ask_return(cfg, Path("."), score=score, skill=skill, dataset=dataset,
                                                  model=model, train_seed=train_seed, episodes=episodes,
                                                  env_seed=seed, gif=gif))
