"""Does the pull-request gate catch a broken model? (issue 18 item 5)

Runs benchmarks/broken_condition.py: the return family of the ``pr`` profile trained and evaluated
with the Decision Transformer's return input zeroed, compared with main's recorded pr-profile
metrics (metrics/pr/return.json) by the gate's own comparison. BC, trained beside it and left
intact (the cheapest model of the profile), is the control: it must reproduce its recorded figures
byte for byte, so what moves the DT is the break, not the run. The DT's headline (asked for the
expert's score) must come out worse beyond its recorded 95% CI, and lower by more than the recorded
seed-to-seed spread of DT scores.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import ROOT


@pytest.mark.e2e
def test_a_dt_blind_to_its_return_fails_the_gate_by_more_than_the_seed_spread():
    proc = subprocess.run([sys.executable, "benchmarks/broken_condition.py", "--models", "bc", "dt"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout[proc.stdout.index("{\n"):])
    kinds = out["kinds"]
    control = {path: kind for path, kind in kinds.items() if "/bc/" in path}
    assert control and set(control.values()) == {"same"}, control
    headline = out["headline"]
    assert kinds[headline] == "worse", kinds
    row = next(r for r in out["score_rows"] if r["figure"] == headline)
    drop = row["recorded"][0] - row["broken"][0]
    assert drop > out["dt_seed_spread"], (drop, out["dt_seed_spread"])
