"""params.yaml validation: every problem names the file and the field's path."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from helpers import ROOT, family_module
from justask.cli import app
from justask.config import Params, ParamsError, load_params
from justask.families import families

PARAMS = ROOT / "params.yaml"


def _raw() -> dict:
    return yaml.safe_load(PARAMS.read_text())


def _write(tmp_path: Path, raw: dict | str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False))
    return path


def _error(tmp_path: Path, mutate: Callable[[dict], None]) -> str:
    raw = copy.deepcopy(_raw())
    mutate(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(ParamsError) as info:
        load_params(path)
    message = str(info.value)
    assert str(path) in message
    return message


@pytest.mark.parametrize(
    "path", [PARAMS, *sorted((ROOT / "profiles").glob("*.yaml"))], ids=lambda p: p.name
)
def test_repository_params_load(path):
    params = load_params(path)
    assert isinstance(params, Params)
    assert params.family("return").train.models


def test_defaults_of_repository_params():
    params = load_params(PARAMS)
    family = params.family("return")
    assert family.env.id == "LunarLander-v3"
    assert "medium-expert" in family.collect.datasets
    fractions = family.relabel.target_fractions
    assert fractions == sorted(set(fractions))


def _set(path: str, value) -> Callable[[dict], None]:
    """Mutation setting the dotted ``path`` (list indices as integers) to ``value``."""

    def mutate(raw: dict) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = raw
        for p in parents:
            node = node[p]
        node[last] = value

    return mutate


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("seeed", 1, "unknown key"),
        ("families.return.collect.workerz", 3, "unknown key"),
        ("families.return.train.models.rvs.hiden", 64, "unknown key"),
        ("families.return.evaluate.episodes", "many", "valid integer"),
        ("families.return.collect.datasets.mixed.0.episodes", -5, "greater than 0"),
        ("families.return.collect.datasets.mixed.1.epsilon", 1.5, "less than or equal to 1"),
        ("families.return.collect.datasets.mixed.1.epsilon", -0.1, "greater than or equal to 0"),
        ("families.return.env.id", "CartPole-v1", "LunarLander-v3"),
        ("families.return.collect.datasets.mixed.0.controller", "pilot", "unknown controller 'pilot'"),
        ("families.return.relabel.target_fractions", [0.5, 0.3, 1.0], "strictly increasing"),
        ("families.return.relabel.target_fractions", [0.5, 0.5], "strictly increasing"),
        ("families.return.train.seeds", [0, 0], "distinct"),
        ("families.language.env.levels", ["BabyAI-GoToNowhere-v0"], "unknown BabyAI level(s)"),
        ("families.language.collect.mix.0.behaviour", "oracle", "'bot', 'other_goal', 'noisy_bot' or 'random'"),
    ],
)
def test_invalid_field_is_named(tmp_path, field, value, expected):
    message = _error(tmp_path, _set(field, value))
    assert f"  - {field}:" in message  # the full path, from the top level
    assert expected in message
    assert "1 invalid setting(s)" in message


@pytest.mark.parametrize(
    ("field", "value", "at", "expected"),
    [
        ("families.language.collect.mix.1.epsilon", 0.0, "families.language.collect.mix.1",
         "epsilon must be > 0 for noisy_bot"),
        ("families.language.collect.mix.0.epsilon", 0.2, "families.language.collect.mix.0",
         "epsilon must be > 0 for noisy_bot"),
        ("families.language.relabel.held_out.colour_object", [["red", "ball"], ["red", "box"], ["red", "key"]],
         "families.language.relabel.held_out", "colour 'red'"),
        ("families.language.relabel.held_out.colour_object", [["pink", "ball"]],
         "families.language.relabel.held_out.colour_object.0.0", "'red', 'green'"),
        ("families.language.relabel.held_out.verb_object", [["pickup", "ball"], ["pickup", "box"], ["pickup", "key"]],
         "families.language.relabel.held_out", "verb 'pickup'"),
        ("families.language.train.models.relabeled-minilm.reader", "factored",
         "families.language.train.models.relabeled-minilm", "set encoder: word, or reader: tokens"),
    ],
)
def test_invalid_combination_is_named(tmp_path, field, value, at, expected):
    """Checks across fields name the entry that holds them."""
    message = _error(tmp_path, _set(field, value))
    assert f"  - {at}:" in message
    assert expected in message


def test_held_out_pair_not_composable_in_a_level_is_refused(tmp_path):
    """Per level, not pooled: (purple, door) is refused because OpenDoorColor's rooms hold only
    doors, so "purple" is never trained there; as a cross-level pair it is accepted."""
    def hold(colour_object, cross_level=()):
        def mutate(raw):
            lang = raw["families"]["language"]
            lang["env"]["levels"] = ["BabyAI-GoToLocal-v0", "BabyAI-OpenDoorColor-v0"]
            lang["relabel"]["held_out"].update(colour_object=colour_object, cross_level=list(cross_level))
        return mutate

    message = _error(tmp_path, hold([["red", "ball"], ["purple", "door"]]))
    assert "  - families.language:" in message
    assert "relabel.held_out" in message
    assert "('purple', 'door') in BabyAI-OpenDoorColor-v0" in message
    assert "the colour 'purple' with another object" in message
    raw = _raw()
    hold([["red", "ball"]], [["purple", "door"]])(raw)
    assert load_params(_write(tmp_path, raw)).family("language").relabel.held_out.cross_level == [("purple", "door")]


def test_unknown_model_kind(tmp_path):
    message = _error(tmp_path, _set("families.return.train.models.ppo", {"hidden": 64}))
    assert "families.return.train.models:" in message
    assert "unknown model(s) ['ppo']" in message
    assert "allowed: bc, pct_bc, rvs, dt, skill" in message


def test_return_models_tune_only_on_full_length_trials(tmp_path):
    """Short trials select settings that ignore the condition (benchmarks/README.md), so a tuned
    return-conditioned model must be tuned on trials of its full step count."""
    def tuned(raw, fraction=0.2, kind="rvs"):
        raw["families"]["return"]["train"]["models"][kind]["tune"] = True
        raw["families"]["return"]["train"]["tune"]["trial_steps_fraction"] = fraction

    message = _error(tmp_path, tuned)
    assert "  - families.return.train:" in message
    assert "models ['rvs'] are tuned on trials of 0.2 x their steps" in message
    assert "Set tune.trial_steps_fraction: 1.0, or tune: false on those models" in message
    raw = copy.deepcopy(_raw())
    tuned(raw, fraction=1.0)
    load_params(_write(tmp_path, raw))
    message = _error(tmp_path, lambda raw: tuned(raw, fraction=1.0, kind="skill"))
    assert "tune: true on ['skill']: only the return-conditioned models (rvs, dt) are tuned" in message


def test_every_problem_is_listed(tmp_path):
    def mutate(raw: dict) -> None:
        _set("families.return.collect.workerz", 3)(raw)
        _set("families.return.evaluate.episodes", "many")(raw)

    message = _error(tmp_path, mutate)
    assert "2 invalid setting(s)" in message
    assert "families.return.collect.workerz:" in message
    assert "families.return.evaluate.episodes:" in message


def test_missing_required_section(tmp_path):
    message = _error(tmp_path, lambda raw: raw["families"]["return"].pop("train"))
    assert "families.return:" in message
    assert "missing section(s) train:" in message
    assert "1 invalid setting(s)" in message


@pytest.mark.parametrize("section", ["env", "collect", "validate", "relabel", "train", "evaluate"])
@pytest.mark.parametrize("family", ["return", "language", "reward"])
def test_every_family_section_is_required(tmp_path, family, section):
    """A family's params hold all six sections (dvc.yaml tracks each): a missing one, even one
    whose defaults would do, is named at the family's path."""
    message = _error(tmp_path, lambda raw: raw["families"][family].pop(section))
    assert f"families.{family}:" in message
    assert f"missing section(s) {section}:" in message
    assert "env, collect, validate, relabel, train, evaluate" in message
    assert "1 invalid setting(s)" in message


