"""Every registered family keeps the contract of docs/adding-a-family.md (justask.family)."""

import json
from pathlib import Path

import pytest

from helpers import ROOT
from justask.config import load_params
from justask.errors import StageFailed
from justask.families import families, get_family, run_stage
from justask.family import Family
from justask.settings import SECTIONS, STAGES, FamilySection

NAMES = sorted(families())


def test_the_registry_lists_the_families_and_refuses_others():
    assert NAMES and all(isinstance(f, Family) for f in families().values())
    with pytest.raises(StageFailed, match=r"unknown family 'nope'; available: " + ", ".join(families())):
        get_family("nope")


@pytest.mark.parametrize("name", NAMES)
def test_the_family_provides_its_stages_report_plot_and_schema(name):
    fam = get_family(name)
    assert fam.package == f"justask.families.{name}" and fam.summary and fam.models
    for stage in STAGES:
        assert callable(fam.stage(stage)), stage
    assert callable(fam.module("report").print_results)
    assert issubclass(fam.config, FamilySection)
    fields = {f.alias or n for n, f in fam.config.model_fields.items()}
    assert fields == set(SECTIONS), fields
    plot = json.loads((ROOT / "src" / "justask" / "families" / name / "plot.json").read_text())
    assert plot["data"]["values"] == "<DVC_METRIC_DATA>"  # what dvc plots fills in
    if fam.ask:
        ask = fam.module("ask")
        assert callable(ask.command)
        # `justask ask <name> --help` shows examples of the family's own command
        assert ask.EXAMPLES and all(e.startswith(f"justask ask {name}") for e in ask.EXAMPLES)
        from typer.testing import CliRunner

        from justask.cli import app

        shown = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["ask", name, "--help"]).output
        assert "Examples:" in shown and all(e.split("#")[0].strip() in shown for e in ask.EXAMPLES), shown
    else:
        assert not (ROOT / "src" / "justask" / "families" / name / "ask.py").exists()


@pytest.mark.parametrize("name", NAMES)
def test_the_family_is_configured_has_inputs_and_end_to_end_checks(name):
    for profile in ("params.yaml", "profiles/default.yaml", "profiles/test.yaml"):
        assert name in load_params(ROOT / profile).families, f"{profile} does not configure {name}"
    assert (ROOT / "data" / name).is_dir(), f"data/{name}/ (the family's versioned inputs) is missing: make data"
    assert (ROOT / "tests" / "families" / name / "checks.py").exists()


def test_a_stage_of_a_family_params_do_not_configure_fails_with_a_message(tmp_path: Path):
    params = load_params(ROOT / "profiles" / "test.yaml")
    name = NAMES[0]
    trimmed = params.model_copy(update={"families": {k: v for k, v in params.families.items() if k != name}})
    with pytest.raises(StageFailed, match=rf"params.yaml has no families.{name} section"):
        run_stage("collect", name, trimmed, tmp_path)
    assert not (tmp_path / "artifacts").exists()
