"""evaluate (reward): does the learned reward extrapolate, and does asking for more of it help?

1. **Learned vs true return** on the held-out trajectories (policies the ranking never saw, from
   worse than to much better than the demonstrator): Spearman and Pearson correlation over all of
   them and over those better than the demonstrator alone; per-behaviour means; the scatter plot
   data ``metrics/reward.csv``.
2. **Asking for more.** Each return-conditioned policy (every training seed, every improvement
   round) is asked, on env seeds disjoint from collection, for learned returns at the
   ``evaluate.target_quantiles`` of the noise data's episode learned returns (1 = its best
   episode, above 1 = more than anything in it). The return-to-go counts down with the *learned*
   reward; the score is the env's true return, normalised (0 = random, 100 = expert) with IQM and
   bootstrap CIs; per round, every ask's score (``rounds`` in the metrics, ``rounds.png``).
   Baselines on the same seeds: the demonstrator itself, its BC clone, the oracle filter (%BC
   on the noise data's top episodes by true return: what the data allow without extrapolation)
   and PPO on the learned reward (D-REX's own route, greedy actions).
3. **Cost:** every route's env steps beside its score (``cost`` in the metrics).

Writes ``metrics/reward.json``, per-episode results and a GIF, and logs them to MLflow.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from justask.config import Params
from justask.datasets import read_episodes, read_metadata
from justask.device import pick_device
from justask.errors import StageFailed
from justask.executors import run_all
from justask.io import atomic_write, rows_csv, write_json, write_text
from justask.lunar.asking import EpisodeResult, RolloutJob, load_for_env, record_gif, rollout_checkpoints
from justask.lunar.jobs import chunk_jobs, rollout_behaviours
from justask.metrics import ANY, correlation, round_metric, summarize, target_key
from justask.paths import family_paths
from justask.render import figure_to
from justask.seeding import held_out_seeds, seed_everything
from justask.steps import StepTable
from justask.tracking import setup_mlflow

from .asks import (
    clone_provenance,
    learned_folder,
    oracle_provenance,
    policy_folder,
    policy_provenance,
    ppo_provenance,
    quantile_target,
    ranking_provenance,
    round_model,
)
from .ppo import PPOEvalJob, load_ppo_policy, run_ppo_eval_job
from .ranking import countdown_fn, load_learned_reward
from .streams import collect_env_seeds


def reward_correlation(true: np.ndarray, predicted: np.ndarray, demonstrator_return: float) -> dict:
    """Spearman and Pearson of predicted vs true returns, overall and on episodes whose true
    return beats the demonstrator's mean."""
    better = true > demonstrator_return
    return {
        "episodes": int(len(true)), "spearman": correlation("spearman", true, predicted),
        "pearson": correlation("pearson", true, predicted),
        "better_than_demonstrator": {
            "episodes": int(better.sum()), "spearman": correlation("spearman", true[better], predicted[better]),
            "pearson": correlation("pearson", true[better], predicted[better])},
    }


def judge_reward(reward, held: list[dict], behaviours: list[str], demonstrator_return: float,
                 ) -> tuple[dict, pd.DataFrame]:
    """Learned against true return of the held-out episodes (Minari dicts): the correlations of
    :func:`reward_correlation`, per-behaviour means and their Spearman; and the scatter points."""
    true = np.array([float(np.sum(e["rewards"])) for e in held])
    predicted = np.array([float(reward.episode_rewards(e["observations"][:-1]).sum()) for e in held])
    scatter = pd.DataFrame({"behaviour": behaviours, "true_return": true, "predicted_return": predicted})
    ranking = reward_correlation(true, predicted, demonstrator_return)
    ranking["per_behaviour"] = {
        name: {"episodes": len(g), "true_return_mean": round_metric(g.true_return.mean()),
               "predicted_return_mean": round_metric(g.predicted_return.mean())}
        for name, g in scatter.groupby("behaviour", sort=False)}
    means = scatter.groupby("behaviour", sort=False)[["true_return", "predicted_return"]].mean()
    ranking["spearman_behaviour_means"] = correlation("spearman", means.true_return, means.predicted_return)
    return ranking, scatter


def headline_ask(fam) -> float:
    """The ask declared before evaluation as the rounds' headline: the rounds' own ask when it is
    one of the evaluated quantiles, else the highest of them."""
    q = fam.evaluate.target_quantiles
    return fam.train.rounds.ask if fam.train.rounds.ask in q else q[-1]


