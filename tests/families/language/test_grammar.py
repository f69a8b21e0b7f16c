"""Hindsight language relabeling on BabyAI: grammar, describe() against minigrid's own verifier,
held-out conditions, paraphrases and the vocabulary."""

import contextlib
import io

import gymnasium as gym
import numpy as np
import pytest
import yaml
from minigrid.utils.baby_ai_bot import BabyAIBot

from helpers import ROOT
from justask.families.language.grammar import (
    COLOURS,
    DOOR,
    GOAL_COLUMNS,
    OBJECTS,
    VERB_TYPES,
    Instruction,
    Sequence,
    Vocabulary,
    candidate_instructions,
    check_composition,
    check_held_out,
    clauses,
    composition_problems,
    describe,
    from_goal_tuple,
    from_minigrid,
    is_held_out,
    level_inventory,
    load_paraphrases,
    paraphrase,
    parse,
)

GOTO = "BabyAI-GoToLocal-v0"
PUTNEXT = "BabyAI-PutNextLocal-v0"
DOORS = "BabyAI-OpenDoorColor-v0"
RED_BALL, BLUE_KEY, GREY_BOX = ("red", "ball"), ("blue", "key"), ("grey", "box")


def make(level: str, seed: int):
    env = gym.make(level)
    with contextlib.redirect_stdout(io.StringIO()):
        env.reset(seed=seed)
    return env


def bot_episode(level: str, seed: int) -> tuple[list[int], object]:
    env = make(level, seed)
    bot, actions = BabyAIBot(env), []
    while True:
        actions.append(int(bot.replan()))
        _, reward, terminated, truncated, _ = env.step(actions[-1])
        if terminated or truncated:
            assert terminated and reward > 0, "the bot should solve these levels"
            return actions, env


def random_episode(level: str, seed: int, n: int = 120) -> list[int]:
    env, rng, actions = make(level, seed), np.random.default_rng(seed), []
    for _ in range(n):
        actions.append(int(rng.integers(0, 6)))
        _, _, terminated, truncated, _ = env.step(actions[-1])
        if terminated or truncated:
            break
    return actions


def success_step(level: str, seed: int, actions: list[int], instruction) -> int | None:
    """Replay with ``instruction`` as the level's only mission: the step at which the env says success."""
    env = make(level, seed)
    u = env.unwrapped
    u.instrs = instruction.to_minigrid()
    u.instrs.reset_verifier(u)
    for t, a in enumerate(actions):
        _, reward, terminated, _, _ = env.step(a)
        if terminated:
            assert reward > 0
            return t
    return None


# --- grammar -------------------------------------------------------------------------------------

ALL_INSTRUCTIONS = [
    Instruction(verb, (c, k)) for verb in ("goto", "pickup", "open") for k in VERB_TYPES[verb] for c in COLOURS
] + [Instruction("putnext", (c, k), (c2, k2)) for c in COLOURS for k in OBJECTS for c2 in COLOURS for k2 in OBJECTS]


def test_templates_render_as_babyai_sentences():
    assert Instruction("goto", RED_BALL).text == "go to the red ball"
    assert Instruction("pickup", BLUE_KEY).text == "pick up the blue key"
    assert Instruction("open", ("yellow", "door")).text == "open the yellow door"
    assert Instruction("putnext", ("green", "box"), ("grey", "ball")).text == "put the green box next to the grey ball"
    seq = Sequence(Instruction("goto", RED_BALL), Instruction("pickup", BLUE_KEY))
    assert seq.text == "go to the red ball then pick up the blue key"


def test_text_and_goal_tuple_round_trip():
    singles = ALL_INSTRUCTIONS
    seqs = [Sequence(a, b) for a, b in zip(singles, singles[::-1], strict=True)]
    for instruction in singles + seqs:
        assert parse(instruction.text) == instruction
        goal = instruction.goal_tuple()
        assert len(goal) == len(GOAL_COLUMNS) and all(isinstance(g, str) for g in goal)
        assert from_goal_tuple(goal) == instruction
    assert len({i.text for i in singles}) == len(singles)


