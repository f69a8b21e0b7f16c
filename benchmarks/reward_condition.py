"""Development ablation (issue 16): which condition lets the reward family's RvS follow its
learned potential past the clone?

The recorded RvS reads the episode's learned return, Phi(s_{T-1}) - Phi(s_0), held for the whole
episode, and every ask from the median up gets the clone's score (`reward_ask_range.py`). This
script collects the reward family's data at a development seed (``--seed``, default 1000), fits
the ranking ensemble with the active params, and then fits RvS (the active params' settings, no
tuning, every training seed) on the same noise data under each condition:

* ``held``: the episode's learned return at every step (the default);
* ``rtg``: the learned return-to-go, Phi(s_{T-1}) - Phi(s_t); asked, it is counted down with Phi
  of each state reached (target - (Phi(s_t) - Phi(s_0)));
* ``gain<k>``: the potential's gain over the next ``k`` steps, Phi(s_{min(t+k, T-1)}) - Phi(s_t),
  held at the ask: "at every step, act so that the next k steps gain this much".

Each is asked for quantiles of its own training conditions (episode returns for ``held`` and
``rtg``, per-step conditions for ``gain<k>``) on 20 development env seeds (``DEV_EVAL_SEEDS``,
disjoint from the evaluation's), and prints the true score (0 random, 100 expert; mean, IQM)
against the demonstrator's and the clone's on the same seeds.

    .venv/bin/python benchmarks/reward_condition.py [--seed 1000] [condition ...] \\
        >> benchmarks/results/reward_condition.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ranking_objective import dev_params, merge
from rounds_ask import DEV_EVAL_SEEDS
from scipy.stats import trim_mean

from justask.conditioned import ConditionedRollout
from justask.config import load_params
from justask.device import pick_device
from justask.lunar.asking import load_for_env
from justask.lunar.env import from_config
from justask.metrics import normalized_score
from justask.paths import family_paths
from justask.policies import fit_policy
from justask.rollout import run_episodes
from justask.seeding import seed_everything
from justask.steps import StepTable, data_spec
from justask.tracking import setup_mlflow

QUANTILES = (0.5, 0.9, 0.99)


def conditions(values: np.ndarray, starts: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-step conditions and per-episode learned returns from the potential's ``values``."""
    cond, returns = np.empty_like(values), []
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        phi = values[a:b]
        returns.append(phi[-1] - phi[0])
        if name == "held":
            cond[a:b] = phi[-1] - phi[0]
        elif name == "rtg":
            cond[a:b] = phi[-1] - phi
        else:
            k = int(name.removeprefix("gain"))
            ahead = np.minimum(np.arange(len(phi)) + k, len(phi) - 1)
            cond[a:b] = phi[ahead] - phi
    return cond, np.asarray(returns)


class PotentialRollout(ConditionedRollout):
    """Asked for ``target`` learned return, conditioned at step t on target - (Phi(s_t) - Phi(s_0))."""

    def __init__(self, *args, phi, **kw):
        super().__init__(*args, **kw)
        self.phi, self.first = phi, np.zeros(len(self.remaining), np.float32)
        self.asked = np.zeros(len(self.remaining), np.float32)

    def start(self, slot: int, episode_index: int) -> None:
        super().start(slot, episode_index)
        self.asked[slot] = self.remaining[slot]

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        now = self.phi(obs).astype(np.float32)
        fresh = self.step == 0
        self.first[fresh] = now[fresh]
        self.remaining = self.asked - (now - self.first)
        return super().act(obs, active)


def ask(model, env_cfg, seeds: list[int], target: float, name: str, phi) -> list[float]:
    envs = from_config(env_cfg, len(seeds))
    targets = np.full(len(seeds), target)
    cpu = torch.device("cpu")
    policy = (PotentialRollout(model, len(seeds), targets, cpu, None, phi=phi) if name == "rtg"
              else ConditionedRollout(model, len(seeds), targets, cpu, lambda o: np.zeros(len(o))))
    try:
        return [e.ret for e in run_episodes(envs, seeds, policy, record=False)]
    finally:
        envs.close()