def test_empty_validate_section_keeps_defaults(tmp_path):
    raw = copy.deepcopy(_raw())
    raw["families"]["return"]["validate"] = {}
    params = load_params(_write(tmp_path, raw))
    assert params.family("return").validate_.max_examples == 5


def test_unknown_family(tmp_path):
    def mutate(raw: dict) -> None:
        raw["families"]["retrun"] = raw["families"].pop("return")

    message = _error(tmp_path, mutate)
    assert "families:" in message
    assert (f"unknown family 'retrun'; available: {', '.join(sorted(families()))} "
            "(packages in src/justask/families/)") in message
    assert "1 invalid setting(s)" in message


def test_families_must_not_be_empty(tmp_path):
    message = _error(tmp_path, lambda raw: raw.update(families={}))
    assert "families:" in message
    assert f"name at least one experiment family to run: {', '.join(sorted(families()))}" in message


def test_families_section_is_required(tmp_path):
    message = _error(tmp_path, lambda raw: raw.pop("families"))
    assert "families:" in message
    assert "required" in message.lower()


def test_family_is_typed_by_its_schema():
    from justask.families.improve.config import ImproveConfig
    from justask.families.language.config import LanguageConfig
    from justask.families.reward.config import RewardConfig

    params = load_params(PARAMS)
    assert list(params.families) == ["return", "language", "reward", "improve"]
    assert isinstance(params.family("return"), family_module("return", "config").ReturnConfig)
    assert isinstance(params.family("language"), LanguageConfig)
    assert isinstance(params.family("reward"), RewardConfig)
    assert isinstance(params.family("improve"), ImproveConfig)
    assert params.family("reward") is params.families["reward"]
    assert params.family("language").env.levels


