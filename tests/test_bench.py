"""`justask bench --quick` on the cheap sections (collection, training, evaluation): the JSON holds
every figure of those sections with positive values, provenance, and met flags that agree with
value and target."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "justask"), "bench", "--quick", "--sections", "a,b,c", "--workers", "1",
         "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "not met" in proc.stdout or "met" in proc.stdout  # the printed table
    return json.loads(out.read_text())


def test_report_has_provenance(report: dict) -> None:
    assert report["quick"] is True and report["workers"] == 1
    m = report["machine"]
    assert m["cores"] >= 1 and m["ram_gib"] > 0 and m["torch"] and m["gymnasium"]
    assert len(report["git_commit"]) == 40
    assert report["params"]["return"]["collect"]["workers"] >= 1  # the params used are recorded


def test_every_figure_is_present_and_positive(report: dict) -> None:
    names = {f["name"] for f in report["figures"]}
    families = ("return (LunarLander, behaviour mix)", "reward (LunarLander, BC clone + noise)",
                "language (BabyAI, bot mix)")
    for fam in families:
        assert f"collection {fam}: x raw env rate" in names
    models = report["params"]["return"]["train"]["models"]
    for kind in models:
        assert f"train return/{kind} [cpu]: samples/s" in names
        assert f"train return/{kind} [cpu]: batch share of step time" in names
    for name in report["params"]["language"]["train"]["models"]:
        assert f"train language/{name} [cpu]: tokens/s" in names
    assert "train reward/ranking [cpu]: tokens/s" in names
    for case in ("return rvs", "return dt", "language instruction policy"):
        assert f"evaluate {case}: x raw env rate" in names
        assert f"evaluate {case}: episodes/s" in names
    for f in report["figures"]:
        assert math.isfinite(f["value"]) and f["value"] > 0, f


def test_met_flags_follow_the_numbers(report: dict) -> None:
    targeted = [f for f in report["figures"] if f["target"] is not None]
    assert {f["section"] for f in targeted} == {"a", "b", "c"}
    for f in report["figures"]:
        if f["target"] is None:
            assert f["met"] is None
        else:
            assert f["met"] == (f["value"] >= f["target"] if f["op"] == ">=" else f["value"] <= f["target"]), f


def test_ratios_match_the_rates(report: dict) -> None:
    for name, r in report["sections"]["collection"].items():
        assert r["ratio"] == pytest.approx(r["collection_steps_per_s"] / r["raw_steps_per_s"]), name
        assert r["env_steps"] > 0
    for name, r in report["sections"]["evaluation"].items():
        assert r["ratio"] == pytest.approx(r["steps_per_s"] / r["raw_steps_per_s"]), name
    for name, r in report["sections"]["training"].items():
        assert 0 < r["data_share"] < 1, name
        assert r["tokens_per_s"] == pytest.approx(r["samples_per_s"] * r["tokens_per_sample"]), name


def test_bad_section_is_refused() -> None:
    proc = subprocess.run([str(Path(sys.executable).parent / "justask"), "bench", "--sections", "a,x"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown" in proc.stderr and "x" in proc.stderr
