"""What the language family's end-to-end run must leave behind (called by tests/pipeline/test_pipeline.py),
including `justask ask language` on the trained policies."""

import json
from pathlib import Path

from helpers import BIN, run
from justask.config import load_params


def check_outputs(repo: Path) -> None:
    metrics = json.loads((repo / "metrics" / "language.json").read_text())
    params = load_params(repo / "params.yaml").family("language")
    assert set(metrics["models"]) == set(params.train.models)
    for cells in metrics["models"].values():
        assert {"seen", "colour_object", "cross_level", "paraphrase", "mission"} <= set(cells)
        for cell in cells.values():
            assert 0 <= cell["ci"][0] <= cell["success"] <= cell["ci"][1] <= 1
            assert abs(sum(cell["contact"].values()) - 1) < 1e-3
    # per level: composition is judged against seen asks of the same level; cross-level asks live
    # only where the level's rooms hold the pair (the test profile's doors: OpenDoorColor)
    for levels in metrics["by_level"].values():
        assert set(levels) == set(params.env.levels)
        assert "cross_level" not in levels["BabyAI-GoToLocal-v0"] and "colour_object" in levels["BabyAI-GoToLocal-v0"]
        assert "cross_level" in levels["BabyAI-OpenDoorColor-v0"]
    heat = (repo / "metrics" / "language.csv").read_text().splitlines()
    assert heat[0] == "model,colour,type,success,episodes,held_out"
    assert any(line.endswith(",True") for line in heat[1:])  # the held-out cells are marked
    assert list((repo / "artifacts" / "language" / "evaluate" / "gifs").glob("seen-*.gif"))
    shown = run([str(BIN / "justask"), "results", "language"], repo).stdout
    assert "seen" in shown and "relabeled-minilm" in shown and "held out vs seen in the same level" in shown
    assert "the first object engaged" in shown

    # Ask in words: a grammar sentence is judged by the verifier; free wording needs --means;
    # the word encoder refuses words it never saw, naming the encoder that can read them.
    ask = [str(BIN / "justask"), "ask", "language"]
    flat = lambda text: " ".join(text.split())  # noqa: E731 (rich wraps long lines)
    done = flat(run([*ask, "pick up the blue key", "--model", "relabeled-minilm"], repo).stdout)
    assert "asked 'pick up the blue key'" in done and ("success" in done or "failed" in done)
    assert list((repo / "artifacts" / "language" / "ask").glob("pick-up-the-blue-key-*.gif"))
    free = flat(run([*ask, "fetch the blue key", "--means", "pick up the blue key", "--no-gif"], repo).stdout)
    assert "judged as 'pick up the blue key'" in free
    refused = run([*ask, "fetch the blue key", "--model", "relabeled-word"], repo, check=False)
    assert refused.returncode == 2 and "'fetch'" in flat(refused.stderr) and "minilm" in refused.stderr
    unjudged = run([*ask, "fetch the blue key"], repo, check=False)
    assert unjudged.returncode == 2 and "--means" in flat(unjudged.stderr)