def evaluate(params: Params, root: Path = Path(".")) -> dict:
    fam = params.family("reward")
    ecfg = fam.evaluate
    paths = family_paths("reward", root)
    device = pick_device(fam.train.device)
    seed_everything(params.seed)
    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    try:
        summary = json.loads(paths.collect_summary.read_text())
        reward, ensemble = load_learned_reward(root, device, ranking_provenance(params, paths))
        learned, learned_meta = StepTable.load(paths.train / "learned", "dvc repro train@reward")
        held = read_episodes(paths.dataset("held_out"))
        held_behaviours = json.loads(read_metadata(paths.dataset("held_out"))["behaviours"])
    except FileNotFoundError as e:
        raise StageFailed(f"{e}; run `dvc repro train@reward`") from None
    ref_min, ref_max = summary["ref_min_score"], summary["ref_max_score"]
    demo_return = summary["groups"]["demos"]["mean_return"]

    # 1. Learned vs true return on held-out trajectories.
    ranking, scatter = judge_reward(reward, held, held_behaviours, demo_return)
    ranking["val_pair_accuracy"] = round_metric(ensemble["val_pair_accuracy"])
    ranking["form"] = reward.form

    # 2. Policies (every round's) asked for learned returns, and the baselines, on held-out env seeds.
    seeds = held_out_seeds(paths.eval_seeds, ecfg.episodes, collect_env_seeds(params))
    lo, hi = learned_meta["learned_return_min"], learned_meta["learned_return_max"]
    n_rounds = fam.train.rounds.rounds
    try:  # each round's policies are asked for quantiles of the data they were fitted on
        round_tables = [learned] + [StepTable.load(paths.train / learned_folder(r), "dvc repro train@reward")[0]
                                    for r in range(1, n_rounds + 1)]
    except FileNotFoundError as e:
        raise StageFailed(str(e)) from None
    round_returns = [t.returns for t in round_tables]
    asks_by_round = [[(q, quantile_target(q, returns)) for q in ecfg.target_quantiles] for returns in round_returns]
    rows: list[dict] = []

    def add(model: str, seed: int, results, fraction: float | None, target: float | None) -> None:
        rows.extend({"dataset": "noise", "model": model, "seed": seed,
                     "target_fraction": np.nan if fraction is None else fraction,
                     "target_return": np.nan if target is None else target, "episode": i, "env_seed": r.env_seed,
                     "ret": r.ret, "length": r.length} for i, r in enumerate(results))

    # One job per policy and seed, plus the clone; each loads its checkpoint (and the learned
    # reward) from file wherever it runs, so results match the in-process run.
    keys, jobs = [], []
    expected = {(r, kind): policy_provenance(params, paths, r, kind) for r in range(n_rounds + 1)
                for kind in fam.train.models}
    for r, asks in enumerate(asks_by_round):
        for kind in fam.train.models:
            for tseed in fam.train.seeds:
                ckpt = paths.run_dir(policy_folder(r), kind, tseed) / "model.pt"
                try:
                    load_for_env(ckpt, fam.env, device, expected[r, kind], "dvc repro train@reward")
                except FileNotFoundError:
                    raise StageFailed(f"{ckpt}: missing; run `dvc repro train@reward`") from None
                keys.append((round_model(kind, r), tseed, asks))
                jobs.append(RolloutJob(ckpt.absolute(), fam.env, tuple(s for _ in asks for s in seeds),
                                       tuple(t for _, t in asks for _ in seeds), ecfg.num_envs, str(device),
                                       reward=partial(countdown_fn, root.absolute())))
    # (name, training seed, checkpoint, its expected provenance, the stage that writes it)
    references = [("bc", 0, paths.collect / "clone" / "model.pt", clone_provenance(params, paths),
                   "dvc repro collect@reward")]
    if fam.train.oracle is not None:
        expect = oracle_provenance(params, paths)
        references += [("oracle-filter", t, paths.run_dir("oracle", "pct_bc", t) / "model.pt", expect,
                        "dvc repro train@reward") for t in fam.train.seeds]
    for _, _, ckpt, expect, rerun in references:
        if not ckpt.exists():
            raise StageFailed(f"{ckpt}: missing; run `{rerun}`")
        load_for_env(ckpt, fam.env, device, expect, rerun)
        jobs.append(RolloutJob(ckpt.absolute(), fam.env, tuple(seeds), (0.0,) * len(seeds), ecfg.num_envs, str(device)))
    results = rollout_checkpoints(jobs, params.scale.workers, params.scale)
    policy_results, reference_results = results[:len(keys)], results[len(keys):]
    if fam.train.ppo is not None:  # the RL reference, greedy, on the same seeds
        ppo_jobs = [PPOEvalJob((paths.train / "ppo" / f"seed{t}" / "model.pt").absolute(), fam.env, tuple(seeds),
                               ecfg.num_envs) for t in fam.train.seeds]
        expect = ppo_provenance(params, paths)
        for job in ppo_jobs:
            if not job.checkpoint.exists():
                raise StageFailed(f"{job.checkpoint}: missing; run `dvc repro train@reward`")
            load_ppo_policy(job.checkpoint, fam.env, expect)
        for t, res in zip(fam.train.seeds, run_all(run_ppo_eval_job, ppo_jobs, params.scale.workers, params.scale),
                          strict=True):
            add("ppo", t, [EpisodeResult(0.0, seed, ret, length) for seed, ret, length in res], None, None)
    for (model, tseed, asks), results in zip(keys, policy_results, strict=True):
        for j, (q, t) in enumerate(asks):
            add(model, tseed, results[j * len(seeds):(j + 1) * len(seeds)], q, t)
    print(f"evaluate (reward): policies done ({time.perf_counter() - t0:.0f}s)")
    for (name, tseed, *_), res in zip(references, reference_results, strict=True):
        add(name, tseed, res, None, None)
    demo = rollout_behaviours({"demonstrator": chunk_jobs(fam.collect.demonstrator, 0.0, seeds, fam.env,
                                                    fam.collect.workers, fam.collect.envs_per_worker)},
                        fam.collect.workers, "evaluate (reward): the demonstrator", params.scale)["demonstrator"]
    add("demonstrator", 0, [EpisodeResult(0.0, e.seed, e.ret, len(e)) for e in demo], None, None)
    episodes = pd.DataFrame(rows)
    policies = summarize(episodes, ref_min, ref_max, learned.returns, ecfg.bootstrap_reps, params.seed)
    demo_score = policies["models"]["demonstrator"]["any"]["score_iqm"]
    for model in [m for m in policies["models"] if m != "demonstrator"]:
        for cell in policies["models"][model].values():
            cell["vs_demonstrator"] = round_metric(cell["score_iqm"] / demo_score) if demo_score else None
    rounds = round_scores(policies["models"], fam.train.models, n_rounds,
                          json.loads((paths.train / "rounds.json").read_text())["rounds"])
    headline = target_key(headline_ask(fam))
    ppo_steps = None
    if fam.train.ppo is not None:
        ppo_runs = json.loads((paths.train / "ppo" / "runs.json").read_text())["runs"]
        ppo_steps = max(r["env_steps"] for r in ppo_runs)
    cost = route_costs(policies["models"], summary, round_tables, fam, headline, ppo_steps)

    metrics = {
        "ref_min_score": ref_min, "ref_max_score": ref_max, "demonstrator": fam.collect.demonstrator,
        "demonstrator_return_mean": round_metric(demo_return), "seeds": list(fam.train.seeds),
        "episodes_per_target": ecfg.episodes, "target_quantiles": ecfg.target_quantiles,
        "asked_learned_returns": [{f"t{q:g}": round_metric(t) for q, t in asks} for asks in asks_by_round],
        "learned_return_range": [round_metric(lo), round_metric(hi)],
        "ranking": ranking, "policies": policies, "rounds": rounds, "rounds_headline_ask": headline,
        "cost": cost,
    }
    out = paths.evaluate
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "episodes.csv", lambda p: episodes.to_csv(p, index=False, float_format="%.6g"))
    write_text(paths.plot, rows_csv(scatter.round(4).to_dict("records")))
    return_scatter(scatter, out / "scatter.png", demo_return)
    rounds_plot(rounds, fam.train.models, headline, demo_score, out / "rounds.png")
    write_json(paths.metrics, metrics)
    gif = None
    if ecfg.gif:
        kind = next(iter(fam.train.models))  # the last round's policy, asked for the most
        model, _ = load_for_env(paths.run_dir(policy_folder(n_rounds), kind, fam.train.seeds[0]) / "model.pt",
                                fam.env, device)
        q, target = asks_by_round[n_rounds][-1]
        gif = record_gif(model, fam.env, target, seeds[0], out / f"{round_model(kind, n_rounds)}-t{q:g}.gif", device,
                         max_steps=ecfg.gif_max_steps, reward_fn=reward.countdown)
    _log_mlflow(params, root, metrics, paths, gif)
    print(f"evaluate (reward): learned vs true return on held-out trajectories: Spearman {ranking['spearman']}, "
          f"better-than-demonstrator Spearman {ranking['better_than_demonstrator']['spearman']} "
          f"({time.perf_counter() - t0:.0f}s)")
    return metrics