@pytest.mark.parametrize("text", [
    "go to a red ball", "go to the ball", "pick up the red door", "open the red ball", "go to the pink ball",
    "go to the red ball, then pick up the blue key", "put the red ball next to the door",
    "go to the red ball on your left",
])
def test_parse_rejects_sentences_outside_the_grammar(text):
    with pytest.raises(ValueError, match="not a sentence of the grammar"):
        parse(text)


def test_invalid_instructions_are_rejected():
    for verb, obj, other in [
        ("jump", RED_BALL, None), ("pickup", ("red", "door"), None), ("open", RED_BALL, None),
        ("putnext", RED_BALL, None), ("goto", RED_BALL, BLUE_KEY), ("goto", ("pink", "ball"), None),
        ("putnext", RED_BALL, ("red", "door")),
    ]:
        with pytest.raises(ValueError):
            Instruction(verb, obj, other)


# --- describe ------------------------------------------------------------------------------------


def test_candidates_cover_the_objects_at_reset():
    env = make(PUTNEXT, 0)
    objs = {(o.color, o.type) for o in env.unwrapped.grid.grid if o is not None and o.type in OBJECTS}
    cands = candidate_instructions(env)
    assert len(cands) == len(set(cands))
    assert {c.obj for c in cands if c.verb == "pickup"} == objs
    assert {(c.obj, c.other) for c in cands if c.verb == "putnext"} == {(a, b) for a in objs for b in objs if a != b}


@pytest.mark.parametrize("level", [GOTO, PUTNEXT])
def test_bot_episode_achieves_its_own_mission_when_the_env_terminates(level):
    for seed in range(3):
        actions, env = bot_episode(level, seed)
        mission = from_minigrid(env.unwrapped.instrs)
        found = {a.instruction: a.step for a in describe(level, seed, actions)}
        assert found.get(mission) == len(actions) - 1, (seed, mission, found)


@pytest.mark.parametrize("level", [GOTO, PUTNEXT])
def test_every_achievement_is_confirmed_by_a_fresh_replay(level):
    n_sequences = 0
    for seed in range(4):
        actions = random_episode(level, seed)
        found = describe(level, seed, actions, max_sequences=20)
        assert found == describe(level, seed, actions, max_sequences=20)  # deterministic
        for a in found:
            assert a.text == a.instruction.text
            assert success_step(level, seed, actions, a.instruction) == a.step, (seed, a)
            n_sequences += isinstance(a.instruction, Sequence)
    assert n_sequences > 0


def test_nothing_true_is_left_out():
    level, seed = PUTNEXT, 1
    actions = random_episode(level, seed)
    found = {a.instruction for a in describe(level, seed, actions, max_sequences=0)}
    assert found
    for c in candidate_instructions(make(level, seed)):
        if c not in found:
            assert success_step(level, seed, actions, c) is None, c


def test_go_to_labels_face_the_object():
    """minigrid's "go to" keeps a picked-up object's old cell until the next drop; those are not labels."""
    level = PUTNEXT
    for seed in range(6):
        actions = random_episode(level, seed, 150)
        by_step = {}
        for a in describe(level, seed, actions, max_sequences=1000):
            last = a.instruction.parts[-1]
            if last.verb == "goto":
                by_step.setdefault(a.step, set()).add(last.obj)
        env = make(level, seed)
        u = env.unwrapped
        for t, action in enumerate(actions):
            env.step(action)
            cell = u.grid.get(*u.front_pos)
            for obj in by_step.get(t, ()):
                assert cell is not None and (cell.color, cell.type) == obj, (seed, t, obj)


