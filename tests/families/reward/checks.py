"""What the reward family's end-to-end run must leave behind (called by tests/pipeline/test_pipeline.py)."""

import json
from pathlib import Path

from helpers import BIN, run
from justask.config import load_params


def check_outputs(repo: Path) -> None:
    metrics = json.loads((repo / "metrics" / "reward.json").read_text())
    params = load_params(repo / "params.yaml").family("reward")
    ranking = metrics["ranking"]
    assert ranking["episodes"] == sum(b.episodes for b in params.collect.held_out)
    assert set(ranking["per_behaviour"]) == {b.name for b in params.collect.held_out}
    assert 0.0 <= ranking["val_pair_accuracy"] <= 1.0 and "spearman_behaviour_means" in ranking
    models = metrics["policies"]["models"]
    rounds = params.train.rounds.rounds
    assert set(models) == {*params.train.models, *(f"{k}-round{r}" for k in params.train.models
                                                   for r in range(1, rounds + 1)), "bc", "demonstrator",
                           "oracle-filter", "ppo"}
    assert set(models["rvs"]) == {f"t{q:g}" for q in params.evaluate.target_quantiles}
    assert [r["round"] for r in metrics["rounds"]] == list(range(rounds + 1))
    assert (repo / "artifacts" / "reward" / "evaluate" / "rounds.png").exists()
    assert all(c["episodes"] == len(params.train.seeds) * params.evaluate.episodes for c in models["rvs"].values())
    assert models["ppo"]["any"]["episodes"] == len(params.train.seeds) * params.evaluate.episodes
    cost = {c["model"]: c for c in metrics["cost"]}
    collected = cost["bc"]["env_steps"]
    assert cost["ppo"]["extra_env_steps"] >= params.train.ppo.timesteps and cost["ppo"]["env_steps"] > collected
    assert cost["rvs"]["env_steps"] == collected < cost[f"rvs-round{rounds}"]["env_steps"]
    assert cost["oracle-filter"]["reads_env_reward"] and not cost["ppo"]["reads_env_reward"]
    scatter = (repo / "metrics" / "reward.csv").read_text().splitlines()
    assert scatter[0] == "behaviour,true_return,predicted_return" and len(scatter) == ranking["episodes"] + 1
    assert list((repo / "artifacts" / "reward" / "evaluate").glob("rvs-*.gif"))
    shown = run([str(BIN / "justask"), "results", "reward"], repo).stdout
    assert "Spearman" in shown and "demonstrator" in shown and "improvement rounds" in shown
    assert "what each route cost in env steps" in shown and "ppo" in shown

    # Ask from the command line for more learned return than the data hold, from the last round.
    ask = [str(BIN / "justask"), "ask", "reward"]
    flat = lambda text: " ".join(text.split())  # noqa: E731 (rich wraps long lines)
    done = flat(run([*ask, "--round", str(rounds), "--episodes", "2"], repo).stdout)
    assert f"rvs of round {rounds} (training seed 0) asked for learned return" in done
    assert f"(quantile 1.1 of round {rounds}'s data)" in done
    assert "learned return" in done and "mean over 2 episodes" in done
    assert list((repo / "artifacts" / "reward" / "ask").glob(f"rvs-round{rounds}-seed0-learned*.gif"))
    beyond = run([*ask, "--round", str(rounds + 1)], repo, check=False)
    assert beyond.returncode == 2 and f"the rounds trained are 0 to {rounds}" in flat(beyond.stderr)
