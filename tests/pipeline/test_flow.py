"""The Prefect flow (flows/pipeline.py): streaming, ordering, retries (transient failures only),
and real DVC runs. (Its pipeline lock: test_concurrency.py; the whole pipeline through the flow:
test_pipeline.py.)

Flows run against one module-scoped ``prefect_test_harness`` (conftest.py's ``prefect_api``: a
temporary API and database under the temporary PREFECT_HOME). Real pipeline runs happen in a temporary copy of
the repository (``repo_copy``), never in the workspace.
"""

import json
import logging
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import BIN, ROOT, load_pipeline, run
from justask.config import load_params
from justask.families import families

pipeline = load_pipeline()
ALL_STAGES = ["collect", "validate", "relabel", "train", "evaluate"]


def configured(profile: str) -> list[str]:
    """The families profiles/<profile>.yaml configures, in its order (what the flow runs)."""
    return list(load_params(ROOT / "profiles" / f"{profile}.yaml").families)


# The fake runs take the default profile's families; the real ones the test profile's.
FAMILIES = configured("default")
TEST_FAMILIES = configured("test")


def _fake_stage_commands(monkeypatch, tmp_path: Path, fail_once: set[str] = frozenset(),
                         fail_always: set[str] = frozenset()) -> Path:
    """Replace `dvc repro` by a tiny script that records the stage it was asked to run."""
    calls = tmp_path / "calls.txt"

    def command(stage: str, family: str, force: bool = False) -> list[str]:
        marker = tmp_path / f"{stage}.failed-once"
        code = (
            "import pathlib, sys\n"
            f"pathlib.Path({str(calls)!r}).open('a').write({stage + '@' + family + chr(10)!r})\n"
            f"print('running {stage}@{family}')\n"
            f"marker = pathlib.Path({str(marker)!r})\n"
            f"if {stage in fail_always} or ({stage in fail_once} and not marker.exists()):\n"
            "    marker.touch()\n"
            f"    print('{stage} broke', file=sys.stderr)\n"
            "    sys.exit(1)\n"
        )
        return [sys.executable, "-c", code]

    monkeypatch.setattr(pipeline, "dvc_command", command)
    monkeypatch.setattr(pipeline, "RETRY_DELAY_SECONDS", 0)
    # The active params: the default profile (so no profile switch), whose families the flow runs.
    shutil.copy(ROOT / "profiles" / "default.yaml", tmp_path / "params.yaml")
    return calls


def test_stages_follow_dvc_yaml():
    assert list(pipeline.STAGES) == ALL_STAGES
    assert list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]) == ALL_STAGES
    assert pipeline.RETRIES == {"collect": 2, "evaluate": 1}


def test_dvc_command_is_an_argument_list():
    cmd = pipeline.dvc_command("collect", "return")
    assert Path(cmd[0]).name == "dvc"
    assert cmd[1:] == ["repro", "--single-item", "collect@return"]
    assert pipeline.dvc_command("train", "return", force=True)[1:] == [
        "repro", "--single-item", "--force", "train@return"]


def test_run_logged_streams_output_and_raises_with_the_tail(tmp_path, caplog):
    logger = logging.getLogger("justask.test_flow")
    caplog.set_level(logging.INFO, logger=logger.name)
    code = ("import sys\n"
            "for i in range(100): print(f'line {i}')\n"
            "print('boom', file=sys.stderr)\n"
            "sys.exit(3)\n")
    with pytest.raises(pipeline.StageError) as info:
        pipeline.run_logged([sys.executable, "-c", code], tmp_path, logger)
    assert "exited with status 3; last lines:" in str(info.value)
    message = str(info.value).split("last lines:\n", 1)[1].splitlines()
    assert len(message) == pipeline.TAIL_LINES
    assert message[-1] == "boom" and "line 99" in message and "line 0" not in message
    logged = [r.getMessage() for r in caplog.records]
    assert "line 0" in logged and "line 99" in logged and "boom" in logged

    pipeline.run_logged([sys.executable, "-c", "print('fine')"], tmp_path, logger)
    assert "fine" in [r.getMessage() for r in caplog.records]


def test_flow_runs_stages_in_order_and_retries_collect(prefect_api, tmp_path, monkeypatch):
    calls = _fake_stage_commands(monkeypatch, tmp_path, fail_once={"collect", "evaluate"})
    assert len(FAMILIES) >= 2 and set(FAMILIES) <= set(families())
    t0 = time.perf_counter()
    timings = pipeline.justask_pipeline(profile="default", workdir=str(tmp_path))
    wall = time.perf_counter() - t0
    # Exactly one timing per (stage, family), family by family in DAG order.
    expected = [f"{s}@{f}" for f in FAMILIES for s in ALL_STAGES]
    assert list(timings) == expected and len(timings) == len(FAMILIES) * len(ALL_STAGES)
    # Each is the wall time of a real subprocess (> 0), and the stages ran one after another within
    # the flow run: none, nor their sum, exceeds the wall time of the whole run.
    for name, t in timings.items():
        assert isinstance(t, float) and 0 < t <= wall, (name, t, wall)
    assert sum(timings.values()) <= wall, (timings, wall)
    # collect and evaluate failed once each (the first family's) and were retried; the rest ran
    # once, family by family in DAG order.
    first = FAMILIES[0]
    assert calls.read_text().split() == [
        f"collect@{first}", f"collect@{first}", f"validate@{first}", f"relabel@{first}",
        f"train@{first}", f"evaluate@{first}", f"evaluate@{first}",
        *[f"{s}@{f}" for f in FAMILIES[1:] for s in ALL_STAGES]]


