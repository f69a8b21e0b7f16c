"""The improvement rounds (generalize-then-infer, no RL): each round's data hold the last round's
episodes, each round's policies are asked for quantiles of their own data, and the env's reward
never reaches training, the rounds' or the PPO reference's (poisoned, it changes what they report
and nothing they train)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import ROOT
from justask.config import load_params
from justask.families.reward.asks import quantile_target
from justask.steps import StepTable


def _params(folder: Path):
    cfg = yaml.safe_load((ROOT / "profiles" / "test.yaml").read_text())
    reward = cfg["families"]["reward"]
    reward["collect"]["workers"] = 1  # rollouts in this process, where the poisoned env is
    reward["train"]["seeds"] = [0]
    reward["train"]["ranking"]["tune"] = False
    reward["train"]["models"]["rvs"]["tune"] = False
    reward["train"]["rounds"] = {"rounds": 2, "episodes_per_noise": 2, "ask": 1.1}
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_params(path)


@pytest.fixture(scope="module")
def relabeled(tmp_path_factory) -> tuple[Path, object]:
    from justask.families.reward.collect import collect
    from justask.families.reward.relabel import relabel

    root = tmp_path_factory.mktemp("rounds") / "base"
    root.mkdir()
    params = _params(root)
    collect(params, root)
    relabel(params, root)
    return root, params


def _trained(relabeled, folder: Path) -> Path:
    from justask.families.reward.train import train

    base, params = relabeled
    root = folder / "run"
    shutil.copytree(base, root)
    train(params, root)
    return root


def _model_hashes(root: Path) -> dict[str, str]:
    train = root / "artifacts" / "reward" / "train"
    files = sorted(p for p in train.rglob("*") if p.is_file() and (p.name == "model.pt" or p.suffix == ".npy"))
    return {str(p.relative_to(train)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_each_round_adds_its_episodes_to_the_last_rounds_data(relabeled, tmp_path):
    root = _trained(relabeled, tmp_path)
    train = root / "artifacts" / "reward" / "train"
    tables = [StepTable.load(train / folder)[0] for folder in ("learned", "round1/learned", "round2/learned")]
    summary = json.loads((train / "rounds.json").read_text())["rounds"]
    for r in (1, 2):
        old, new = tables[r - 1], tables[r]
        added = summary[r - 1]["episodes_added"]
        assert added == 1 * 3 * 2  # one policy seed x three noise levels x two episodes
        assert new.n_episodes == old.n_episodes + added
        rows = len(old)
        assert np.array_equal(new.observations[:rows], old.observations[:rows])
        assert np.array_equal(new.rtg[:rows], old.rtg[:rows]) and np.array_equal(new.starts[:old.n_episodes + 1],
                                                                                  old.starts)
        # the round asked its policies for more learned return than the data it started from held
        assert summary[r - 1]["asked_learned_return"] == pytest.approx(quantile_target(1.1, old.returns))
        assert summary[r - 1]["asked_learned_return"] > old.returns.max()
        assert (train / f"round{r}" / "rvs" / "seed0" / "model.pt").exists()


def test_the_env_reward_never_reaches_training(relabeled, tmp_path, monkeypatch):
    """Train twice from the same relabeled data, the second time with LunarLander's reward replaced
    by noise: the rounds' reported true returns change, every model and every table stays the same."""
    from gymnasium.envs.box2d.lunar_lander import LunarLander

    clean = _trained(relabeled, tmp_path / "clean")
    step = LunarLander.step
    rng = np.random.default_rng(0)

    def poisoned(self, action):
        obs, reward, terminated, truncated, info = step(self, action)
        return obs, float(rng.normal(0.0, 1000.0)), terminated, truncated, info

    monkeypatch.setattr(LunarLander, "step", poisoned)
    dirty = _trained(relabeled, tmp_path / "dirty")
    hashes = _model_hashes(clean)
    assert any(k.startswith("round2/") for k in hashes) and "ppo/seed0/model.pt" in hashes
    assert hashes == _model_hashes(dirty)
    report = [json.loads((r / "artifacts" / "reward" / "train" / "rounds.json").read_text())["rounds"]
              for r in (clean, dirty)]
    assert report[0][0]["added_true_return_mean"] != report[1][0]["added_true_return_mean"]  # the poison was there
    ppo = [json.loads((r / "artifacts" / "reward" / "train" / "ppo" / "runs.json").read_text())["runs"][0]
           for r in (clean, dirty)]
    assert ppo[0]["true_return_last"] != ppo[1]["true_return_last"]  # PPO's envs were poisoned too
    assert ppo[0]["learned_return_last"] == ppo[1]["learned_return_last"]


def test_quantile_targets_ask_within_then_past_the_data():
    returns = np.array([0.0, 10.0, 20.0, 30.0, 100.0])
    assert quantile_target(0.5, returns) == 20.0 and quantile_target(1.0, returns) == 100.0
    assert quantile_target(0.75, returns) == pytest.approx(30.0)
    assert quantile_target(1.1, returns) == pytest.approx(110.0)  # one tenth of the range past the best
    with pytest.raises(ValueError, match="no returns"):
        quantile_target(0.9, [])
