"""`justask bench --quick` on the cheap sections (collection, training, evaluation): the JSON holds
every figure of those sections, for every configured family, with positive values, provenance, and
met flags that agree with value and target; the printed table shows the same figures."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT
from justask.bench import SECTIONS
from justask.config import load_params

# What `justask bench` measures by default (its --params).
BENCH_PARAMS = ROOT / "profiles" / "default.yaml"


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The quick bench's JSON report and its printed output (wide, so no table row wraps)."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "justask"), "bench", "--quick", "--sections", "a,b,c", "--workers", "1",
         "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "1000"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"report": json.loads(out.read_text()), "stdout": proc.stdout}


@pytest.fixture(scope="module")
def report(bench_run: dict) -> dict:
    return bench_run["report"]


@pytest.fixture(scope="module")
def configured() -> dict:
    """The validated family sections of the params the bench ran on, in their order."""
    return load_params(BENCH_PARAMS).families


def test_report_has_provenance(report: dict, configured: dict) -> None:
    assert report["quick"] is True and report["workers"] == 1
    m = report["machine"]
    assert m["cores"] >= 1 and m["ram_gib"] > 0 and m["torch"] and m["gymnasium"]
    assert len(report["git_commit"]) == 40
    assert report["params_file"] == str(Path("profiles/default.yaml"))
    # the params used are recorded, every configured family's section among them
    assert set(report["params"]["families"]) == set(configured)
    assert report["params"]["families"]["return"]["collect"]["workers"] >= 1


def test_every_figure_is_present_and_positive(report: dict, configured: dict) -> None:
    names = {f["name"] for f in report["figures"]}
    assert configured, "the bench params configure no family"
    for fam, section in configured.items():
        # collection (a): each family's own collection workload, against the raw env rate
        collection = [n for n in names if n.startswith(f"collection {fam} (")]
        assert any(n.endswith(": x raw env rate") for n in collection), (fam, sorted(names))
        assert any(n.endswith(": env steps/s") for n in collection), (fam, sorted(names))
        # training (b): every model the family trains
        for model in section.train.models:
            assert f"train {fam}/{model} [cpu]: samples/s" in names, (fam, model)
            assert f"train {fam}/{model} [cpu]: tokens/s" in names, (fam, model)
            assert f"train {fam}/{model} [cpu]: batch share of step time" in names, (fam, model)
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


def _table_rows(stdout: str) -> list[list[str]]:
    """The body rows of the printed figures table, as their five stripped cells."""
    rows = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("│") and line.endswith("│"):
            rows.append([c.strip() for c in line[1:-1].split("│")])
    return rows


def test_printed_table_agrees_with_the_json(bench_run: dict, configured: dict) -> None:
    """One row per figure of the JSON, in its order: same section, name, value and unit, target,
    and "met" / "not met" exactly as value and target say (blank without a target)."""
    figures = bench_run["report"]["figures"]
    rows = _table_rows(bench_run["stdout"])
    assert all(len(r) == 5 for r in rows), rows
    assert [r[1] for r in rows] == [f["name"] for f in figures], bench_run["stdout"][-6000:]
    for row, f in zip(rows, figures, strict=True):
        section, _, value, target, met = row
        assert section == SECTIONS[f["section"]], (row, f)
        assert value == f"{f['value']:.4g} {f['unit']}".strip(), (row, f)
        assert float(value.split()[0]) == pytest.approx(f["value"], rel=1e-3), (row, f)
        if f["target"] is None:
            assert target == "" and met == "", (row, f)
        else:
            assert target == f"{f['op']} {f['target']:g}", (row, f)
            ok = f["value"] >= f["target"] if f["op"] == ">=" else f["value"] <= f["target"]
            assert met == ("met" if ok else "not met"), (row, f)
    # every configured family's figures are in the printed table too
    printed = {r[1] for r in rows}
    for fam in configured:
        assert any(n.startswith(f"collection {fam} (") for n in printed), fam
        assert any(n.startswith(f"train {fam}/") for n in printed), fam


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


def test_the_memory_profile_scales_every_episode_count_and_only_those(tmp_path: Path) -> None:
    """Section e at --data-scale: the scaled params pass the schema; every episode count of each
    family's collect is multiplied, nothing else there changes; compute is cut (one seed, no
    tuning, fits of one evaluation's length, no PPO)."""
    import yaml

    from justask.bench.orchestration import scaled_profile

    cfg = yaml.safe_load(BENCH_PARAMS.read_text())
    scaled = scaled_profile(cfg, 10, ["return", "reward"])
    assert list(scaled["families"]) == ["return", "reward"]
    ret, rew = scaled["families"]["return"], scaled["families"]["reward"]
    expert = cfg["families"]["return"]["collect"]["datasets"]["medium-expert"][0]["episodes"]
    assert ret["collect"]["datasets"]["medium-expert"][0]["episodes"] == 10 * expert
    assert rew["collect"]["demos"] == 10 * cfg["families"]["reward"]["collect"]["demos"]
    assert rew["collect"]["episodes_per_noise"] == 10 * cfg["families"]["reward"]["collect"]["episodes_per_noise"]
    assert rew["collect"]["noise"] == cfg["families"]["reward"]["collect"]["noise"]
    assert rew["collect"]["clone"] == cfg["families"]["reward"]["collect"]["clone"], "the clone is a fit, not data"
    assert ret["train"]["seeds"] == [0] and ret["train"]["tune"]["n_trials"] == 0 and rew["train"]["ppo"] is None
    assert {m["steps"] for m in ret["train"]["models"].values()} == {ret["train"]["eval_every"]}
    assert ret["relabel"] == cfg["families"]["return"]["relabel"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(scaled))
    assert list(load_params(tmp_path / "params.yaml").families) == ["return", "reward"]


def test_an_unknown_family_for_the_memory_profile_is_refused() -> None:
    proc = subprocess.run([str(Path(sys.executable).parent / "justask"), "bench", "--sections", "e", "--data-scale",
                           "10", "--families", "return,nope"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "nope not configured" in proc.stderr and "Traceback" not in proc.stderr
