"""Two runs at once on one checkout: the pipeline lock (flow and `make run`) stops the second with a
message, two `dvc repro` never both run a stage, and MLflow's SQLite store takes two writers."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import BIN, ROOT, load_pipeline, run

pipeline = load_pipeline()
# Holds the pipeline lock of the folder argv[2] until killed.
HOLD = ("import sys, time; from pathlib import Path; from justask.lock import pipeline_lock; "
        "lock = pipeline_lock(Path(sys.argv[1])); lock.__enter__(); print('locked', flush=True); "
        "time.sleep(600)")


def test_a_second_pipeline_run_stops_at_once_with_a_message(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(pipeline.PipelineBusy, match=rf"\(pid {holder.pid}: .*\) holds .*pipeline.lock"):
            with pipeline.pipeline_lock(tmp_path):
                pass

        # The flow's command line refuses before starting Prefect.
        t0 = time.monotonic()
        flow = run([sys.executable, str(ROOT / "flows" / "pipeline.py"), "--workdir", str(tmp_path)], ROOT,
                   check=False)
        assert flow.returncode == 1, flow.stdout + flow.stderr
        assert f"another pipeline run (pid {holder.pid}" in flow.stderr and "pipeline.lock" in flow.stderr
        assert "Beginning flow run" not in flow.stdout + flow.stderr and time.monotonic() - t0 < 60

        # `make run` (venv and data taken as built: only the lock is under test here).
        (tmp_path / "params.yaml").write_text("profile: test\n")
        make = run(["make", "-f", str(ROOT / "Makefile"), "-o", "venv", "-o", "data", "run"], tmp_path, check=False)
        assert make.returncode != 0 and "dvc repro" not in make.stdout, make.stdout
        assert f"another pipeline run (pid {holder.pid}" in make.stderr and "pipeline.lock" in make.stderr
    finally:
        holder.kill()
        holder.wait()
    with pipeline.pipeline_lock(tmp_path):  # the kernel freed the killed holder's lock
        assert (tmp_path / pipeline.LOCK).read_text().startswith(f"pid {os.getpid()}:")


HOLD_STAGE = ("import sys, time; from pathlib import Path; from justask.lock import stage_lock; "
              "lock = stage_lock(Path(sys.argv[1]), sys.argv[2]); lock.__enter__(); print('locked', flush=True); "
              "time.sleep(600)")


def test_a_second_stage_process_of_a_family_stops_at_once_and_writes_nothing(tmp_path):
    """Two `justask stage` on one family's outputs (by hand, outside the pipeline lock): the second
    stops with a message naming the first, exit 1 (transient: it clears), before touching anything;
    another family's stage is not held up."""
    (tmp_path / "params.yaml").write_text((ROOT / "profiles" / "test.yaml").read_text())
    holder = subprocess.Popen([sys.executable, "-c", HOLD_STAGE, str(tmp_path), "return"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        second = run([str(BIN / "justask"), "stage", "train", "return"], tmp_path, check=False)
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"another stage process of return (pid {holder.pid}" in second.stderr
        assert "stage-return.lock" in second.stderr and "Traceback" not in second.stderr
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
        # another family's stage takes its own lock (and fails here only for want of inputs)
        other = run([str(BIN / "justask"), "stage", "evaluate", "reward"], tmp_path, check=False)
        assert "another stage process" not in other.stderr
    finally:
        holder.kill()
        holder.wait()


def _mlflow_client(db: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{db}")


@pytest.mark.e2e
def test_two_dvc_repro_at_once_one_runs_and_the_other_stops(make_repo_copy):
    repo = make_repo_copy()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    train = params["families"]["return"]["train"]  # one quick model: what matters is who runs, not what is trained
    train["models"], train["seeds"] = {"bc": train["models"]["bc"]}, train["seeds"][:1]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the copy's own store
    cmd = [str(BIN / "dvc"), "repro", "train@return"]
    procs = [subprocess.Popen(cmd, cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes)[0] == 0 and sorted(codes)[1] != 0, "\n----\n".join(outs)
    winner, loser = (outs[0], outs[1]) if codes[0] == 0 else (outs[1], outs[0])
    for stage in ("collect", "validate", "relabel", "train"):
        assert f"Running stage '{stage}@return'" in winner
    assert "Running stage" not in loser, loser
    assert "is busy" in loser or "Unable to acquire lock" in loser, loser

    status = run([str(BIN / "dvc"), "status", "--json", *(f"{s}@return" for s in
                                                          ("collect", "validate", "relabel", "train"))], repo)
    assert json.loads(status.stdout) == {}, status.stdout
    client = _mlflow_client(repo / "artifacts" / "mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("justask").experiment_id])
    assert runs and all(r.info.status == "FINISHED" for r in runs)


LOG_RUNS = """
import sys
from pathlib import Path
from justask.settings import TrackingConfig
from justask.tracking import setup_mlflow

if __name__ == "__main__":
    mlflow = setup_mlflow(TrackingConfig(mlflow_uri="sqlite:///mlflow.db", experiment="justask"), Path(sys.argv[1]))
    for i in range(5):
        with mlflow.start_run(run_name=f"{sys.argv[2]}-{i}"):
            mlflow.log_params({"writer": sys.argv[2], "i": i})
            mlflow.log_metrics({"x": float(i), "y": 2.0 * i})
"""


def test_two_processes_write_runs_to_one_new_sqlite_store_at_once(tmp_path):
    """Both create (migrate) the store and the experiment at the same moment, then log runs."""
    script = tmp_path / "log_runs.py"
    script.write_text(LOG_RUNS)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), name], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for name in ("a", "b")]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n----\n".join(o[-3000:] for o in outs)
    client = _mlflow_client(tmp_path / "mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("justask").experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(f"{w}-{i}" for w in "ab" for i in range(5))
