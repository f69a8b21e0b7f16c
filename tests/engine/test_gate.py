"""`justask gate`, the pull-request check: a figure whose interval falls wholly below the base's
fails it (exit 1, named), identical metrics and changes inside the CIs pass, both CI forms are
read, and a folder without metrics is refused with exit 2. The committed default-profile metrics
are the fixtures: the gate must read every CI they hold."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import ROOT
from justask.cli import app
from justask.gate import Figure, compare, figures, plot_changes, plots_markdown, read_metrics

DT = ("datasets", "medium-expert", "models", "dt", "t0.9")
DT_SCORE = "return: " + "/".join(DT) + "/score_iqm"
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def gate(base: Path, pr: Path, *extra: str) -> Run:
    """`justask gate` in this process (typer's runner keeps stdout and stderr apart)."""
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["gate", str(base), str(pr), *extra])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def sides(tmp_path) -> tuple[Path, Path]:
    base, pr = tmp_path / "base", tmp_path / "pr"
    for side in (base, pr):
        side.mkdir()
        for family in ("return", "reward", "language"):
            shutil.copy(ROOT / "metrics" / f"{family}.json", side / f"{family}.json")
    return base, pr


def edit(folder: Path, family: str, change) -> None:
    path = folder / f"{family}.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def halve(data):
    """The DT's score at one ask, and its CI, halved: wholly below the recorded interval."""
    cell = data
    for key in DT:
        cell = cell[key]
    for k in ("score_iqm", "score_iqm_lo", "score_iqm_hi"):
        cell[k] /= 2


def test_every_committed_figure_with_a_ci_is_read():
    found = read_metrics(ROOT / "metrics")
    families = {path.split(":")[0] for path in found}
    assert families == {"return", "reward", "language"}
    assert "return: " + "/".join(DT) + "/score_iqm" in found
    assert any(p.startswith("language: models/") and p.endswith("/success") for p in found)
    assert all(f.lo <= f.value <= f.hi for f in found.values()), "a figure outside its own CI"


def test_identical_metrics_pass(sides):
    proc = gate(*sides)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no figure worse" in proc.stdout and " 0 other changes" in proc.stdout


