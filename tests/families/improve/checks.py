"""What the improve family's end-to-end run must leave behind (called by tests/pipeline/test_pipeline.py),
including `justask ask improve` on a held-out goal."""

import json
from pathlib import Path

import numpy as np

from helpers import BIN, run
from justask.config import load_params


def check_outputs(repo: Path) -> None:
    metrics = json.loads((repo / "metrics" / "improve.json").read_text())
    params = load_params(repo / "params.yaml").family("improve")
    assert set(metrics["models"]) == {"learner", "ad", "hindsight", "ed"}
    assert set(metrics["claims"]) == {"ad", "hindsight"}
    assert metrics["weights_unchanged"] is True
    assert metrics["held_out_goals"] == len(params.env.held_out_goals)
    for name, res in metrics["models"].items():
        episodes = params.evaluate.learner_episodes if name == "learner" else params.evaluate.episodes
        assert len(res["curve"]) == episodes
        for lo_hi in [res["first"], res["final"], res["improvement"], *res["curve"]]:
            assert lo_hi[1] <= lo_hi[0] <= lo_hi[2]
    # held-out goals never reach training: not in the relabeled contexts of any model
    held = {tuple(g) for g in params.env.held_out_goals}
    for data in ("histories", "hindsight", "experts"):
        goals = np.load(repo / "artifacts" / "improve" / "relabel" / data / "goals.npy")
        assert not {tuple(g) for g in goals.tolist()} & held
    curve = (repo / "metrics" / "improve.csv").read_text().splitlines()
    assert curve[0] == "model,episode,return,lo,hi"
    assert len(curve) == 1 + params.evaluate.learner_episodes + 3 * params.evaluate.episodes
    assert (repo / "artifacts" / "improve" / "evaluate" / "curves.png").exists()
    for name in ("ad", "hindsight"):
        assert (repo / "artifacts" / "improve" / "evaluate" / f"{name}-first-vs-last.gif").exists()
    shown = run([str(BIN / "justask"), "results", "improve"], repo).stdout
    assert "Algorithm Distillation" in shown and "AD (frozen)" in shown and "expert distillation (frozen)" in shown
    assert "hindsight labels (frozen)" in shown
    assert "improvement" in shown and "weights unchanged during evaluation: True" in shown

    goal = [str(v) for v in params.env.held_out_goals[0]]
    asked = run([str(BIN / "justask"), "ask", "improve", "--goal", *goal, "--episodes", "3", "--gif"], repo).stdout
    assert "a held-out goal" in asked and "return per episode" in asked
    assert list((repo / "artifacts" / "improve" / "ask").glob("ad-seed*-goal*.gif"))
    refused = run([str(BIN / "justask"), "ask", "improve", "--goal", "99", "0"], repo, check=False)
    assert refused.returncode == 2 and "cannot ask that" in refused.stderr