def dev_reward_run(params_path: Path, seed: int, override: dict, root: Path):
    """The reward family collected, relabeled and its ranking fitted at the development ``seed``
    in ``root``: (params, paths, the learned reward, the noise data's step table and meta, collect's summary)."""
    from justask.families.reward.collect import collect
    from justask.families.reward.relabel import relabel
    from justask.families.reward.train import fit_ranking

    if seed == load_params(params_path).seed:
        raise SystemExit(f"--seed {seed} is the evaluation seed of {params_path}; use a development seed")
    frozen = set(json.loads(Path("data/reward/eval_seeds.json").read_text())["seeds"])
    assert not frozen & set(DEV_EVAL_SEEDS), "development evaluation seeds overlap the frozen ones"
    shutil.copytree("data", root / "data")

    def edit(reward: dict) -> None:
        reward["train"]["ranking"]["tune"] = False
        merge(reward, override)

    params = dev_params(params_path, root, seed, edit)
    collect(params, root)
    relabel(params, root)
    seed_everything(params.seed)
    reward, _ = fit_ranking(params, root, pick_device(params.family("reward").train.device),
                            setup_mlflow(params.tracking, root))
    assert reward.form == "potential", "these ablations read the ensemble as a potential"
    paths = family_paths("reward", root)
    steps, meta = StepTable.load(paths.relabeled("steps"))
    return params, paths, reward, steps, meta, json.loads(paths.collect_summary.read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--override", type=json.loads, default={}, help="changes to the reward section (JSON)")
    ap.add_argument("conditions", nargs="*", default=["held", "rtg", "gain10", "gain30"])
    args = ap.parse_args()
    seeds = DEV_EVAL_SEEDS[:20]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        params, paths, reward, steps, meta, summary = dev_reward_run(args.params, args.seed, args.override, root)
        fam = params.family("reward")
        device = pick_device(fam.train.device)
        mlflow = setup_mlflow(params.tracking, root)
        values = reward(steps.observations)
        lo, hi = summary["ref_min_score"], summary["ref_max_score"]
        prep_s = time.perf_counter() - t0
        for name in args.conditions:
            t0 = time.perf_counter()
            cond, returns = conditions(values, steps.starts, name)
            table = StepTable(observations=steps.observations, actions=steps.actions, rtg=cond.astype(np.float32),
                              timesteps=steps.timesteps, episode=steps.episode, starts=steps.starts,
                              returns=returns, split=steps.split)
            asked_from = returns if name in ("held", "rtg") else cond
            cmeta = {**meta, "ref_min_score": float(asked_from.min()), "ref_max_score": float(asked_from.max())}
            mcfg = fam.train.models["rvs"].model_copy(update={"tune": False})
            fit_policy(mlflow, paths=paths, dataset=f"cond-{name}", folder=f"cond-{name}", kind="rvs", mcfg=mcfg,
                       table=table, spec=data_spec(table, cmeta), cfg=fam.train, seed=params.seed, device=device,
                       profile=params.profile, register_as=None)
            fit_s = time.perf_counter() - t0
            for q in QUANTILES:
                target = float(np.quantile(asked_from, q))
                rets = []
                for s in fam.train.seeds:
                    model, _ = load_for_env(paths.run_dir(f"cond-{name}", "rvs", s) / "model.pt", fam.env,
                                            torch.device("cpu"))
                    rets += ask(model, fam.env, seeds, target, name, reward)
                score = normalized_score(rets, lo, hi)
                print(json.dumps({
                    "condition": name, "quantile": q, "target": round(target, 3), "seed": args.seed,
                    "score_mean": round(float(score.mean()), 1), "score_iqm": round(float(trim_mean(score, 0.25)), 1),
                    "episodes": len(score), "demonstrator": round(summary["groups"]["demos"]["score"], 1),
                    "clone": round(summary["groups"]["noise/0"]["score"], 1),
                    "override": args.override, "fit_s": round(fit_s, 1), "prep_s": round(prep_s, 1),
                    "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
