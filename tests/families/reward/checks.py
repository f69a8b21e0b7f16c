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
    assert set(models) == {*params.train.models, "bc", "demonstrator"}
    assert set(models["rvs"]) == {f"t{f:g}" for f in params.evaluate.target_fractions}
    assert all(c["episodes"] == len(params.train.seeds) * params.evaluate.episodes for c in models["rvs"].values())
    scatter = (repo / "metrics" / "reward.csv").read_text().splitlines()
    assert scatter[0] == "behaviour,true_return,predicted_return" and len(scatter) == ranking["episodes"] + 1
    assert list((repo / "artifacts" / "reward" / "evaluate").glob("rvs-*.gif"))
    shown = run([str(BIN / "justask"), "results", "reward"], repo).stdout
    assert "Spearman" in shown and "demonstrator" in shown