def route_costs(models: dict, summary: dict, round_tables: list[StepTable], fam, headline: str,
                ppo_steps: int | None) -> list[dict]:
    """What each route to a policy cost in env steps, beside its true score: the collected data
    (demonstrations and noise levels, which every route here starts from), plus each improvement
    round's rollouts (all of them, whichever policy rolled them out) for the supervised route, plus
    one PPO run's own steps (``ppo_steps``) for the RL route."""
    groups = summary["groups"]
    collected = sum(round(g["episodes"] * g["mean_length"]) for name, g in groups.items()
                    if name == "demos" or name.startswith("noise/"))
    rows_per_round = [int(t.starts[-1]) for t in round_tables]
    keep = ("score_iqm", "score_iqm_lo", "score_iqm_hi", "vs_demonstrator")

    def row(route: str, model: str, key: str, extra: int, reads_env_reward: bool = False) -> dict:
        return {"route": route, "model": model, "ask": None if key == ANY else key, "env_steps": collected + extra,
                "extra_env_steps": extra, "reads_env_reward": reads_env_reward,
                **{k: models[model][key][k] for k in keep}}

    rows = [row("demonstrator's clone (BC)", "bc", ANY, 0)]
    for kind in fam.train.models:
        for r in range(len(round_tables)):
            route = "asked, no rounds" if r == 0 else f"asked, {r} round{'s' * (r > 1)}"
            rows.append(row(route, round_model(kind, r), headline, rows_per_round[r] - rows_per_round[0]))
    if ppo_steps is not None:
        rows.append(row("PPO on the learned reward", "ppo", ANY, ppo_steps))
    if fam.train.oracle is not None:
        rows.append(row("oracle filter (reads the true reward)", "oracle-filter", ANY, 0, reads_env_reward=True))
    return rows