def _dvc_failure(tail: str) -> "pipeline.StageError":
    """The StageError run_logged raises for a `dvc repro` that printed ``tail`` and exited 255."""
    code = f"import sys; print({tail!r}); sys.exit(255)"
    with pytest.raises(pipeline.StageError) as info:
        pipeline.run_logged([sys.executable, "-c", code], ROOT, logging.getLogger("justask.test_flow"))
    return info.value


def _retries(exc: BaseException) -> bool:
    from prefect.states import Failed

    return pipeline.retry_if_transient(None, None, Failed(data=exc))


def test_retry_condition_retries_transient_failures_only():
    cmd = "ERROR: failed to reproduce 'collect@return': failed to run: justask stage collect return"
    deterministic = _dvc_failure(f"{cmd}, exited with 2")
    assert deterministic.status == 255 and deterministic.stage_status == 2 and deterministic.deterministic
    assert not _retries(deterministic)
    for transient in (_dvc_failure(f"{cmd}, exited with 1"),    # a crash (traceback)
                      _dvc_failure(f"{cmd}, exited with -9"),   # a worker or the stage killed
                      _dvc_failure("ERROR: 'artifacts/return/collect' is busy"),  # dvc's own failure
                      OSError(28, "No space left on device")):
        assert _retries(transient), transient


def test_flow_does_not_retry_a_deterministic_stage_failure(prefect_api, tmp_path, monkeypatch):
    """Real `dvc repro` of a stage whose command exits 2 as `justask stage` does for a failed check:
    attempted once although collect has retries; a stage that exits 1 once is retried and passes."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    run([str(BIN / "dvc"), "init", "-q"], repo)
    attempts = repo / "attempts.txt"
    script = ("import pathlib, sys\n"
              "log = pathlib.Path('attempts.txt')\n"
              "log.open('a').write(sys.argv[1] + '\\n')\n"
              "n = len(log.read_text().split())\n"
              "sys.exit({'return': 2, 'reward': 1 if n == 2 else 0}[sys.argv[1]])\n")
    (repo / "stage.py").write_text(script)
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"collect": {
        "foreach": ["return", "reward"],
        "do": {"cmd": f"{sys.executable} stage.py ${{item}}", "deps": ["stage.py"]}}}}))
    (repo / "params.yaml").write_text("profile: default\n")
    monkeypatch.setattr(pipeline, "STAGES", ["collect"])
    monkeypatch.setattr(pipeline, "RETRY_DELAY_SECONDS", 0)

    with pytest.raises(pipeline.StageError, match="exited with 2") as info:
        pipeline.justask_pipeline(profile="default", families=["return"], workdir=str(repo))
    assert info.value.deterministic
    assert attempts.read_text().split() == ["return"]

    timings = pipeline.justask_pipeline(profile="default", families=["reward"], workdir=str(repo))
    assert list(timings) == ["collect@reward"]
    assert attempts.read_text().split() == ["return", "reward", "reward"]


def test_flow_stops_at_a_failing_stage_without_retrying_it(prefect_api, tmp_path, monkeypatch):
    calls = _fake_stage_commands(monkeypatch, tmp_path, fail_always={"validate"})
    with pytest.raises(pipeline.StageError, match="validate broke"):
        pipeline.justask_pipeline(profile="default", workdir=str(tmp_path))
    assert calls.read_text().split() == [f"collect@{FAMILIES[0]}", f"validate@{FAMILIES[0]}"]


@pytest.mark.e2e
def test_flow_switches_profile_and_runs_collect_with_dvc(prefect_api, make_repo_copy,
                                                        monkeypatch):
    """The real task: `justask profile test`, then `dvc repro --single-item collect@<family>`."""
    repo = make_repo_copy(profile=None)
    assert pipeline.current_profile(repo) != "test"
    monkeypatch.setattr(pipeline, "STAGES", ["collect"])

    timings = pipeline.justask_pipeline(profile="test", workdir=str(repo))

    assert list(timings) == [f"collect@{f}" for f in TEST_FAMILIES]
    assert pipeline.current_profile(repo) == "test"
    assert list(load_params(repo / "params.yaml").families) == TEST_FAMILIES
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for family in TEST_FAMILIES:
        assert (repo / "artifacts" / family / "collect" / "summary.json").is_file()
        assert f"collect@{family}" in lock["stages"]
        status = run([str(BIN / "dvc"), "status", "--json", f"collect@{family}"], repo)
        assert json.loads(status.stdout) == {}
