"""End to end, in a temporary repo copy on the test profile, for every family the profile configures:
the whole DAG through `dvc repro`, then again from scratch through the Prefect flow, every stage's
output the same bytes both times."""

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from helpers import BIN, ROOT, family_checks, load_pipeline, run
from justask.config import load_params
from justask.families import families as registered
from justask.settings import STAGES
from justask.webpage import TABLE_WIDTH


def dvc(repo: Path, *args: str, check: bool = True):
    return run([str(BIN / "dvc"), *args], repo, check=check)


def output_hashes(repo: Path) -> dict[str, str]:
    """Every stage output's hash as dvc.lock records it (``stage: path -> md5``)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {f"{stage}: {out['path']}": out["md5"] for stage, entry in lock.items() for out in entry.get("outs", [])}


@pytest.mark.e2e
def test_dvc_repro_end_to_end(prefect_api, repo_copy: Path):
    families = list(load_params(repo_copy / "params.yaml").families)
    assert set(families) == set(registered()), "the test profile must configure every registered family"
    out = dvc(repo_copy, "repro").stdout
    for stage in STAGES:
        for family in families:
            assert f"Running stage '{stage}@{family}'" in out, out[-3000:]
    first = output_hashes(repo_copy)
    assert set(first) >= {f"{s}@{f}: artifacts/{f}/{s}" for s in STAGES for f in families}
    for family in families:
        family_checks(family).check_outputs(repo_copy)
        # Validate's tracked output holds the verdicts only; its Data Docs are a report beside it.
        assert (repo_copy / "artifacts" / family / "validate-docs" / "index.html").exists()
        assert not (repo_copy / "artifacts" / family / "validate" / "docs").exists()
    check_report(repo_copy, families)

    # Nothing changed: nothing runs.
    again = dvc(repo_copy, "repro").stdout
    assert "Running stage" not in again, again

    # Only evaluation params changed: only evaluate runs, and batching changes no outcome.
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    fams = params["families"]
    fams["return"]["evaluate"]["episodes"] = 3
    fams["language"]["evaluate"]["num_envs"] = 3  # batching must not change a single outcome
    fams["reward"]["evaluate"]["bootstrap_reps"] = 300
    fams["improve"]["evaluate"]["bootstrap_reps"] = 300
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    language = json.loads((repo_copy / "metrics" / "language.json").read_text())
    partial = dvc(repo_copy, "repro").stdout
    for family in families:
        assert f"Running stage 'evaluate@{family}'" in partial
        for stage in STAGES[:-1]:
            assert f"Running stage '{stage}@{family}'" not in partial
    assert json.loads((repo_copy / "metrics" / "language.json").read_text()) == language

    # Back to the first params, every stage rerun from scratch by the Prefect flow (`dvc repro
    # --force` per stage, in DAG order): every output of every stage, models and validation
    # verdicts included, is the same bytes as the first time, and DVC finds nothing stale.
    params = yaml.safe_load((ROOT / "profiles" / "test.yaml").read_text())
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    t0 = time.perf_counter()
    timings = load_pipeline().justask_pipeline(profile="test", force=True, workdir=str(repo_copy))
    wall = time.perf_counter() - t0
    assert list(timings) == [f"{s}@{f}" for f in families for s in STAGES]
    assert all(0 < t <= wall for t in timings.values()) and sum(timings.values()) <= wall
    second = output_hashes(repo_copy)
    changed = sorted(k for k in first if second.get(k) != first[k])
    assert not changed, f"outputs that differ when rerun from scratch: {changed}"
    status = dvc(repo_copy, "status", "--json")
    assert json.loads(status.stdout) == {}, status.stdout


def check_report(repo: Path, families: list[str]) -> None:
    """`justask report`: one self-contained page with every family's tables and every plot and GIF
    its evaluate stage left, each embedded byte for byte."""
    import base64
    from html.parser import HTMLParser

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.sections, self.tables, self.images, self.text = [], 0, {}, {}

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "section":
                self.sections.append(a["id"])
            elif tag == "pre" and a.get("class") == "tables":
                self.tables += 1
            elif tag == "img":
                self.images[a["alt"]] = a["src"]

        def handle_data(self, data):
            if self.sections:
                self.text.setdefault(self.sections[-1], []).append(data)

    run([str(BIN / "justask"), "report"], repo)
    html = (repo / "artifacts" / "report.html").read_text()
    page = Page()
    page.feed(html)
    assert page.sections == families and page.tables == len(families)
    words = lambda text: " ".join(text.split())  # noqa: E731
    for family in families:
        # the family's section holds what `justask results FAMILY` prints at the page's width
        printed = run([str(BIN / "justask"), "results", family], repo,
                      env={**os.environ, "COLUMNS": str(TABLE_WIDTH)}).stdout
        assert printed.strip() and words(printed) in words(" ".join(page.text[family])), family
        shown = sorted((repo / "artifacts" / family / "evaluate").rglob("*.png")) + \
            sorted((repo / "artifacts" / family / "evaluate").rglob("*.gif"))
        assert shown, family
        for path in shown:
            src = page.images[str(path.relative_to(repo))]
            assert base64.b64decode(src.split(",", 1)[1]) == path.read_bytes()
    assert all(src.startswith("data:image/") for src in page.images.values())  # nothing to fetch


def test_collect_episode_order_does_not_depend_on_worker_count():
    from justask.lunar.jobs import Job, run_job

    params = load_params(ROOT / "profiles" / "test.yaml")
    seeds = (11, 12, 13, 14, 15)
    env = params.family("return").env
    one = run_job(Job("expert", 0.3, seeds, 0, env, num_envs=1))[1]
    many = run_job(Job("expert", 0.3, seeds, 0, env, num_envs=4))[1]
    for x, y in zip(one, many, strict=True):
        assert x.seed == y.seed and x.ret == y.ret and (x.actions == y.actions).all()