def _log_mlflow(params: Params, root: Path, metrics: dict, paths, gif: Path | None) -> None:
    mlflow = setup_mlflow(params.tracking, root)
    with mlflow.start_run(run_name="evaluate-reward"):
        mlflow.set_tags({"family": "reward", "stage": "evaluate", "profile": params.profile})
        r = metrics["ranking"]
        flat = {"ranking.spearman": r["spearman"], "ranking.pearson": r["pearson"],
                "ranking.better.spearman": r["better_than_demonstrator"]["spearman"],
                "ranking.val_pair_accuracy": r["val_pair_accuracy"]}
        for model, cells in metrics["policies"]["models"].items():
            for key, cell in cells.items():
                flat[f"{model}.{key}.score_iqm"] = cell["score_iqm"]
        mlflow.log_metrics({k: v for k, v in flat.items() if v is not None})
        mlflow.log_artifact(str(paths.metrics))
        mlflow.log_artifact(str(paths.plot))
        mlflow.log_artifact(str(paths.evaluate / "scatter.png"))
        mlflow.log_artifact(str(paths.evaluate / "rounds.png"))
        if gif is not None:
            mlflow.log_artifact(str(gif))


def return_scatter(points, path: Path, demonstrator_return: float) -> Path:
    """Learned vs true return per held-out trajectory, one colour per behaviour; the dashed line
    marks the demonstrator's mean true return. ``points``: behaviour, true_return, predicted_return."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, g in points.groupby("behaviour", sort=False):
        ax.scatter(g["true_return"], g["predicted_return"], s=12, label=name)
    ax.axvline(demonstrator_return, ls="--", color="grey", label="demonstrator (mean)")
    ax.set_xlabel("true return")
    ax.set_ylabel("learned return")
    ax.legend(fontsize=7)
    return figure_to(path, fig)


def round_scores(models: dict, kinds, n_rounds: int, summaries: list[dict]) -> list[dict]:
    """Per round and policy kind, every ask's true score (IQM, 95% CI, x demonstrator), beside what
    the round added; round 0 is the policies fitted on the noise data alone. No ask is picked by
    its score here: that would select on the evaluation seeds."""
    keep = ("score_iqm", "score_iqm_lo", "score_iqm_hi", "vs_demonstrator")
    return [{"round": r, **({} if r == 0 else {k: round_metric(v) if isinstance(v, float) else v
                                               for k, v in summaries[r - 1].items() if k != "round"}),
             **{kind: {key: {k: cell[k] for k in keep} for key, cell in models[round_model(kind, r)].items()}
                for kind in kinds}}
            for r in range(n_rounds + 1)]


def rounds_plot(rounds: list[dict], kinds, headline: str, demo_score: float, path: Path) -> Path:
    """True score per improvement round (IQM with its 95% CI) at the ``headline`` ask, the other
    asks faint, against the demonstrator's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    x = [r["round"] for r in rounds]
    for kind in kinds:
        for key in rounds[0][kind]:
            y = np.array([r[kind][key]["score_iqm"] for r in rounds])
            if key != headline:
                ax.plot(x, y, lw=0.8, alpha=0.35, color="grey")
                continue
            lo, hi = (np.array([r[kind][key][b] for r in rounds]) for b in ("score_iqm_lo", "score_iqm_hi"))
            ax.errorbar(x, y, yerr=[y - lo, hi - y], marker="o", capsize=3, label=f"{kind} asked {key[1:]}")
    ax.axhline(demo_score, ls="--", color="grey", label="demonstrator")
    ax.set_xticks(x)
    ax.set_xlabel("round (0: noise data only)")
    ax.set_ylabel("true score (IQM, 95% CI)")
    ax.legend(fontsize=7)
    return figure_to(path, fig)
