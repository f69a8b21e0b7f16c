"""relabel (language): hindsight labels, held-out removal, evaluation asks as data."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT
from justask.config import load_params
from justask.families import run_stage
from justask.families.language.asking import GROUPS
from justask.families.language.env import collect_env_seeds, make_grid_env, reset_quietly
from justask.families.language.grammar import candidate_instructions, describe, is_held_out, parse
from justask.families.language.table import InstructionTable, build_instruction_table
from justask.paths import family_paths


def _setup(root: Path):
    params = load_params(ROOT / "profiles" / "test.yaml")
    (root / "data" / "language").mkdir(parents=True)
    shutil.copy(ROOT / "data" / "language" / "paraphrases.yaml", root / "data" / "language")
    run_stage("collect", "language", params, root)
    run_stage("relabel", "language", params, root)
    return params


@pytest.fixture(scope="module")
def relabeled(tmp_path_factory):
    root = tmp_path_factory.mktemp("lang-relabel")
    return root, _setup(root)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def test_samples_expand_labels_to_their_segments():
    episodes = [
        {"observations": {"image": np.zeros((4, 7, 7, 3), np.uint8), "direction": np.zeros(4, np.int64)},
         "actions": np.array([0, 1, 2])},
        {"observations": {"image": np.ones((3, 7, 7, 3), np.uint8), "direction": np.ones(3, np.int64)},
         "actions": np.array([2, 2])},
    ]
    table = build_instruction_table(episodes, [[(0, 1, 0), (1, 2, 5)], [(0, 0, 3)]], np.array([0, 1]))
    rows, instr, first = table.samples(0)
    assert rows.tolist() == [0, 1, 1, 2] and instr.tolist() == [0, 0, 5, 5] and first.tolist() == [0, 0, 1, 1]
    rows, instr, first = table.samples(1)
    assert rows.tolist() == [3] and instr.tolist() == [3] and first.tolist() == [3]
    with pytest.raises(ValueError, match="outside its 2 steps"):
        build_instruction_table(episodes, [[], [(0, 2, 0)]], np.array([0, 1]))
    with pytest.raises(ValueError, match="steps 1..0"):
        build_instruction_table(episodes, [[(1, 0, 0)], []], np.array([0, 1]))


def test_no_held_out_instruction_is_trained_on(relabeled):
    root, params = relabeled
    held = params.family("language").relabel.held_out
    catalogue = json.loads((family_paths("language", root).relabel / "instructions.json").read_text())
    assert catalogue["held_out"] > 0  # the test profile does meet held-out combinations
    for name in ("relabeled", "demos"):
        table, meta = InstructionTable.load(family_paths("language", root).relabel / name)
        for text in np.array(meta["instructions"])[np.unique(table.label_instruction)]:
            assert is_held_out(parse(str(text)), held.colour_object, held.verb_object, held.cross_level) is None


def test_labels_are_what_the_episode_achieved(relabeled):
    root, params = relabeled
    from justask.datasets import read_episodes

    episodes = read_episodes(family_paths("language", root).dataset("mix"))
    table, meta = InstructionTable.load(family_paths("language", root).relabel / "relabeled")
    assert len(table.label_end) > 0
    for e in np.unique(table.label_episode)[:5]:
        ep = episodes[e]
        cfg = params.family("language").relabel
        found = {(a.text, a.start, a.step) for a in describe(ep["infos"]["level"][0].decode(), int(ep["seed"]),
                                                             ep["actions"], cfg.max_sequences,
                                                             slack=cfg.segment_slack, margin=cfg.segment_margin)}
        here = table.label_episode == e
        mine = {(meta["instructions"][i], int(start), int(end)) for i, start, end in zip(
            table.label_instruction[here], table.label_start[here], table.label_end[here], strict=True)}
        assert mine and mine <= found


def test_demos_are_labelled_with_their_own_mission(relabeled):
    root, _ = relabeled
    table, meta = InstructionTable.load(family_paths("language", root).relabel / "demos")
    assert len(table.label_end) > 0
    assert np.all(table.label_end == table.starts[table.label_episode + 1] - table.starts[table.label_episode] - 1)


def test_evaluation_asks_are_achievable_and_held_out_from_collection(relabeled):
    root, params = relabeled
    conditions = json.loads(family_paths("language", root).conditions.read_text())
    asks = conditions["asks"]
    assert {a["group"] for a in asks} == set(GROUPS)
    assert not {a["env_seed"] for a in asks} & collect_env_seeds(params)
    held = params.family("language").relabel.held_out
    envs = {level: make_grid_env(level) for level in params.family("language").env.levels}
    for ask in asks:
        env = envs[ask["level"]]
        reset_quietly(env, ask["env_seed"])
        instr = parse(ask["instruction"])
        assert instr in candidate_instructions(env)
        group = is_held_out(instr, held.colour_object, held.verb_object, held.cross_level)
        if ask["group"] in ("colour_object", "cross_level", "verb_object"):
            assert group == ask["group"]
        elif ask["group"] in ("seen", "paraphrase"):
            assert group is None
        if ask["group"] == "paraphrase":
            assert ask["text"] != ask["instruction"]
        else:
            assert ask["text"] == ask["instruction"]


def test_relabel_is_byte_identical_on_rerun(relabeled, tmp_path):
    root, _ = relabeled
    _setup(tmp_path)
    assert _digest(family_paths("language", root).relabel) == _digest(family_paths("language", tmp_path).relabel)


def test_relabel_refuses_a_pair_its_labels_cannot_compose(relabeled, tmp_path):
    """Checked again on the labels themselves: in this little data "red" is never trained on another
    object in GoToLocal, so holding out the red ball would not test composition there."""
    import yaml

    from justask.errors import StageFailed

    root, _ = relabeled
    raw = yaml.safe_load((ROOT / "profiles" / "test.yaml").read_text())
    raw["families"]["language"]["relabel"]["held_out"]["colour_object"] = [["red", "ball"]]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(tmp_path / "params.yaml")  # the rooms of GoToLocal do allow it
    before = _digest(family_paths("language", root).relabel)
    with pytest.raises(StageFailed, match=r"\('red', 'ball'\) in BabyAI-GoToLocal-v0: training there never pairs "
                                          r"the colour 'red' with another object"):
        run_stage("relabel", "language", params, root)
    assert _digest(family_paths("language", root).relabel) == before  # nothing written


def test_held_out_design_is_recorded(relabeled):
    root, params = relabeled
    design = json.loads((family_paths("language", root).relabel / "instructions.json").read_text())["design"]
    assert list(design) == params.family("language").env.levels
    assert "goto blue box" in design["BabyAI-GoToLocal-v0"]  # blue is trained with another object there
    assert not any(c.endswith("purple door") for c in design["BabyAI-OpenDoorColor-v0"])
