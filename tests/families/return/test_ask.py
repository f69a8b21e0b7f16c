"""`justask ask return`: a score is turned into the return the evaluation would ask for, the DT's
ask is rolled out on non-evaluation seeds, and what cannot be asked gets exit 2 with the fix.
(The end-to-end run asks the trained test-profile models: tests/families/return/checks.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from helpers import ROOT, family_module
from justask.cli import app
from justask.config import load_params
from justask.metrics import target_return
from justask.models import Spec, build_model
from justask.paths import family_paths
from justask.training.checkpoints import save_checkpoint

HP = {"hidden": 8, "layers": 1, "heads": 1, "context": 3, "actions": False, "dropout": 0.0}
REFS = (-200.0, 250.0)
expected_provenance = family_module("return", "provenance").expected_provenance


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A test-profile checkout with a (untrained) DT checkpoint, collect's summary and eval seeds."""
    raw = yaml.safe_load((ROOT / "profiles" / "test.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    paths = family_paths("return", tmp_path)
    dataset = next(iter(raw["families"]["return"]["collect"]["datasets"]))
    spec = Spec(obs_dim=8, act_dim=4, discrete=True, max_timestep=200, obs_mean=(0.0,) * 8, obs_std=(1.0,) * 8,
                return_scale=450.0)
    paths.relabeled(dataset).mkdir(parents=True)
    (paths.relabeled(dataset) / "meta.json").write_text("{}")  # what the checkpoint's provenance names
    prov = expected_provenance(load_params(tmp_path / "params.yaml"), paths, dataset, "dt")
    save_checkpoint(paths.run_dir(dataset, "dt", 0) / "model.pt", "dt", HP, spec, build_model("dt", HP, spec), {},
                    prov)
    paths.conditions.write_text(json.dumps({"datasets": {dataset: {"ref_min_score": REFS[0],
                                                                   "ref_max_score": REFS[1]}}}))
    paths.collect_summary.parent.mkdir(parents=True, exist_ok=True)
    paths.collect_summary.write_text(json.dumps({
        "ref_min_score": REFS[0], "ref_max_score": REFS[1], "datasets": {dataset: {}},
        "behaviours": {"expert": {"episodes": 1, "rating": 1.0, "rating_episodes": 1}}}))
    paths.eval_seeds.parent.mkdir(parents=True, exist_ok=True)
    paths.eval_seeds.write_text(json.dumps({"seeds": [7, 8, 9]}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def ask(*args: str):
    return CliRunner().invoke(app, ["ask", "return", *args], terminal_width=300)


def test_a_score_is_asked_as_the_return_evaluation_would_ask(repo):
    result = ask("--score", "80", "--episodes", "2", "--seed", "100")
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert f"asked for score 80 (return {target_return(0.8, *REFS):.1f})" in out
    assert "mean over 2 episodes" in out
    gif = family_paths("return", repo).base / "ask" / "medium-expert-dt-seed0-score80-env100.gif"
    assert f"GIF of the first episode: {gif.relative_to(repo)}" in out and gif.stat().st_size > 0
    rows = [line for line in result.output.splitlines() if line.strip("│ ").startswith(("100 ", "101 "))]
    assert len(rows) == 2, result.output
    again = ask("--score", "80", "--episodes", "2", "--seed", "100")  # the GIF is written again
    assert again.output == result.output, "the same ask on the same seeds must give the same episodes"


def test_what_cannot_be_asked_is_refused_with_the_fix(repo):
    for args, message in (
            (["--dataset", "nope"], "no dataset 'nope' in families.return.collect.datasets; configured:"),
            (["--model", "rvs"], "no trained policy; run `dvc repro train@return`"),
            (["--model", "nope"], "no model 'nope' in families.return.train.models"),
            (["--train-seed", "9"], "no training seed 9 in families.return.train.seeds"),
            (["--seed", "8", "--episodes", "1"], "env seeds [8] are evaluation seeds")):
        result = ask(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in flat(result.output), (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)
