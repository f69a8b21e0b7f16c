"""Crashes lose nothing: `justask stage collect return` killed while it writes its datasets (SIGTERM,
then SIGKILL, to the whole process group: collection runs spawn workers) leaves the previous output
intact and `dvc status` honest, and a rerun writes the same bytes as an uninterrupted run."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import BIN, run, tree_hashes

COLLECT = Path("artifacts") / "return" / "collect"


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _kill_while_writing(repo: Path, sig: signal.Signals, log: Path) -> str:
    """Start collection, wait until a dataset's temporary folder appears (rollouts done, writing
    begun), signal the process group; returns the temporary folder's name."""
    folder = repo / COLLECT
    with open(log, "w") as out:
        proc = subprocess.Popen([str(BIN / "justask"), "stage", "collect", "return"], cwd=repo,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (writing := [n for n in _hidden(folder) if ".tmp-" in n]):
            assert proc.poll() is None, f"collect ended (status {proc.returncode}) before writing:\n{log.read_text()}"
            assert time.monotonic() < deadline, "collect wrote nothing in 300 s"
            time.sleep(0.002)
        os.killpg(proc.pid, sig)
        status = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Killed, not finished: SIGKILL ends it at once; SIGTERM unwinds it (exit 128 + 15).
    assert status == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGTERM), log.read_text()
    return writing[0]


@pytest.mark.e2e
def test_collect_killed_mid_write_keeps_the_previous_output_and_reruns_identically(make_repo_copy, tmp_path):
    repo = make_repo_copy()
    dvc = [str(BIN / "dvc")]
    run([*dvc, "repro", "--single-item", "collect@return"], repo)
    previous = tree_hashes(repo / COLLECT)
    assert previous and not _hidden(repo / COLLECT)

    # New params: every dataset and the summary change, and each dataset takes longer to write.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for mix in params["families"]["return"]["collect"]["datasets"].values():
        for behaviour in mix:
            behaviour["episodes"] *= 4
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    for sig in (signal.SIGTERM, signal.SIGKILL):
        writing = _kill_while_writing(repo, sig, tmp_path / f"{sig.name}.log")
        after = tree_hashes(repo / COLLECT)
        visible = {k: v for k, v in after.items() if not k.startswith(".")}
        # The dataset being written and everything after it are still the previous version.
        assert visible == previous, f"{sig.name}: a final output changed or is half-written"
        if sig == signal.SIGTERM:
            assert not _hidden(repo / COLLECT), f"SIGTERM left temporaries: {_hidden(repo / COLLECT)}"
        else:  # nothing runs after SIGKILL: the unfinished folder stays until the next write
            assert writing in _hidden(repo / COLLECT)
        status = json.loads(run([*dvc, "status", "--json", "collect@return"], repo).stdout)
        assert "collect@return" in status, f"{sig.name}: dvc status calls collect up to date"

    run([str(BIN / "justask"), "stage", "collect", "return"], repo)
    rerun = tree_hashes(repo / COLLECT)
    assert not _hidden(repo / COLLECT), "the rerun kept the killed run's temporaries"

    # An uninterrupted run of the same params (dvc deletes the outputs first, then runs collect).
    run([*dvc, "repro", "--single-item", "collect@return"], repo)
    assert tree_hashes(repo / COLLECT) == rerun != previous
    assert json.loads(run([*dvc, "status", "--json", "collect@return"], repo).stdout) == {}
