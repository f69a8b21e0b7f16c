"""What the return family's end-to-end run must leave behind (called by tests/pipeline/test_pipeline.py)."""

import json
from pathlib import Path

from helpers import BIN, run
from justask.config import load_params


def check_outputs(repo: Path) -> None:
    params = load_params(repo / "params.yaml").family("return")
    metrics = json.loads((repo / "metrics" / "return.json").read_text())
    assert set(metrics["datasets"]) == set(params.collect.datasets)
    targets = {f"t{f:g}" for f in params.relabel.target_fractions}
    for summary in metrics["datasets"].values():
        models = summary["models"]
        assert set(models) == set(params.train.models)
        for kind, cells in models.items():
            expected = targets if kind in ("rvs", "dt") else {"top_skill"} if kind == "skill" else {"any"}
            assert set(cells) == expected, (kind, cells)
            for cell in cells.values():
                assert cell["episodes"] == len(params.train.seeds) * params.evaluate.episodes
                assert cell["score_iqm_lo"] <= cell["score_iqm"] <= cell["score_iqm_hi"]
        # Every model's last weights beside the selected ones, one score per training seed.
        assert set(summary["last"]) == set(models)
        for kind, cmp in summary["last"].items():
            assert len(cmp["best_seed_scores"]) == len(cmp["last_seed_scores"]) == len(params.train.seeds)
            assert cmp["ask"] == ("t1" if kind in ("rvs", "dt") else "top_skill" if kind == "skill" else "any")
        # The conditioning gap of every conditioned model, per seed; none for the baselines.
        assert set(summary["conditioning_gap"]) == set(models) & {"rvs", "dt", "skill"}
        for gap in summary["conditioning_gap"].values():
            assert len(gap["seeds"]) == len(params.train.seeds)
    assert (repo / "metrics" / "return.csv").read_text().startswith("dataset,model,target_fraction,target,achieved")
    assert list((repo / "artifacts" / "return" / "evaluate").glob("*.gif"))
    shown = run([str(BIN / "justask"), "results", "return"], repo).stdout
    assert all(d in shown for d in params.collect.datasets) and "rvs" in shown
    assert "top skill" in shown and "end of training (last)" in shown

    # Ask from the command line: a score for the DT, the top skill for the skill model, on env
    # seeds that are not evaluation seeds; what cannot be asked gets exit 2 and the fix.
    ask = [str(BIN / "justask"), "ask", "return"]
    flat = lambda text: " ".join(text.split())  # noqa: E731 (rich wraps long lines)
    dataset = next(iter(params.collect.datasets))
    done = flat(run([*ask, "--score", "100", "--episodes", "2"], repo).stdout)
    assert f"dt of {dataset} (training seed 0) asked for score 100 (return" in done
    assert "mean over 2 episodes" in done and "GIF of the first episode: artifacts/return/ask/" in done
    assert list((repo / "artifacts" / "return" / "ask").glob(f"{dataset}-dt-seed0-score100-env*.gif"))
    assert "asked for skill 1" in flat(run([*ask, "--model", "skill", "--episodes", "1", "--no-gif"], repo).stdout)
    unknown = run([*ask, "--dataset", "nope"], repo, check=False)
    assert unknown.returncode == 2 and "configured: " + ", ".join(params.collect.datasets) in flat(unknown.stderr)
    frozen = json.loads((repo / "data" / "return" / "eval_seeds.json").read_text())["seeds"][0]
    reused = run([*ask, "--seed", str(frozen), "--episodes", "1"], repo, check=False)
    assert reused.returncode == 2 and "are evaluation seeds" in flat(reused.stderr)
