"""Does the pull-request gate catch a broken model? (issue 18)

Runs the return family of the ``pr`` profile (profiles/pr.yaml) in a scratch folder with the
Decision Transformer's return input zeroed (its ``embed`` patched: every return-to-go token reads
0, in training and when asked), evaluation in this process so the patch holds, then compares the
metrics with main's recorded pr-profile metrics (metrics/pr/return.json) through ``justask.gate``,
as the pull-request workflow does. BC and RvS are untouched and must come out the same; the DT's
cells must fall outside their recorded CIs by more than the DT's seed-to-seed spread.
``--models`` trains only some of the profile's models (tests/pipeline/test_pr_gate.py runs BC, the
control, and DT); figures of the models left out are then "gone" and ignored.

    .venv/bin/python benchmarks/broken_condition.py > benchmarks/results/broken_condition.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
import yaml

from justask.config import load_params
from justask.families import get_family
from justask.gate import compare, figures
from justask.models.decision_transformer import DecisionTransformer

BASELINE = Path("metrics/pr/return.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="train and compare only these models (default: the profile's)")
    args = parser.parse_args()
    embed = DecisionTransformer.embed
    DecisionTransformer.embed = lambda self, obs, actions, rtg, timesteps: embed(  # the break
        self, obs, actions, torch.zeros_like(rtg), timesteps)
    cfg = yaml.safe_load(Path("profiles/pr.yaml").read_text())
    cfg["families"] = {"return": cfg["families"]["return"]}
    models = cfg["families"]["return"]["train"]["models"]
    cfg["families"]["return"]["train"]["models"] = {m: models[m] for m in args.models or models}
    cfg["scale"]["workers"] = 1  # evaluation in this process, where the patch is
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree("data", root / "data")
        (root / "params.yaml").write_text(yaml.safe_dump(cfg))
        params = load_params(root / "params.yaml")
        family = get_family("return")
        for stage in ("collect", "validate", "relabel", "train", "evaluate"):
            family.stage(stage)(params, root)
        broken = json.loads((root / "metrics" / "return.json").read_text())
    base = json.loads(BASELINE.read_text())
    changes = compare({f.path: f for f in figures(base)}, {f.path: f for f in figures(broken)})
    dataset = next(iter(base["datasets"]))
    seeds = base["datasets"][dataset]["last"]["dt"]["best_seed_scores"]
    changes = [c for c in changes if c.kind != "gone"]
    rows = [{"figure": c.path, "kind": c.kind, "recorded": [c.base.value, c.base.lo, c.base.hi],
             "broken": [c.pr.value, c.pr.lo, c.pr.hi]} for c in changes if "score_iqm" in c.path]
    print(json.dumps({
        "what": "DT with its return-to-go input zeroed, pr profile, return family, vs metrics/pr/return.json",
        "models": list(cfg["families"]["return"]["train"]["models"]),
        "headline": f"datasets/{dataset}/models/dt/t1/score_iqm",
        "dt_seed_scores_recorded": seeds, "dt_seed_spread": round(max(seeds) - min(seeds), 2),
        "worse": sorted(c.path for c in changes if c.kind == "worse"),
        "unchanged": sum(c.kind == "same" for c in changes), "figures": len(changes),
        "kinds": {c.path: c.kind for c in changes}, "score_rows": rows,
        "seconds": round(time.perf_counter() - t0, 1), "date": time.strftime("%Y-%m-%d")}, indent=1))


if __name__ == "__main__":
    main()