def test_go_to_the_old_cell_of_a_carried_object_is_not_a_label():
    # PutNextLocal seed 0: one step forward, then the grey ball is on the right, the yellow key on the left.
    level, seed = PUTNEXT, 0
    actions = [2, 1, 3, 0, 0, 1, 1]  # forward, face ball, pick it up, face key, face the ball's old cell
    ball, key = Instruction("goto", ("grey", "ball")), Instruction("goto", ("yellow", "key"))
    stale = Sequence(key, ball)
    assert success_step(level, seed, actions, stale) == 6  # minigrid's verifier says yes ...
    env = make(level, seed)
    for a in actions:
        env.step(a)
    assert env.unwrapped.grid.get(*env.unwrapped.front_pos) is None  # ... facing an empty cell
    found = {a.instruction: a.step for a in describe(level, seed, actions, max_sequences=1000)}
    assert found[ball] == 1 and found[Instruction("pickup", ball.obj)] == 2 and found[key] == 4
    assert found[Sequence(Instruction("pickup", ball.obj), key)] == 4
    assert stale not in found


def test_every_sequence_the_env_accepts_is_found():
    level, seed = PUTNEXT, 84  # one drop achieves two putnexts; a later drop achieves one of them again
    actions = random_episode(level, seed)
    found = describe(level, seed, actions, max_sequences=1000)
    first = {a.instruction: a.step for a in found if isinstance(a.instruction, Instruction)}
    sequences = {a.instruction: a.step for a in found if isinstance(a.instruction, Sequence)}
    assert len(first) > 5 and sum(i.verb == "putnext" for i in first) >= 2
    for a in first:
        for b in first:
            if a != b:
                step = success_step(level, seed, actions, Sequence(a, b))
                assert sequences.get(Sequence(a, b)) == (step if step is not None and step > first[a] else None)


