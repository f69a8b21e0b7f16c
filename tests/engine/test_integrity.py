"""justask.integrity: a stage's inputs checked against what their writers recorded (dvc.lock,
data.dvc and the cache's directory manifests), on a hand-built repository."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from justask.integrity import Damage, damaged_inputs


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _repo(tmp_path: Path) -> Path:
    """Stage ``write@x`` writes ``out/a.npy``, ``out/sub/b.json`` (a directory output) and
    ``report.json``; ``data/`` is a frozen input (data.dvc); ``read@x`` reads all of them and code."""
    files = {"out/a.npy": b"\x93NUMPY" + bytes(100), "out/sub/b.json": b'{"k": 1}', "report.json": b"{}",
             "data/seeds.json": b"[1, 2]", "src/code.py": b"x = 1"}
    for path, data in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    cache = tmp_path / ".dvc" / "cache" / "files" / "md5"

    def directory(prefix: str) -> str:
        manifest = [{"md5": _md5(d), "relpath": p[len(prefix) + 1:]} for p, d in files.items() if p.startswith(prefix)]
        text = json.dumps(manifest).encode()
        md5 = _md5(text) + ".dir"
        (cache / md5[:2]).mkdir(parents=True, exist_ok=True)
        (cache / md5[:2] / md5[2:]).write_bytes(text)
        return md5

    lock = {"schema": "2.0", "stages": {
        "write@x": {"cmd": "w", "outs": [{"path": "out", "md5": directory("out")},
                                          {"path": "report.json", "md5": _md5(files["report.json"])}]},
        "read@x": {"cmd": "r", "deps": [{"path": "out", "md5": "stale-on-purpose.dir"},
                                         {"path": "report.json", "md5": "stale-on-purpose"},
                                         {"path": "data/seeds.json", "md5": "x"},
                                         {"path": "src/code.py", "md5": "x"}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    (tmp_path / "data.dvc").write_text(yaml.safe_dump({"outs": [{"path": "data", "md5": directory("data")}]}))
    return tmp_path


def test_intact_inputs_are_not_damage_even_if_the_readers_own_entry_is_stale(tmp_path):
    """Inside `dvc repro` an upstream stage that just ran has new records and the reader's entry
    still the old ones: the reference is the writer's record, so nothing is reported."""
    assert damaged_inputs(_repo(tmp_path), "read@x") == []


def test_each_kind_of_damage_is_named_with_its_writer(tmp_path):
    repo = _repo(tmp_path)
    (repo / "out/a.npy").write_bytes((repo / "out/a.npy").read_bytes()[:50])  # truncated
    (repo / "out/sub/b.json").unlink()
    (repo / "data/seeds.json").write_text("[1, 2, 3]")  # hand-edited frozen input
    (repo / "report.json").write_text("{ torn")
    (repo / "src/code.py").write_text("x = 2")  # code is not an input a stage wrote
    assert sorted(damaged_inputs(repo, "read@x"), key=lambda d: d.path) == [
        Damage("data/seeds.json", "data.dvc", "changed"), Damage("out/a.npy", "write@x", "changed"),
        Damage("out/sub/b.json", "write@x", "missing"), Damage("report.json", "write@x", "changed")]
    message = Damage("out/a.npy", "write@x", "changed").describe()
    assert "out/a.npy" in message and "dvc checkout write@x" in message and "dvc repro write@x" in message
    assert "make data" in Damage("data/seeds.json", "data.dvc", "changed").describe()


def test_a_dependency_inside_a_directory_output_checks_only_its_files(tmp_path):
    repo = _repo(tmp_path)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    lock["stages"]["read@x"]["deps"] = [{"path": "out/sub", "md5": "x"}]
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock))
    (repo / "out/a.npy").write_bytes(b"other")  # outside out/sub
    assert damaged_inputs(repo, "read@x") == []
    (repo / "out/sub/b.json").write_text("{}")
    assert damaged_inputs(repo, "read@x") == [Damage("out/sub/b.json", "write@x", "changed")]


def test_without_a_manifest_or_a_lock_only_presence_is_checked(tmp_path):
    repo = _repo(tmp_path)
    for manifest in (repo / ".dvc" / "cache").rglob("*.dir"):
        manifest.unlink()
    (repo / "out/a.npy").write_bytes(b"other")
    assert [d.path for d in damaged_inputs(repo, "read@x")] == []
    import shutil

    shutil.rmtree(repo / "out")
    assert damaged_inputs(repo, "read@x") == [Damage("out", "write@x", "missing")]
    assert damaged_inputs(repo, "never-ran@x") == []
    (repo / "dvc.lock").write_text("{ not yaml")
    assert damaged_inputs(repo, "read@x") == []