def test_errors_of_several_families_keep_their_paths(tmp_path):
    def mutate(raw: dict) -> None:
        _set("families.return.collect.workerz", 3)(raw)
        _set("families.reward.train.models.rvs.hiden", 64)(raw)
        _set("families.language.evaluate.num_envs", 0)(raw)

    message = _error(tmp_path, mutate)
    assert "3 invalid setting(s)" in message
    assert "families.return.collect.workerz: unknown key" in message
    assert "families.reward.train.models.rvs.hiden: unknown key" in message
    assert "families.language.evaluate.num_envs: " in message
    assert "greater than or equal to 1" in message


@pytest.mark.parametrize(("mutate", "what"), [
    (_set("families.language.collect.demos", 1), "collect.demos has 1 episode in all"),
    (_set("families.language.collect.mix", [{"behaviour": "random", "episodes": 1}]),
     "collect.mix has 1 episode in all"),
])
def test_language_too_small_to_split(tmp_path, mutate, what):
    def one_level(raw: dict) -> None:
        _set("families.language.env.levels", ["BabyAI-GoToLocal-v0"])(raw)
        mutate(raw)

    message = _error(tmp_path, one_level)
    assert "families.language: " in message
    assert what in message
    assert "raise its episodes (or levels) to 2 or more" in message


def test_invalid_yaml(tmp_path):
    path = _write(tmp_path, "seed: 0\nfamilies:\n  return:\n    collect: [1, 2\n")
    with pytest.raises(ParamsError, match="not valid YAML") as info:
        load_params(path)
    assert str(path) in str(info.value)
    assert "line" in str(info.value)


def test_top_level_must_be_a_mapping(tmp_path):
    path = _write(tmp_path, "- just\n- a list\n")
    with pytest.raises(ParamsError, match="mapping") as info:
        load_params(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ParamsError, match="not found") as info:
        load_params(path)
    assert str(path) in str(info.value)


def test_cli_stage_rejects_bad_params(tmp_path):
    raw = copy.deepcopy(_raw())
    _set("families.return.collect.workerz", 3)(raw)
    path = _write(tmp_path, raw)
    result = CliRunner().invoke(app, ["stage", "collect", "return", "--params", str(path)])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())  # undo rich's line wrapping
    assert "invalid parameters" in output
    assert "families.return.collect.workerz" in output
    assert str(path) in output


@pytest.mark.parametrize("profile", ["params.yaml", "profiles/default.yaml", "profiles/test.yaml"])
def test_every_param_dvc_tracks_is_written_out(profile):
    """DVC reads params.yaml itself, so a section pydantic would default must still be spelled out
    in every profile: otherwise `dvc repro` fails with "Parameters ... are missing"."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / profile).read_text())
    families = params["families"]
    assert families, f"{profile}: no families"
    for stage in dvc["stages"].values():
        assert stage["foreach"] == "${families}"
        for key in families:
            for entry in stage["do"]["params"]:
                dotted = entry.replace("${key}", key)
                assert "${" not in dotted, f"dvc.yaml: {entry} interpolates something other than ${{key}}"
                node = params
                for part in dotted.split("."):
                    assert isinstance(node, dict) and part in node, f"{profile}: no {dotted} (dvc.yaml needs it)"
                    node = node[part]
