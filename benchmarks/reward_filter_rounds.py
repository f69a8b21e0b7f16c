"""Development ablation (issue 16): can filtering by the learned reward, iterated, take the
supervised route past the demonstrator?

The pipeline's rounds ask the return-conditioned policy for more learned return and add what it
does; every ask from the median up gets the clone's level, so the rounds stay flat. This is the
other route the README names: iterated filtered behaviour cloning on the *learned* return (as in
reward-weighted regression or expert iteration, with no value function). The reward family is
collected, relabeled and its ranking fitted at a development seed (``--seed``, default 1000), then:

* round 0: BC on the noise data's top ``--keep`` episodes by learned return (%BC);
* round r: the last policy rolled out with epsilon-random actions at ``--noise`` levels
  (``--episodes`` per level, env seeds of their own), every episode scored by the learned
  potential (Phi(s_{T-1}) - Phi(s_0)); the elite pool is the best ``--keep`` episodes of
  everything seen so far; BC is refitted on it (every training seed, the oracle filter's settings).

Each round's policies are scored (true return, 0 random, 100 expert) on 20 development env seeds
(``DEV_EVAL_SEEDS``, disjoint from the evaluation's); the env's reward never reaches selection or
training, it is only printed.

    .venv/bin/python benchmarks/reward_filter_rounds.py [--seed 1000] [--rounds 5] \\
        >> benchmarks/results/reward_filter_rounds.jsonl
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from reward_condition import ask, dev_reward_run
from rounds_ask import DEV_EVAL_SEEDS
from scipy.stats import trim_mean

from justask.device import pick_device
from justask.lunar.asking import load_for_env
from justask.lunar.jobs import chunk_jobs
from justask.metrics import normalized_score
from justask.policies import fit_policy
from justask.rollout import rollout_many
from justask.seeding import stream_seeds
from justask.steps import StepTable, blank_rewards, build_step_table, data_spec
from justask.tracking import setup_mlflow


def potential_returns(reward, table: StepTable) -> np.ndarray:
    values = reward(table.observations)
    return np.array([values[b - 1] - values[a] for a, b in zip(table.starts[:-1], table.starts[1:], strict=True)])


def subset(table: StepTable, episodes: np.ndarray) -> StepTable:
    """The ``episodes`` of ``table`` (in order) as a table of their own, conditions and splits kept."""
    spans = [(table.starts[e], table.starts[e + 1]) for e in episodes]
    rows = np.concatenate([np.arange(a, b) for a, b in spans])
    lengths = np.array([b - a for a, b in spans])
    return StepTable(observations=table.observations[rows], actions=table.actions[rows], rtg=table.rtg[rows],
                     timesteps=table.timesteps[rows], episode=np.repeat(np.arange(len(episodes)), lengths),
                     starts=np.concatenate([[0], np.cumsum(lengths)]), returns=table.returns[episodes],
                     split=table.split[episodes])


def main() -> None:
    from justask.families.reward.clone import CloneJob, run_clone_job
    from justask.families.reward.rounds import append_episodes

    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--override", type=json.loads, default={}, help="changes to the reward section (JSON)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep", type=int, default=110, help="elite pool size (episodes)")
    ap.add_argument("--episodes", type=int, default=100, help="rollouts per noise level per round")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3])
    args = ap.parse_args()
    seeds = DEV_EVAL_SEEDS[:20]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        params, paths, reward, steps, meta, summary = dev_reward_run(args.params, args.seed, args.override, root)
        fam = params.family("reward")
        device, cpu = pick_device(fam.train.device), torch.device("cpu")
        mlflow = setup_mlflow(params.tracking, root)
        lo, hi = summary["ref_min_score"], summary["ref_max_score"]
        steps.returns = potential_returns(reward, steps)  # learned; the env's never enters selection
        pool = subset(steps, np.sort(np.argsort(-steps.returns, kind="stable")[:args.keep]))
        mcfg = fam.train.oracle.model_copy(update={"tune": False})
        true_mean = None
        for r in range(args.rounds + 1):
            if r > 0:
                ckpt = str((paths.run_dir(f"filter{r - 1}", "bc", fam.train.seeds[0]) / "model.pt").absolute())
                jobs = {}
                for e in args.noise:
                    rs = stream_seeds(args.seed, f"bench/filter-rounds/{r}/{e:g}", args.episodes)
                    assert not set(rs) & set(DEV_EVAL_SEEDS)
                    jobs[f"{e:g}"] = [CloneJob(ckpt, e, j.seeds, j.first_index, fam.env, j.num_envs)
                                      for j in chunk_jobs("clone", e, rs, fam.env, fam.collect.workers,
                                                          fam.collect.envs_per_worker)]
                pools = rollout_many(jobs, fam.collect.workers, f"filter round {r}", run=run_clone_job,
                                     scale=params.scale)
                episodes = [ep for key in jobs for ep in pools[key]]
                true_mean = float(np.mean([ep.ret for ep in episodes]))  # reported only
                split = np.zeros(len(episodes), np.int8)
                split[::10] = 1
                new = build_step_table(blank_rewards(episodes), split)
                new.returns = potential_returns(reward, new)
                both = append_episodes(pool, new)
                pool = subset(both, np.sort(np.argsort(-both.returns, kind="stable")[:args.keep]))
            pool.rtg = np.zeros(len(pool.rtg), np.float32)
            pmeta = {**meta, "ref_min_score": float(pool.returns.min()), "ref_max_score": float(pool.returns.max())}
            fit_policy(mlflow, paths=paths, dataset=f"filter{r}", folder=f"filter{r}", kind="bc", mcfg=mcfg,
                       table=pool, spec=data_spec(pool, pmeta), cfg=fam.train, seed=params.seed, device=device,
                       profile=params.profile, register_as=None)
            rets = []
            for s in fam.train.seeds:
                model, _ = load_for_env(paths.run_dir(f"filter{r}", "bc", s) / "model.pt", fam.env, cpu)
                rets += ask(model, fam.env, seeds, 0.0, "bc", reward)
            score = normalized_score(rets, lo, hi)
            print(json.dumps({
                "round": r, "seed": args.seed, "keep": args.keep, "episodes_per_noise": args.episodes,
                "noise": args.noise, "pool_learned_return": [round(float(pool.returns.min()), 2),
                                                             round(float(pool.returns.mean()), 2)],
                "rollouts_true_return_mean": None if true_mean is None else round(true_mean, 1),
                "score_mean": round(float(score.mean()), 1), "score_iqm": round(float(trim_mean(score, 0.25)), 1),
                "episodes": len(score), "demonstrator": round(summary["groups"]["demos"]["score"], 1),
                "clone": round(summary["groups"]["noise/0"]["score"], 1), "override": args.override,
                "seconds": round(time.perf_counter() - t0, 1), "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
