"""docs/adding-a-family.md, carried out: its example family written into a copy of the repository
exactly as the page prints it, wired in as the page says, run through DVC and the CLI; and nothing
but the family's folder, its params section and its frozen inputs had to change."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import BIN, ROOT, run
from justask.config import load_params

DOC = ROOT / "docs" / "adding-a-family.md"
FENCE = re.compile(r"^( *)```(\w+) ?(\S*)\n(.*?)^\1```", re.M | re.S)


def blocks() -> list[tuple[str, str, str]]:
    """(language, path or "", text) of every fenced block of the page, list indentation removed."""
    out = []
    for indent, lang, path, body in FENCE.findall(DOC.read_text()):
        out.append((lang, path, "".join(line[len(indent):] + "\n" for line in body.splitlines())))
    return out


@pytest.mark.e2e
def test_the_documented_family_runs_with_its_folder_and_params_alone(make_repo_copy):
    repo = make_repo_copy(profile="test")
    env = os.environ | {"PYTHONPATH": str(repo / "src")}  # the copy's code, with the new family in it
    files = [(lang, path, text) for lang, path, text in blocks() if path.startswith("src/justask/families/chain/")]
    names = {Path(p).name for _, p, _ in files}
    assert {"__init__.py", "config.py", "collect.py", "validate.py", "relabel.py", "train.py", "evaluate.py",
            "report.py", "plot.json"} <= names, names
    for _, path, text in files:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    [params] = [text for lang, path, text in blocks() if path == "params.yaml"]
    assert list(yaml.safe_load((repo / "params.yaml").read_text()))[-1] == "families"  # the section goes last
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + params)
    [seeds] = [text for lang, _, text in blocks() if lang == "bash" and "data/chain" in text]
    subprocess.run(["bash", "-euo", "pipefail", "-c", seeds], cwd=repo, check=True, capture_output=True,
                   env=env | {"PATH": f"{BIN}{os.pathsep}{env['PATH']}"})

    listed = run([str(BIN / "justask"), "families", "--names"], repo, env=env).stdout.split()
    assert listed == [*load_params(ROOT / "profiles" / "test.yaml").families, "chain"]
    out = run([str(BIN / "dvc"), "repro", "evaluate@chain"], repo, env=env).stdout
    ran = re.findall(r"Running stage '([^']+)'", out)
    assert ran == [f"{s}@chain" for s in ("collect", "validate", "relabel", "train", "evaluate")], out[-3000:]
    metrics = json.loads((repo / "metrics" / "chain.json").read_text())
    assert [a["target"] for a in metrics["asks"]] == [-5, 0, 5, 10]
    assert (repo / "metrics" / "chain.csv").read_text().startswith("seed,target,achieved")
    shown = run([str(BIN / "justask"), "results", "chain"], repo, env=env).stdout
    assert "asked" in shown and "achieved" in shown
    again = run([str(BIN / "dvc"), "repro", "evaluate@chain"], repo, env=env).stdout
    assert "Running stage" not in again, again

    # What changed in the repository: the family's folder, its params section and its frozen inputs.
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout.splitlines()
    changed = sorted({line[3:] for line in status})
    outputs = {"dvc.lock", "metrics/chain.json", "metrics/chain.csv"}  # what running it wrote
    allowed = lambda p: (p.startswith(("src/justask/families/chain/", "dvc-inputs/"))  # noqa: E731
                         or p in {"params.yaml", "data.dvc"} | outputs)
    assert changed and all(allowed(p) for p in changed), changed