def test_turning_in_place_facing_nothing_achieves_nothing():
    for seed in range(100):
        u = make(GOTO, seed).unwrapped
        x, y = u.agent_pos
        neighbours = [u.grid.get(x + dx, y + dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        if all(c is None or c.type == "wall" for c in neighbours):
            break
    else:
        pytest.fail("no GoToLocal seed with an empty neighbourhood")
    assert describe(GOTO, seed, [0, 0, 0, 0]) == []
    assert describe(GOTO, seed, [1, 1, 1, 1, 3, 4, 5]) == []


def test_sequences_are_capped_and_ordered():
    level, seed = PUTNEXT, 0
    actions = random_episode(level, seed)
    full = describe(level, seed, actions, max_sequences=1000)
    seqs = [a for a in full if isinstance(a.instruction, Sequence)]
    assert len(seqs) > 2
    first_step = {a.instruction: a.step for a in full if isinstance(a.instruction, Instruction)}
    for s in seqs:
        assert first_step[s.instruction.first] < s.step and s.instruction.then in first_step
    capped = describe(level, seed, actions, max_sequences=2)
    assert [a for a in capped if isinstance(a.instruction, Instruction)] == [a for a in full if a not in seqs]
    assert len([a for a in capped if isinstance(a.instruction, Sequence)]) == 2
    assert set(capped) <= set(full)
    assert [(a.step, a.text) for a in capped] == sorted((a.step, a.text) for a in capped)


def test_actions_after_the_episode_ended_are_rejected():
    actions, _ = bot_episode(GOTO, 0)
    with pytest.raises(ValueError, match="ended at step"):
        describe(GOTO, 0, actions + [0])


# --- held-out conditions -------------------------------------------------------------------------


def test_is_held_out_finds_withheld_combinations_anywhere():
    colour_object, verb_object = {RED_BALL}, {("pickup", "key")}
    assert is_held_out(Instruction("goto", RED_BALL), colour_object, verb_object) == "colour_object"
    assert is_held_out(Instruction("goto", ("blue", "ball")), colour_object, verb_object) is None
    assert is_held_out(Instruction("pickup", BLUE_KEY), colour_object, verb_object) == "verb_object"
    assert is_held_out(Instruction("goto", BLUE_KEY), colour_object, verb_object) is None
    assert is_held_out(Instruction("putnext", GREY_BOX, RED_BALL), colour_object, verb_object) == "colour_object"
    assert is_held_out(Instruction("putnext", GREY_BOX, BLUE_KEY), set(), {("putnext", "key")}) == "verb_object"
    seq = Sequence(Instruction("goto", GREY_BOX), Instruction("pickup", ("grey", "key")))
    assert is_held_out(seq, colour_object, verb_object) == "verb_object"
    assert is_held_out(Sequence(seq.then, seq.first), colour_object, verb_object) == "verb_object"
    assert is_held_out(Sequence(Instruction("goto", GREY_BOX), Instruction("goto", RED_BALL)), [list(RED_BALL)], []) \
        == "colour_object"
    assert is_held_out(seq, set(), set()) is None


def test_check_held_out_accepts_a_compositional_split():
    colour_object, verb_object = {RED_BALL, BLUE_KEY, GREY_BOX}, {("pickup", "key"), ("putnext", "box")}
    assert check_held_out(colour_object, verb_object) is None  # accepted: returns without an error
    # The split is compositional: its combinations leave training, but every word stays in it.
    trained = [i for i in ALL_INSTRUCTIONS if is_held_out(i, colour_object, verb_object) is None]
    withheld = {i for i in ALL_INSTRUCTIONS if i not in trained}
    assert {Instruction("goto", RED_BALL), Instruction("pickup", ("red", "key")),
            Instruction("putnext", ("red", "key"), ("green", "box"))} <= withheld
    objects = [o for i in trained for o in (i.obj, i.other) if o is not None]
    assert {c for c, k in objects if k != DOOR} == set(COLOURS)
    assert {k for _, k in objects} == {*OBJECTS, DOOR}
    assert {i.verb for i in trained} == set(VERB_TYPES)
    # Leaving a word a single combination in training is enough (withholding that one too is not:
    # see test_check_held_out_rejects_removing_a_word_from_training).
    assert check_held_out({("red", "ball"), ("red", "box")}, set()) is None
    assert check_held_out(set(), {("goto", "door")}) is None
    assert check_held_out(set(), {("goto", "key"), ("pickup", "key")}) is None


@pytest.mark.parametrize("colour_object, verb_object, offending", [
    ({("red", k) for k in OBJECTS}, set(), "colour 'red'"),
    ({(c, "box") for c in COLOURS}, set(), "object 'box'"),
    (set(), {("goto", "door"), ("open", "door")}, "object 'door'"),
    (set(), {("open", "door")}, "verb 'open'"),
    (set(), {(v, "key") for v in ("goto", "pickup", "putnext")}, "object 'key'"),
])
def test_check_held_out_rejects_removing_a_word_from_training(colour_object, verb_object, offending):
    with pytest.raises(ValueError, match="remove from training entirely") as e:
        check_held_out(colour_object, verb_object)
    assert offending in str(e.value)


def test_check_held_out_rejects_entries_outside_the_grammar():
    with pytest.raises(ValueError, match=r"colour_object \('pink', 'ball'\)"):
        check_held_out({("pink", "ball")}, set())
    with pytest.raises(ValueError, match=r"verb_object \('open', 'ball'\)"):
        check_held_out(set(), {("open", "ball")})


def test_cross_level_pairs_are_their_own_group():
    purple_door = ("purple", "door")
    assert is_held_out(Instruction("open", purple_door), [RED_BALL], [], [purple_door]) == "cross_level"
    assert is_held_out(Instruction("goto", RED_BALL), [RED_BALL], [], [purple_door]) == "colour_object"
    with pytest.raises(ValueError, match="both colour_object and cross_level"):
        check_held_out({RED_BALL}, set(), {RED_BALL})


def test_level_inventory_holds_what_the_rooms_hold():
    assert {k for _, _, k in level_inventory(DOORS)} == {DOOR}
    assert {k for _, _, k in level_inventory(GOTO)} == set(OBJECTS)
    assert {v for v, _, _ in level_inventory(GOTO)} == {"goto", "pickup", "putnext"}
    assert clauses(Instruction("putnext", RED_BALL, BLUE_KEY)) == {("putnext", *RED_BALL), ("putnext", *BLUE_KEY)}


def _inventory(colours, kinds, verbs=("goto",)):
    return {(v, c, k) for v in verbs for c in colours for k in kinds}


def test_composition_needs_both_words_trained_in_the_same_level():
    """A held-out colour x object pair tests composition only where its colour is trained with
    another object and its object with another colour, in that level."""
    present = {"A": _inventory(["red", "blue"], ["ball", "key"]), "B": _inventory(["red"], ["door"])}
    trained = {lv: {x for x in inv if x[1:] != RED_BALL} for lv, inv in present.items()}
    assert composition_problems([RED_BALL], [], [], present, trained) == []
    # the red key was never a training label in A: "red" has no other partner there
    trained["A"].discard(("goto", "red", "key"))
    [problem] = composition_problems([RED_BALL], [], [], present, trained)
    assert "colour_object ('red', 'ball') in A" in problem and "the colour 'red' with another object" in problem
    # a pair the rooms never hold cannot be asked
    assert "occurs in no level's rooms" in composition_problems([("grey", "box")], [], [], present, trained)[0]


def test_cross_level_pairs_must_not_be_composable_within_a_level():
    present = {"A": _inventory(["red", "blue"], ["ball"]), "B": _inventory(["red", "blue"], ["door"])}
    trained = {lv: {x for x in inv if x[1:] != ("red", "door")} for lv, inv in present.items()}
    # "red" is trained on balls (A) only, "door" on blue doors (B): transfer across levels, as declared
    assert composition_problems([], [], [("red", "door")], present, trained) == []
    # once B also trains a red ball, red and door meet in B: that is a composition pair
    trained["B"].add(("goto", "red", "ball"))
    assert composition_problems([], [], [("red", "door")], present, trained) \
        == ["cross_level ('red', 'door'): composable within B (both words are trained there); list it under "
            "colour_object"]
    trained = {"A": set(), "B": {("goto", "blue", "door")}}
    assert "its colour is trained in no level" in composition_problems([], [], [("red", "door")], present, trained)[0]


def test_verb_object_pairs_are_checked_per_level():
    present = {"A": _inventory(["red"], ["ball", "box"], ("goto", "pickup"))}
    trained = {"A": {("goto", "red", "box"), ("goto", "red", "ball"), ("pickup", "red", "ball")}}
    assert composition_problems([], [("pickup", "box")], [], present, trained) == []
    trained["A"].discard(("pickup", "red", "ball"))
    assert "the verb 'pickup' with another object" in composition_problems([], [("pickup", "box")], [], present,
                                                                           trained)[0]


def test_check_composition_names_the_pair_the_level_and_the_missing_word():
    """The recorded run's (purple, door): doors occur only in OpenDoorColor, whose rooms hold
    nothing else, so withholding it leaves "purple" untrained there: not a composition test."""
    levels = [GOTO, PUTNEXT, DOORS]
    with pytest.raises(ValueError) as e:
        check_composition([RED_BALL, ("purple", "door")], [("pickup", "box")], [], levels)
    assert f"colour_object ('purple', 'door') in {DOORS}" in str(e.value)
    assert "the colour 'purple' with another object" in str(e.value)
    assert "held_out.cross_level" in str(e.value)  # the fix
    assert check_composition([RED_BALL], [("pickup", "box")], [("purple", "door")], levels) is None
    with pytest.raises(ValueError, match="composable within"):
        check_composition([], [], [RED_BALL], levels)


# --- paraphrases ---------------------------------------------------------------------------------


def test_project_paraphrases_load_and_are_new_phrasings():
    paraphrases = load_paraphrases(ROOT / "data" / "language" / "paraphrases.yaml")
    training = {i.text for i in ALL_INSTRUCTIONS}
    for instruction in ALL_INSTRUCTIONS:
        assert 3 <= len(paraphrases[instruction.verb]) <= 4
        for template in paraphrases[instruction.verb]:
            text = paraphrase(instruction, template)
            assert text not in training and "{" not in text
            assert " ".join(instruction.obj) in text
    assert paraphrase(Instruction("putnext", RED_BALL, BLUE_KEY), "place the {obj} beside the {other}") \
        == "place the red ball beside the blue key"


GOOD = {"goto": ["head to the {obj}"], "pickup": ["grab the {obj}"], "open": ["swing open the {obj}"],
        "putnext": ["place the {obj} beside the {other}"]}


@pytest.mark.parametrize("change, key", [
    ({"putnext": None}, "putnext"),
    ({"pickup": ["grab the {thing}"]}, "'pickup'"),
    ({"putnext": ["place the {obj} beside it"]}, "'putnext'"),
    ({"goto": ["go to the {obj}"]}, "'goto'"),
    ({"goto": []}, "'goto'"),
    ({"jump": ["jump over the {obj}"]}, "jump"),
])
def test_paraphrase_errors_name_the_file_and_key(tmp_path, change, key):
    path = tmp_path / "paraphrases.yaml"
    body = {k: v for k, v in (GOOD | change).items() if v is not None}
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ValueError) as e:
        load_paraphrases(path)
    assert str(path) in str(e.value) and key in str(e.value)


def test_paraphrase_file_that_is_not_yaml_names_the_file(tmp_path):
    path = tmp_path / "paraphrases.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    assert load_paraphrases(path)["goto"] == ("head to the {obj}",)
    path.write_text("goto: [head to the {obj}]\n")
    with pytest.raises(ValueError, match="paraphrases.yaml: not valid YAML"):
        load_paraphrases(path)


# --- vocabulary ----------------------------------------------------------------------------------


def test_vocabulary_is_deterministic_and_marks_unknown_words():
    texts = [i.text for i in ALL_INSTRUCTIONS[:40]] + ["put the red ball next to the grey key"]
    vocab = Vocabulary.build(texts)
    assert vocab == Vocabulary.build(reversed(texts))
    assert vocab.words[:2] == ("<pad>", "<unk>") and list(vocab.words[2:]) == sorted(vocab.words[2:])
    assert Vocabulary(tuple(list(vocab.words))) == vocab

    ids = vocab.encode(["go to the red ball", "grab the red ball"], max_len=6)
    assert ids.dtype == np.int64 and ids.shape == (2, 6)
    assert (ids[0, 5:] == 0).all() and (ids[0, :5] > 1).all()
    assert ids[1, 0] == Vocabulary.UNK and (ids[1, 1:4] > 1).all()
    assert vocab.unknown_words("Grab the red ball, and grab the blue wand") == ["grab", "and", "wand"]
    assert vocab.unknown_words("go to the red ball") == []
    with pytest.raises(ValueError, match="max_len"):
        vocab.encode(["put the red ball next to the grey key"], max_len=4)


def test_roles_keep_the_sentence_shape_without_what_it_names():
    vocab = Vocabulary.build(["put the red ball next to the grey door", "go to the blue key"])
    ids = vocab.encode(["put the red ball next to the grey door", "go to the blue key", "grab the ball"], 9)
    roles = vocab.roles(ids)
    colour, kind = len(vocab), len(vocab) + 1
    assert roles[0].tolist() == [ids[0, 0], ids[0, 1], colour, kind, *ids[0, 4:7], colour, kind]
    assert roles[1].tolist() == [*ids[1, :3], colour, kind, 0, 0, 0, 0]
    assert roles[2, 0] == Vocabulary.UNK and roles[2, 2] == kind  # unknown words stay unknown


def test_describe_replays_under_the_episode_time_limit():
    """An episode collected with a longer limit than the level's (a behaviour's max_steps) replays
    to its end only under that limit; under the level's own it would end early."""
    spins = [0] * 80  # turn left: achieves nothing, never terminates
    assert describe("BabyAI-GoToLocal-v0", 3, spins, max_steps=80) == []
    with pytest.raises(ValueError, match="80 actions, but the episode ended at step 63"):
        describe("BabyAI-GoToLocal-v0", 3, spins)
