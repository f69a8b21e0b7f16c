"""Bad input gets one clear message, early: a non-zero exit, the file and/or field, what was found and
how to fix it, no traceback, and nothing already written is lost.

Complements tests/engine/test_config.py (params fields), tests/engine/test_validate.py and
tests/families/language/test_validate.py (data checks inside a dataset) with the cases they leave out: each
category runs the real ``justask`` CLI in a subprocess at least once, the rest call the loaders.
Datasets are a few short LunarLander episodes rolled out and written by the project's own code.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from minari.data_collector.episode_buffer import EpisodeBuffer

from helpers import ROOT, family_module, flat, tree_hashes
from justask.cli import DETERMINISTIC_EXIT
from justask.config import Params, ParamsError, load_params
from justask.datasets import read_episodes, write_buffers, write_dataset
from justask.errors import CheckpointError, DatasetError
from justask.families.language.env import ACTION_SPACE, OBSERVATION_SPACE
from justask.families.language.grammar import Vocabulary
from justask.families.language.policy import GridSpec, build_policy, load_policy, save_policy
from justask.families.reward.ranking import load_learned_reward, ranking_dir
from justask.lunar.config import EnvConfig
from justask.lunar.datasets import validate_lunar_dataset
from justask.lunar.env import make_env
from justask.lunar.jobs import Job, run_job
from justask.models import Spec, build_model, load_model
from justask.paths import family_paths
from justask.rollout import Episode
from justask.training.checkpoints import save_checkpoint

relabel = family_module("return", "relabel").relabel
expected_provenance = family_module("return", "provenance").expected_provenance
# What the return family's validate tells the user to do about a dataset from another env.
ENV_FIX = ("re-run collect with the configured env, or set params families.return.env to the env the dataset was "
           "recorded with")
# What the return family's validate tells the user to do about a dataset from another env.

JUSTASK = str(Path(sys.executable).parent / "justask")
MAX_STEPS = 40
ENV = EnvConfig(max_episode_steps=MAX_STEPS)
N_EPISODES = 4


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed ``justask`` command in ``cwd``; the output is checked to carry no traceback."""
    env = {**os.environ, "COLUMNS": "100"}
    proc = subprocess.run([JUSTASK, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env=env)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    return proc


def params_dict() -> dict:
    return {"families": {"return": {
        "env": {"max_episode_steps": MAX_STEPS},
        "collect": {"datasets": {"d": [{"controller": "random", "episodes": N_EPISODES}]}},
        "validate": {"max_examples": 2},
        "relabel": {},
        "train": {"seeds": [0], "models": {"rvs": {"hidden": 8, "layers": 1}}},
        "evaluate": {"episodes": 2, "num_envs": 2, "gif": False},
    }}}


def check(path: Path, expected_episodes: int = N_EPISODES):
    """Validation of ``path`` as the return family's validate runs it (for the env ``ENV``)."""
    return validate_lunar_dataset(path, ENV, expected_episodes, "return")


def write_params(root: Path, raw: dict) -> Path:
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def episodes() -> list[Episode]:
    _, eps = run_job(Job("random", 0.0, tuple(range(N_EPISODES)), 0, ENV, 2))
    return eps


def write(path: Path, eps: list[Episode], **env_kw) -> Path:
    env = make_env(max_episode_steps=MAX_STEPS, **env_kw)
    write_dataset(path, eps, env, {"ref_min_score": -200.0, "ref_max_score": 200.0,
                                   "behaviours": json.dumps(["random"] * len(eps))})
    env.close()
    return path


# --------------------------------------------------------------------------- params.yaml


def _error(tmp_path: Path, raw: dict) -> str:
    path = write_params(tmp_path, raw)
    with pytest.raises(ParamsError) as info:
        load_params(path)
    message = flat(str(info.value))
    assert str(path) in message and "Fix these entries" in message
    return message


def test_cli_rejects_inconsistent_params_before_any_work(tmp_path):
    """A dataset of one episode cannot be split into training and validation: refused at load time,
    by the real CLI, before collect writes anything."""
    raw = params_dict()
    raw["families"]["return"]["collect"]["datasets"]["d"][0]["episodes"] = 1
    path = write_params(tmp_path, raw)
    proc = cli(["stage", "collect", "return", "--params", str(path)], tmp_path)
    assert proc.returncode == DETERMINISTIC_EXIT
    err = flat(proc.stderr)
    assert "invalid parameters" in err and str(path) in err
    assert "families.return.collect.datasets:" in err and "dataset 'd' has 1 episode" in err
    assert "raise episodes to 2 or more" in err
    assert not (tmp_path / "artifacts").exists()


def test_cli_names_a_missing_input_no_stage_check_covers(tmp_path):
    """A stage whose input an earlier stage writes is missing (here evaluate before relabel): the
    file, the DVC target that rebuilds it, exit status 2 (a rerun fails the same way), no traceback."""
    write_params(tmp_path, params_dict())
    proc = cli(["stage", "evaluate", "return"], tmp_path)
    assert proc.returncode == DETERMINISTIC_EXIT
    err = flat(proc.stderr)
    assert "evaluate failed" in err and "artifacts/return/relabel/conditions.json: missing" in err
    assert "dvc repro evaluate@return" in err


def test_cli_rejects_wrong_type_and_unknown_key(tmp_path):
    raw = params_dict()
    raw["families"]["return"]["evaluate"]["episodes"] = "ten"
    raw["families"]["return"]["train"]["models"]["rvs"]["hiden"] = 8
    path = write_params(tmp_path, raw)
    proc = cli(["stage", "train", "return", "--params", str(path)], tmp_path)
    assert proc.returncode == DETERMINISTIC_EXIT
    err = flat(proc.stderr)
    assert "2 invalid setting(s)" in err
    assert "families.return.evaluate.episodes: Input should be a valid integer" in err and "(found 'ten')" in err
    assert "families.return.train.models.rvs.hiden: unknown key; remove it" in err


@pytest.mark.parametrize("section, key, value, expected", [
    ("collect", "demos", 1, "collect.demos has 1 episode in all"),
    ("collect", "mix", [{"behaviour": "random", "episodes": 1}], "collect.mix has 1 episode in all"),
], ids=["one-demo", "one-mix-episode"])
def test_language_data_too_small_to_split(tmp_path, section, key, value, expected):
    """Checked on the whole family section (levels x episodes): the error sits at families.language
    and names the field."""
    raw = yaml.safe_load((ROOT / "profiles" / "test.yaml").read_text())
    language = raw["families"]["language"]
    language["env"]["levels"] = language["env"]["levels"][:1]  # one level: 1 episode in all
    language["relabel"]["held_out"]["cross_level"] = []  # its doors are in the second level
    language[section][key] = value
    message = _error(tmp_path, raw)
    assert "families.language: " in message and expected in message and "2 or more" in message


@pytest.mark.parametrize("field, value, expected", [
    ("env.id", "CartPole-v1", "Input should be 'LunarLander-v3' (found 'CartPole-v1')"),
    ("collect.demonstrator", "random", "unknown or unscripted demonstrator 'random'; allowed: expert"),
    ("collect.noise", [0.5], "noise must list at least two distinct levels"),
    ("collect.noise", [0.0, 1.5], "less than or equal to 1"),
    ("train.models", {"bc": {}}, "models must name return-conditioned policies (rvs, dt); found ['bc']"),
    ("relabel.snippet", 1, "greater than or equal to 2"),
    ("train.rounds.ask", -0.5, "greater than or equal to 0"),
    ("evaluate.target_fractions", [1.0], "unknown key"),
], ids=["env-id", "unscripted-demonstrator", "one-noise-level", "noise-out-of-range", "unconditioned-model",
        "snippet-too-short", "negative-ask", "old-target-fractions"])
def test_reward_family_settings(tmp_path, field, value, expected):
    """The reward family's own fields (tests/engine/test_config.py covers the return and language ones)."""
    raw = yaml.safe_load((ROOT / "profiles" / "test.yaml").read_text())
    *parents, last = field.split(".")
    node = raw["families"]["reward"]
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    message = _error(tmp_path, raw)
    assert f"families.reward.{field}" in message and expected in message


@pytest.mark.parametrize("changes, expected", [
    ({"relabel": {"noise_margin": 0.8, "rank_demos": False}, "collect": {"noise": [0.0, 0.5]}},
     "relabel.noise_margin 0.8 is wider than the noise levels [0.0, 0.5] span"),
    ({"relabel": {"pairs": 1}}, "relabel.pairs 1 cannot give each of the 2 ensemble members its own pairs"),
], ids=["margin-too-wide", "too-few-pairs-per-member"])
def test_reward_pairs_that_cannot_be_drawn(tmp_path, changes, expected):
    """Checked across sections before any work: the error sits at families.reward and names the fix."""
    raw = yaml.safe_load((ROOT / "profiles" / "test.yaml").read_text())
    for section, values in changes.items():
        raw["families"]["reward"][section].update(values)
    message = _error(tmp_path, raw)
    assert "families.reward: " in message and expected in message


# --------------------------------------------------------------------------- datasets


def test_cli_relabel_on_truncated_dataset_keeps_earlier_output(tmp_path, episodes):
    """The relabel stage used to crash with an h5py traceback on a damaged file."""
    write_params(tmp_path, params_dict())
    paths = family_paths("return", tmp_path)
    h5 = write(paths.dataset("d"), episodes) / "main_data.hdf5"
    h5.write_bytes(h5.read_bytes()[: h5.stat().st_size // 2])
    earlier = paths.relabeled("d") / "steps.npy"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"earlier run")
    paths.conditions.write_text('{"earlier": true}')
    before = tree_hashes(paths.relabel)
    proc = cli(["stage", "relabel", "return"], tmp_path)
    assert proc.returncode == DETERMINISTIC_EXIT
    err = flat(proc.stderr)
    assert "relabel failed" in err and "artifacts/return/collect/d: reading episodes failed (OSError:" in err
    assert "damaged or truncated: restore it with `dvc checkout`" in err and "`dvc repro collect@return`" in err
    assert tree_hashes(paths.relabel) == before


def test_cli_validate_dataset_from_another_env(tmp_path, episodes):
    """A continuous-LunarLander dataset where the discrete env is configured: named on load, before
    any expectation runs, with both envs and the fix."""
    write_params(tmp_path, params_dict())
    paths = family_paths("return", tmp_path)
    _, cont = run_job(Job("random", 0.0, (0, 1), 0, EnvConfig(max_episode_steps=MAX_STEPS, continuous=True), 2))
    write(paths.dataset("d"), cont, continuous=True)
    data = tree_hashes(paths.collect)
    proc = cli(["stage", "validate", "return"], tmp_path)
    assert proc.returncode == DETERMINISTIC_EXIT
    err = flat(proc.stderr)
    assert "validate failed" in err and "d: artifacts/return/collect/d: action space" in err
    assert ("action space Box(-1.0, 1.0, (2,), float32) differs from the configured env's Discrete(4) "
            "(continuous=False)") in err
    assert ENV_FIX in err
    assert tree_hashes(paths.collect) == data
    saved = json.loads((paths.validate / "d.json").read_text())
    assert not saved["success"] and "differs" in saved["error"] and saved["evaluated"] == 0


@pytest.mark.parametrize("attr, cut, found, needed", [
    ("observations", lambda a: a[:, :6], "(6,)", "(8,)"),
    ("actions", lambda a: np.stack([a, a], axis=1), "(2,)", "()"),
], ids=["observation-shape", "action-shape"])
def test_steps_of_the_wrong_shape(tmp_path, episodes, attr, cut, found, needed):
    """Arrays whose shape per step disagrees with the dataset's declared space (this used to end in a
    pandas traceback in validate)."""
    eps = copy.deepcopy(episodes)
    setattr(eps[2], attr, cut(getattr(eps[2], attr)))
    path = write(tmp_path / "d", eps)
    with pytest.raises(DatasetError) as info:
        check(path)
    message = str(info.value)
    assert f"{path}: episode 2 {attr}: each step has shape {found}" in message
    assert f"needs {needed}" in message and "Re-run collect" in message


def test_language_image_of_the_wrong_shape(tmp_path):
    """A BabyAI dataset whose images are 5x5 while its space declares 7x7 (Dict spaces key by key)."""
    steps = 3
    buffer = EpisodeBuffer(id=0, seed=0, observations={"image": np.zeros((steps + 1, 5, 5, 3), np.uint8),
                                                       "direction": np.zeros(steps + 1, np.int64)},
                           actions=np.zeros(steps, np.int64), rewards=np.zeros(steps),
                           terminations=np.r_[np.zeros(steps - 1, bool), True], truncations=np.zeros(steps, bool),
                           infos={})
    path = write_buffers(tmp_path / "mix", [buffer], OBSERVATION_SPACE, ACTION_SPACE, None, {})
    with pytest.raises(DatasetError, match=r"episode 0 observations\['image'\]: each step has shape \(5, 5, 3\).*"
                                           r"needs \(7, 7, 3\)"):
        read_episodes(path)


def test_empty_dataset(tmp_path):
    """No episodes at all: validate and relabel both stop on load, naming the folder."""
    env = make_env(max_episode_steps=MAX_STEPS)
    paths = family_paths("return", tmp_path)
    write_dataset(paths.dataset("d"), [], env, {"ref_min_score": 0.0, "ref_max_score": 1.0, "behaviours": "[]"})
    env.close()
    with pytest.raises(DatasetError, match=f"{paths.dataset('d')}: the dataset holds no episodes; re-run collect"):
        check(paths.dataset("d"))
    with pytest.raises(DatasetError, match="holds no episodes"):
        relabel(Params.model_validate(params_dict()), tmp_path)
    assert not paths.relabel.exists()


# --------------------------------------------------------------------------- checkpoints

SPEC = Spec(obs_dim=8, act_dim=4, discrete=True, max_timestep=MAX_STEPS, obs_mean=(0.0,) * 8,
            obs_std=(1.0,) * 8, return_scale=100.0)
HP = {"hidden": 8, "layers": 1, "dropout": 0.0}


def save(path: Path, kind: str = "rvs", spec: Spec = SPEC, hp: dict = HP, provenance: dict | None = None) -> Path:
    save_checkpoint(path, kind, hp, spec, build_model(kind, hp, spec), {}, provenance)
    return path


def save_language(path: Path) -> Path:
    vocab = Vocabulary.build(["go to the red ball"])
    hp, spec = {"hidden": 8, "context": 2, "dropout": 0.0}, GridSpec(7, "word", len(vocab.words))
    save_policy(path, hp, spec, build_policy(hp, spec), vocab, {})
    return path


PROVENANCE_CASES = ["other-family", "other-action-space", "other-dataset", "other-model", "stale-data",
                    "changed-settings", "no-provenance"]


@pytest.mark.parametrize("case", PROVENANCE_CASES)
def test_cli_evaluate_rejects_foreign_checkpoint_before_rolling_out(tmp_path, case):
    """A checkpoint that is not the model evaluate expects in a slot: a language-family policy, a
    policy trained for continuous LunarLander, one trained on another dataset or as another model,
    one trained before its data or its settings changed, or one recording no provenance. Each is
    named (what the file records and what was expected) before any episode runs; earlier metrics stay."""
    raw = params_dict()
    write_params(tmp_path, raw)
    params = Params.model_validate(raw)
    paths = family_paths("return", tmp_path)
    paths.eval_seeds.parent.mkdir(parents=True)
    shutil.copy(family_paths("return", ROOT).eval_seeds, paths.eval_seeds)
    paths.conditions.parent.mkdir(parents=True)
    paths.conditions.write_text(json.dumps({"target_fractions": [1.0],
                                            "datasets": {"d": {"target_returns": {"1": 200.0}}}}))
    for dataset in ("d", "e"):
        paths.relabeled(dataset).mkdir(parents=True)
        (paths.relabeled(dataset) / "actions.npy").write_bytes(dataset.encode())
    paths.collect_summary.parent.mkdir(parents=True)
    paths.collect_summary.write_text(json.dumps(
        {"behaviours": {"random": {"episodes": N_EPISODES, "rating": -180.0, "rating_episodes": 2}}}))
    ckpt = paths.run_dir("d", "rvs", 0) / "model.pt"
    right = expected_provenance(params, paths, "d", "rvs")
    provenance, expected = {
        "other-dataset": ({**right, "dataset": "e", "data": expected_provenance(params, paths, "e", "rvs")["data"]},
                          ["dataset: 'e' in the file, 'd' expected (it was copied from another dataset's slot)",
                           f"in the file, {right['data'][:12] + '...'!r} expected (the data it was trained on"]),
        "other-model": ({**right, "kind": "dt"}, ["kind: 'dt' in the file, 'rvs' expected"]),
        "stale-data": ({**right, "data": "0" * 64}, ["data: '000000000000...' in the file",
                                                     "(the data it was trained on changed since"]),
        "changed-settings": (expected_provenance(Params.model_validate({**raw, "seed": 7}), paths, "d", "rvs"),
                             ["config: ", "(params.yaml's seed, env or train settings changed since it was trained)"]),
        "no-provenance": (None, ["records no provenance (it predates provenance checks or was written by hand), so "
                                 "it cannot be checked against return/d/rvs"]),
    }.get(case, (right, []))
    if case == "other-family":
        save_language(ckpt)
        expected = ["not a justask return-conditioned policy checkpoint: it holds a 'instruction' model, and "
                    "only bc / pct_bc / rvs / dt / skill models are read here. The file was copied from another family "
                    "or stage",
                    "restore it with `dvc checkout` or re-run the train stage"]
    elif case == "other-action-space":
        save(ckpt, spec=Spec(**{**SPEC.__dict__, "act_dim": 2, "discrete": False}), provenance=right)
        expected = ["trained for {'obs_dim': 8, 'discrete': False, 'act_dim': 2}",
                    "configured env LunarLander-v3 (continuous=False) has {'obs_dim': 8, 'discrete': True, "
                    "'act_dim': 4}", "Re-train for this env"]
    else:
        save(ckpt, provenance=provenance)
        expected += ["`dvc repro train@return`"]
    paths.metrics.parent.mkdir(parents=True, exist_ok=True)
    paths.metrics.write_text('{"earlier": true}')
    proc = cli(["stage", "evaluate", "return"], tmp_path)
    assert proc.returncode == DETERMINISTIC_EXIT
    err = flat(proc.stderr)
    assert "evaluate failed" in err and f"{ckpt.relative_to(tmp_path)}: " in err
    for e in expected:
        assert e in err
    assert paths.metrics.read_text() == '{"earlier": true}'
    assert not paths.evaluate.exists()


def test_instruction_loader_rejects_return_checkpoint(tmp_path):
    path = save(tmp_path / "model.pt", "dt", hp={**HP, "heads": 1, "context": 2, "layers": 1})
    with pytest.raises(CheckpointError) as info:
        load_policy(path)
    message = str(info.value)
    assert f"{path}: not a justask language checkpoint: it holds a 'dt' model, and only instruction models are " \
           "read here" in message
    assert "copied from another family or stage" in message and "re-run the train stage" in message


def test_weights_of_another_shape(tmp_path):
    """Weights from a wider model under the settings of a narrower one: the mismatched weight is named."""
    path = save(tmp_path / "model.pt", hp={**HP, "hidden": 16})
    payload = torch.load(path, weights_only=True)
    payload["hp"]["hidden"] = 8
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert f"{path}: weight 'body.0.weight' has shape (16, 9)" in message
    assert "needs (8, 9)" in message and "Re-run the train stage" in message


@pytest.mark.parametrize("damage", ["truncated", "not-a-checkpoint"])
def test_damaged_checkpoint(tmp_path, damage):
    path = save(tmp_path / "model.pt")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
        expected = "not a readable torch checkpoint"
    else:
        torch.save({"weights": torch.zeros(2)}, path)
        expected = "not a justask checkpoint (no kind, hp, spec, state_dict)"
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert str(info.value).startswith(f"{path}: {expected}") and "re-run the train stage" in str(info.value)


def test_learned_reward_member_from_another_stage(tmp_path):
    """The reward ensemble must hold ranking models: a policy copied in is named with the fix."""
    folder = ranking_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "ensemble.json").write_text(json.dumps({"members": 1, "scales": [1.0]}))
    member = save(folder / "member0" / "model.pt", "rvs")
    with pytest.raises(CheckpointError) as info:
        load_learned_reward(tmp_path)
    message = str(info.value)
    assert f"{member}: not a justask reward family's learned reward checkpoint: it holds a 'rvs' model" in message
    assert "only reward models are read here" in message
    (folder / "ensemble.json").write_text(json.dumps({"members": 2, "scales": [1.0]}))
    with pytest.raises(CheckpointError, match="lists 2 members but 1 scales"):
        load_learned_reward(tmp_path)


def test_cli_ask_names_a_foreign_checkpoint(tmp_path, monkeypatch):
    """`justask ask` reads a language checkpoint; a return-family file there gets a message, exit 1."""
    from typer.testing import CliRunner

    from justask.cli import app

    raw = yaml.safe_load((ROOT / "profiles" / "test.yaml").read_text())
    path = write_params(tmp_path, raw)
    model = next(iter(raw["families"]["language"]["train"]["models"]))
    ckpt = family_paths("language", tmp_path).train / model / "seed0" / "model.pt"
    save(ckpt)
    data = family_paths("language", tmp_path).relabel / raw["families"]["language"]["train"]["models"][model]["data"]
    data.mkdir(parents=True)
    (data / "meta.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["ask", "language", "go to the red ball", "--params", str(path)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    output = flat(result.output)
    assert f"{ckpt.relative_to(tmp_path)}: not a justask language checkpoint: it holds a 'rvs' model" in output
    assert "only instruction models are read here" in output