def test_a_halved_dt_score_fails_the_gate_and_is_named(sides, tmp_path):
    base, pr = sides
    edit(pr, "return", halve)
    proc = gate(base, pr, "--out", str(tmp_path / "gate.md"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 figure(s) worse" in proc.stdout and "/".join(DT) + "/score_iqm" in proc.stdout
    assert "**worse**" in (tmp_path / "gate.md").read_text()


def test_a_halved_dt_score_is_plotted_for_its_family_alone(sides, tmp_path):
    """Only the return family gets a plot, of the DT's score alone, and the same metrics give the
    same bytes; identical metrics give no plot and take away a stale one."""
    base, pr = sides
    edit(pr, "return", halve)
    every = compare(read_metrics(base), read_metrics(pr))
    plots = {p.family: p for p in plot_changes(every, tmp_path / "plots")}
    assert set(plots) == {"return", "reward", "language"}
    ret = plots["return"]
    assert ret.file == tmp_path / "plots" / "return.png" and ret.file.read_bytes().startswith(PNG)
    assert [(c.path, c.kind) for c in ret.shown] == [(DT_SCORE, "worse")] and ret.more == 0
    assert plots["reward"].file is None and plots["language"].file is None
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["return.png"]
    first = ret.file.read_bytes()
    plot_changes(every, tmp_path / "plots")
    assert ret.file.read_bytes() == first and b"Matplotlib" not in first, "bytes beyond the metrics'"
    md = plots_markdown(list(plots.values()))
    assert f"- `return.png`: **{DT_SCORE.split(': ')[1]}**" in md and "- reward: no figure changed, no plot" in md

    same = compare(read_metrics(base), read_metrics(base))
    assert all(p.file is None and not p.shown for p in plot_changes(same, tmp_path / "plots"))
    assert not list((tmp_path / "plots").iterdir())


def test_plots_show_the_worst_first_up_to_the_cap(tmp_path):
    base = {f"return: m{i}/score_iqm": Figure(f"return: m{i}/score_iqm", 10.0, 9.0, 11.0) for i in range(3)}
    pr = {"return: m0/score_iqm": Figure("return: m0/score_iqm", 7.0, 6.0, 8.0),  # worse, by 1.5 CI widths
          "return: m1/score_iqm": Figure("return: m1/score_iqm", 1.0, 0.0, 2.0),  # worse, by 4.5
          "return: m2/score_iqm": Figure("return: m2/score_iqm", 10.5, 9.5, 11.5)}  # within CI
    (plot,) = plot_changes(compare(base, pr), tmp_path, cap=2)
    assert [c.path for c in plot.shown] == ["return: m1/score_iqm", "return: m0/score_iqm"] and plot.more == 1
    assert "and 1 more in the table" in plots_markdown([plot])


def test_the_plots_option_end_to_end(sides, tmp_path):
    base, pr = sides
    edit(pr, "return", halve)
    md, folder = tmp_path / "gate.md", tmp_path / "plots"
    proc = gate(base, pr, "--out", str(md), "--plots", str(folder))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (folder / "return.png").read_bytes().startswith(PNG)
    text = md.read_text()
    assert "**worse**" in text and "`return.png`" in text and "language: no figure changed, no plot" in text
    proc = gate(base, base, "--out", str(md), "--plots", str(folder))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not list(folder.iterdir()) and "return: no figure changed, no plot" in md.read_text()


def test_a_change_inside_the_ci_and_an_improvement_pass(sides):
    base, pr = sides

    def nudge(data):
        cell = data
        for key in DT:
            cell = cell[key]
        cell["score_iqm"] = (cell["score_iqm"] + cell["score_iqm_lo"]) / 2

    def better(data):
        model = next(iter(data["models"].values()))["seen"]
        model["success"], model["ci"] = 1.0, [0.99, 1.0]

    edit(pr, "return", nudge)
    edit(pr, "language", better)
    proc = gate(base, pr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "within CI" in proc.stdout and "better" in proc.stdout


def test_a_language_success_rate_below_its_ci_fails(sides):
    base, pr = sides

    def worse(data):
        model = next(iter(data["models"].values()))["seen"]
        model["success"], model["ci"] = 0.0, [0.0, 0.01]

    edit(pr, "language", worse)
    assert gate(base, pr).returncode == 1


def test_figures_walks_both_forms_and_compare_marks_new_and_gone():
    a = {"m": {"score_iqm": 5.0, "score_iqm_lo": 4.0, "score_iqm_hi": 6.0}, "x": {"success": 0.5, "ci": [0.4, 0.6]}}
    b = copy.deepcopy(a)
    del b["x"]
    b["y"] = {"return_iqm": 1.0, "return_iqm_lo": 0.0, "return_iqm_hi": 2.0}
    fa = {f.path: f for f in figures(a)}
    fb = {f.path: f for f in figures(b)}
    assert set(fa) == {"m/score_iqm", "x/success"}
    kinds = {c.path: c.kind for c in compare(fa, fb)}
    assert kinds == {"m/score_iqm": "same", "x/success": "gone", "y/return_iqm": "new"}


def test_a_folder_without_metrics_is_refused(tmp_path, sides):
    (tmp_path / "empty").mkdir()
    proc = gate(tmp_path / "empty", sides[1])
    assert proc.returncode == 2 and "no metrics/<family>.json" in proc.stderr.replace("\n", " ")
    assert "Traceback" not in proc.stderr
    (sides[1] / "return.json").write_text("{torn")
    proc = gate(sides[0], sides[1])
    assert proc.returncode == 2 and "return.json: not a metrics JSON" in proc.stderr.replace("\n", " ")


def test_a_condition_blind_dt_on_the_recorded_pr_profile_fails_the_gate(tmp_path):
    """On main's recorded pr-profile metrics (metrics/pr/): a DT that ignores its condition, given
    the condition-blind BC's recorded figures at every ask (a stand-in: the real zeroed-condition
    DT, benchmarks/broken_condition.py, scored 71 [56, 86] at every ask). At the expert's return
    (the headline ask) that is further below the recorded DT than its seed-to-seed spread, and
    the gate fails naming the DT's cells."""
    base = ROOT / "metrics" / "pr"
    data = json.loads((base / "return.json").read_text())
    dataset = next(iter(data["datasets"].values()))
    dt, bc = dataset["models"]["dt"], dataset["models"]["bc"]["any"]
    seeds = dataset["last"]["dt"]["best_seed_scores"]
    assert dataset["last"]["dt"]["ask"] == "t1"
    assert dt["t1"]["score_iqm"] - bc["score_iqm"] > max(seeds) - min(seeds), (dt["t1"], bc, seeds)
    blind = copy.deepcopy(data)
    for cell in next(iter(blind["datasets"].values()))["models"]["dt"].values():
        cell.update({k: v for k, v in bc.items() if k.startswith(("score_", "return_"))})
    pr = tmp_path / "pr"
    pr.mkdir()
    for file in base.glob("*.json"):
        shutil.copy(file, pr / file.name)
    (pr / "return.json").write_text(json.dumps(blind))
    proc = gate(base, pr)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "models/dt/t1/score_iqm" in proc.stdout and "**worse**" in proc.stdout
