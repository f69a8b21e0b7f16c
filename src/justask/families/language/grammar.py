"""Hindsight language relabeling for the ``language`` family on BabyAI.

A small template grammar (:class:`Instruction`, :class:`Sequence`) whose sentences minigrid's own
verifier can check; :func:`describe` replays an episode and returns every sentence of the grammar
that became true, with the step at which it did. Also: held-out conditions, paraphrases for
evaluation, and the word vocabulary of the policy's instruction encoder.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import re
import string
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import minigrid  # noqa: F401 (registers the BabyAI levels)
import numpy as np
import yaml
from minigrid.core.constants import COLOR_NAMES
from minigrid.envs.babyai.core.verifier import (
    AfterInstr,
    BeforeInstr,
    GoToInstr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
)

from .segments import Pose, directed_start, needed_actions

COLOURS = tuple(sorted(COLOR_NAMES))  # blue green grey purple red yellow
OBJECTS = ("ball", "box", "key")
DOOR = "door"
VERBS = ("goto", "pickup", "open", "putnext")
VERB_TYPES = {"goto": (*OBJECTS, DOOR), "pickup": OBJECTS, "open": (DOOR,), "putnext": OBJECTS}

GOAL_FIELDS = ("verb", "colour", "type", "other_colour", "other_type")
GOAL_COLUMNS = GOAL_FIELDS + tuple(f"then_{f}" for f in GOAL_FIELDS)

_TEMPLATES = {
    "goto": "go to the {obj}",
    "pickup": "pick up the {obj}",
    "open": "open the {obj}",
    "putnext": "put the {obj} next to the {other}",
}
_PATTERNS = {
    verb: re.compile(t.replace("{obj}", r"(\w+) (\w+)").replace("{other}", r"(\w+) (\w+)"))
    for verb, t in _TEMPLATES.items()
}
_THEN = " then "


def _noun(obj: tuple[str, str]) -> str:
    return f"{obj[0]} {obj[1]}"


# --- grammar -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One clause: ``verb`` in :data:`VERBS`, ``obj`` and (putnext only) ``other`` as (colour, type)."""

    verb: str
    obj: tuple[str, str]
    other: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "obj", tuple(self.obj))
        if self.other is not None:
            object.__setattr__(self, "other", tuple(self.other))
        if self.verb not in VERBS:
            raise ValueError(f"unknown verb {self.verb!r}; expected one of {VERBS}")
        if (self.other is not None) != (self.verb == "putnext"):
            raise ValueError(f"{self.verb!r} takes {'two objects' if self.verb == 'putnext' else 'one object'}")
        for colour, kind in [self.obj] + ([self.other] if self.other else []):
            if colour not in COLOURS:
                raise ValueError(f"unknown colour {colour!r}; expected one of {COLOURS}")
            if kind not in (*OBJECTS, DOOR):
                raise ValueError(f"unknown object type {kind!r}; expected one of {(*OBJECTS, DOOR)}")
        if bad := [o[1] for o in (self.obj, self.other) if o and o[1] not in VERB_TYPES[self.verb]]:
            raise ValueError(f"{self.verb!r} takes {VERB_TYPES[self.verb]}, not {bad[0]!r}")

    @property
    def text(self) -> str:
        other = _noun(self.other) if self.other else None
        return _TEMPLATES[self.verb].format(obj=_noun(self.obj), other=other)

    @property
    def parts(self) -> tuple[Instruction, ...]:
        return (self,)

    def to_minigrid(self):
        """A fresh minigrid verifier for this clause (call ``reset_verifier(env)`` before use)."""
        desc = ObjDesc(self.obj[1], self.obj[0])
        if self.verb == "goto":
            return GoToInstr(desc)
        if self.verb == "pickup":
            return PickupInstr(desc)
        if self.verb == "open":
            return OpenInstr(desc)
        return PutNextInstr(desc, ObjDesc(self.other[1], self.other[0]))

    def goal_tuple(self) -> tuple[str, ...]:
        """The achieved goal as :data:`GOAL_COLUMNS` strings ("" where absent)."""
        other = self.other or ("", "")
        return (self.verb, *self.obj, *other) + ("",) * len(GOAL_FIELDS)


@dataclass(frozen=True)
class Sequence:
    """``first`` then ``then``: minigrid's ``BeforeInstr`` (``then`` achieved after ``first`` was)."""

    first: Instruction
    then: Instruction

    @property
    def text(self) -> str:
        return f"{self.first.text}{_THEN}{self.then.text}"

    @property
    def parts(self) -> tuple[Instruction, ...]:
        return (self.first, self.then)

    def to_minigrid(self):
        return BeforeInstr(self.first.to_minigrid(), self.then.to_minigrid())

    def goal_tuple(self) -> tuple[str, ...]:
        n = len(GOAL_FIELDS)
        return self.first.goal_tuple()[:n] + self.then.goal_tuple()[:n]


def parse(text: str) -> Instruction | Sequence:
    """Inverse of ``.text`` for template sentences; ``ValueError`` for anything else."""
    if _THEN in text:
        first, then = text.split(_THEN, 1)
        return Sequence(_parse_clause(first, text), _parse_clause(then, text))
    return _parse_clause(text, text)


def _parse_clause(clause: str, text: str) -> Instruction:
    for verb, pattern in _PATTERNS.items():
        if m := pattern.fullmatch(clause):
            words = m.groups()
            other = words[2:] if verb == "putnext" else None
            try:
                return Instruction(verb, words[:2], other)
            except ValueError as e:
                raise ValueError(f"not a sentence of the grammar: {text!r} ({e})") from None
    raise ValueError(
        f"not a sentence of the grammar: {text!r}; expected e.g. 'go to the red ball', 'pick up the blue key', "
        "'open the yellow door', 'put the green box next to the grey ball', or '<a> then <b>'"
    )


def from_goal_tuple(goal: Iterable[str]) -> Instruction | Sequence:
    """Inverse of ``goal_tuple()``."""
    goal = tuple(goal)
    if len(goal) != len(GOAL_COLUMNS):
        raise ValueError(f"a goal has {len(GOAL_COLUMNS)} fields {GOAL_COLUMNS}, got {goal}")

    def clause(verb, colour, kind, other_colour, other_type):
        return Instruction(verb, (colour, kind), (other_colour, other_type) if verb == "putnext" else None)

    n = len(GOAL_FIELDS)
    first = clause(*goal[:n])
    return Sequence(first, clause(*goal[n:])) if goal[n] else first


def from_minigrid(instr) -> Instruction | Sequence:
    """A level's own mission (``env.unwrapped.instrs``) in the grammar; ``ValueError`` where it is
    outside it (no colour, a location such as "in front of you", "and", nested sequences)."""
    if isinstance(instr, BeforeInstr | AfterInstr):
        a, b = from_minigrid(instr.instr_a), from_minigrid(instr.instr_b)
        if not (isinstance(a, Instruction) and isinstance(b, Instruction)):
            raise ValueError("nested sequences are outside the grammar")
        return Sequence(a, b) if isinstance(instr, BeforeInstr) else Sequence(b, a)
    descs = [getattr(instr, a) for a in ("desc", "desc_move", "desc_fixed") if hasattr(instr, a)]
    verb = {GoToInstr: "goto", PickupInstr: "pickup", OpenInstr: "open", PutNextInstr: "putnext"}.get(type(instr))
    if verb is None or not descs:
        raise ValueError(f"{type(instr).__name__} is outside the grammar")
    for d in descs:
        if d.color is None or d.type is None or d.loc is not None:
            raise ValueError(f"object description '{d}' is outside the grammar (needs colour and type, no location)")
    objs = [(d.color, d.type) for d in descs]
    return Instruction(verb, objs[0], objs[1] if len(objs) > 1 else None)


# --- hindsight relabeling ------------------------------------------------------------------------


@dataclass(frozen=True)
class Achievement:
    """``instruction`` first became true at action index ``step``; its segment is steps
    ``start..step`` (:mod:`.segments`; 0 unless :func:`describe` is given a ``slack``)."""

    instruction: Instruction | Sequence
    text: str
    step: int
    start: int = 0


def candidate_instructions(env) -> list[Instruction]:
    """Every instruction about the objects on the grid (call right after reset), deduplicated:
    go to any object or door, pick up any non-door object, open any door, put any non-door object
    next to another (colour, type)."""
    present = {(o.color, o.type) for o in env.unwrapped.grid.grid if o is not None and o.type in VERB_TYPES["goto"]}
    things = sorted(p for p in present if p[1] != DOOR)
    doors = sorted(p for p in present if p[1] == DOOR)
    return [
        *(Instruction("goto", p) for p in sorted(present)),
        *(Instruction("pickup", p) for p in things),
        *(Instruction("open", p) for p in doors),
        *(Instruction("putnext", a, b) for a in things for b in things if a != b),
    ]


def describe(level: str, env_seed: int, actions: Iterable[int], max_sequences: int = 4,
             max_steps: int | None = None, slack: float | None = None, margin: float = 0.0) -> list[Achievement]:
    """Every true sentence about what the episode ``(level, env_seed, actions)`` achieved, sorted by
    (step, text).

    One replay runs minigrid's verifier of every candidate instruction exactly as the level's
    ``step`` runs its own mission's, so every label is the env's own verdict. Sequences "a then b"
    (``b`` achieved after ``a``, as ``BeforeInstr`` checks it) are added, at most ``max_sequences``
    of them, chosen by a generator seeded with ``env_seed``. ``max_steps`` is the time limit the
    episode ran under (None: the level's own). With ``slack``, each achievement's segment starts
    where the agent was heading for it (:func:`.segments.directed_start`); a sequence's at its
    first clause's start.
    """
    actions = [int(a) for a in actions]
    env = gym.make(level) if max_steps is None else gym.make(level, max_steps=max_steps)
    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints every rejected level sample
        env.reset(seed=env_seed)
    u = env.unwrapped
    u.gen_obs = lambda: None  # observations are not needed here and cost half of each step
    candidates = candidate_instructions(u)
    # A description's state (tracked objects, their positions) depends only on the env, so the
    # verifiers share one per (colour, type) and a drop updates each once.
    descs: dict[tuple[str, str], ObjDesc] = {}
    verifiers = [_shared(c.to_minigrid(), descs) for c in candidates]
    for v in verifiers:
        v.reset_verifier(u)

    successes: list[list[int]] = [[] for _ in candidates]
    stale: set[tuple[int, int]] = set()  # (candidate, step) the verifier accepts but the grid does not show
    fresh: dict[int, set[int]] = {}  # step -> candidates a BeforeInstr starting there would accept
    track_all = max_sequences > 0  # sequences need every success, not just the first
    ended = False
    poses: list[Pose] = []
    picked: dict[int, tuple[int, tuple[int, int]]] = {}  # id(object) -> (step, cell) of its last pickup
    starts: dict[int, int] = {}  # candidate -> start of its first success's segment
    for t, action in enumerate(actions):
        if ended:
            raise ValueError(f"{level} seed {env_seed}: {len(actions)} actions, but the episode ended at step {t - 1}")
        carried = u.carrying
        poses.append(Pose(int(u.agent_pos[0]), int(u.agent_pos[1]), int(u.agent_dir),
                          None if carried is None else (carried.color, carried.type)))
        front = tuple(int(v) for v in u.front_pos)
        _, _, terminated, truncated, _ = u.step(action)
        if action == u.actions.pickup and carried is None and u.carrying is not None:
            picked[id(u.carrying)] = (t, front)
        ended = terminated or truncated
        # As RoomGridLevel.step, on every drop action: even a drop of nothing refreshes the tracked
        # positions (a picked-up object's old cell stops counting for "go to").
        if action == u.actions.drop:
            for d in descs.values():
                d.find_matching_objs(u, use_location=False)
        new = False
        for i, v in enumerate(verifiers):
            if (track_all or not successes[i]) and v.verify(action) == "success":
                new |= not successes[i]
                if not successes[i] and slack is not None:
                    starts[i] = _segment_start(u, candidates[i], t, poses, front, carried, picked, slack, margin)
                successes[i].append(t)
                if _stale(u, candidates[i]):
                    stale.add((i, t))
        if new and track_all:
            fresh[t] = {i for i, v in enumerate(verifiers) if _fresh_verify(v, action)}

    first = {i: s[0] for i, s in enumerate(successes) if s and (i, s[0]) not in stale}
    found = [Achievement(candidates[i], candidates[i].text, t, starts.get(i, 0)) for i, t in first.items()]
    pairs = []
    for a, t_a in first.items() if track_all else ():
        for b in first:
            # BeforeInstr starts checking b at the step a succeeds; b true there too is no "then".
            if b == a or b in fresh[t_a]:
                continue
            later = [t for t in successes[b] if t > t_a]
            if later and (b, later[0]) not in stale:
                seq = Sequence(candidates[a], candidates[b])
                pairs.append(Achievement(seq, seq.text, later[0], starts.get(a, 0)))
    if len(pairs) > max_sequences:
        pairs.sort(key=lambda x: (x.step, x.text))
        rng = np.random.default_rng([env_seed, zlib.crc32(b"language/sequences")])
        pairs = [pairs[i] for i in rng.choice(len(pairs), max_sequences, replace=False)]
    return sorted(found + pairs, key=lambda x: (x.step, x.text))


def _segment_start(u, instruction: Instruction, t: int, poses: list[Pose], front: tuple[int, int], carried,
                   picked: dict, slack: float, margin: float) -> int:
    """Where the goal-directed segment of ``instruction``, achieved by action ``t``, starts. The
    object's cell is the one faced after the action (go to) or before it (pick up, open: the action
    does not move the agent); for put next to, ``front`` is the drop cell and A was picked up at
    ``picked[id(A)]``."""
    if instruction.verb == "putnext":
        if carried is None or id(carried) not in picked:
            return 0
        picked_at, cell = picked[id(carried)]
        needed = needed_actions(u.grid, poses, "putnext", t, cell, drop_cell=front, picked_at=picked_at)
    else:  # a "go to" is achieved by facing the object after the action (a turn or a step)
        cell = tuple(int(v) for v in u.front_pos) if instruction.verb == "goto" else front
        needed = needed_actions(u.grid, poses, instruction.verb, t, cell)
    return directed_start(needed, t, slack, margin)


def _shared(verifier, descs: dict[tuple[str, str], ObjDesc]):
    for attr in ("desc", "desc_move", "desc_fixed"):
        if hasattr(verifier, attr):
            d = getattr(verifier, attr)
            setattr(verifier, attr, descs.setdefault((d.color, d.type), d))
    return verifier


def _stale(env, instruction: Instruction) -> bool:
    """A "go to" success facing a cell without that object: minigrid keeps a picked-up object's old
    cell as its position until the next drop action."""
    if instruction.verb != "goto":
        return False
    cell = env.grid.get(*env.front_pos)
    return cell is None or (cell.color, cell.type) != instruction.obj


def _fresh_verify(verifier, action) -> bool:
    """Would this verifier succeed now had it started now? (``BeforeInstr`` starts its second
    clause at the step the first succeeds; ``preCarrying`` is then still None.)"""
    if not hasattr(verifier, "preCarrying"):
        return verifier.verify_action(action) == "success"
    clone = copy.copy(verifier)
    clone.preCarrying = None
    return clone.verify_action(action) == "success"


# --- held-out conditions -------------------------------------------------------------------------


HELD_OUT_GROUPS = ("colour_object", "cross_level", "verb_object")  # checked in this order


def is_held_out(
    instruction: Instruction | Sequence,
    colour_object: Iterable[tuple[str, str]],
    verb_object: Iterable[tuple[str, str]],
    cross_level: Iterable[tuple[str, str]] = (),
) -> str | None:
    """The held-out group of :data:`HELD_OUT_GROUPS` (the first that applies) if any clause (either
    object of a putnext) uses a withheld (colour, type) or (verb, type) combination; else None."""
    colour_object, verb_object, cross_level = _pairs(colour_object), _pairs(verb_object), _pairs(cross_level)
    objects = [o for p in instruction.parts for o in (p.obj, p.other) if o]
    if any(o in colour_object for o in objects):
        return "colour_object"
    if any(o in cross_level for o in objects):
        return "cross_level"
    if any((p.verb, o[1]) in verb_object for p in instruction.parts for o in (p.obj, p.other) if o):
        return "verb_object"
    return None


def check_held_out(colour_object: Iterable[tuple[str, str]], verb_object: Iterable[tuple[str, str]],
                   cross_level: Iterable[tuple[str, str]] = ()) -> None:
    """``ValueError`` if an entry is not a combination of the grammar, is listed twice, or if
    withholding leaves a colour (with a ball, box or key), an object type or a verb out of training
    entirely (all levels pooled; :func:`composition_problems` checks each level)."""
    colour_object, verb_object, cross_level = _pairs(colour_object), _pairs(verb_object), _pairs(cross_level)
    pairs = [("colour_object", p) for p in sorted(colour_object)] + [("cross_level", p) for p in sorted(cross_level)]
    bad = [f"{g} {p}" for g, p in pairs if p[0] not in COLOURS or p[1] not in VERB_TYPES["goto"]]
    bad += [f"verb_object {p}" for p in sorted(verb_object) if p[0] not in VERBS or p[1] not in VERB_TYPES[p[0]]]
    if bad:
        raise ValueError(f"held-out entries outside the grammar: {', '.join(bad)}")
    if both := sorted(colour_object & cross_level):
        raise ValueError(f"{both} listed under both colour_object and cross_level; a pair belongs to one group")

    withheld = colour_object | cross_level
    trained = [
        (verb, colour, kind)
        for verb, kinds in VERB_TYPES.items()
        for kind in kinds
        for colour in COLOURS
        if (colour, kind) not in withheld and (verb, kind) not in verb_object
    ]
    problems = []
    for colour in sorted(set(COLOURS) - {c for _, c, k in trained if k != DOOR}):
        entries = sorted(p for p in withheld if p[0] == colour)
        problems.append(f"colour {colour!r} (colour_object and cross_level withhold {entries})")
    for kind in sorted(set(VERB_TYPES["goto"]) - {k for _, _, k in trained}):
        entries = sorted(p for p in withheld if p[1] == kind) + sorted(p for p in verb_object if p[1] == kind)
        problems.append(f"object {kind!r} (withheld: {entries})")
    for verb in sorted(set(VERBS) - {v for v, _, _ in trained}):
        entries = sorted(p for p in verb_object if p[0] == verb)
        problems.append(f"verb {verb!r} (verb_object withholds {entries})")
    if problems:
        raise ValueError(
            "held-out conditions would remove from training entirely: " + "; ".join(problems)
            + ". Each colour, object type and verb must still appear in other combinations."
        )


Clause = tuple[str, str, str]  # (verb, colour, type) of one object of an instruction


def clauses(instruction: Instruction | Sequence) -> set[Clause]:
    """The (verb, colour, type) of every object an instruction names."""
    return {(p.verb, *o) for p in instruction.parts for o in (p.obj, p.other) if o}


@functools.cache
def level_inventory(level: str, rooms: int = 200) -> frozenset[Clause]:
    """Every (verb, colour, type) an instruction can name in ``level``: the candidate instructions
    of ``rooms`` rooms (env seeds 0..rooms-1), i.e. which objects the level's rooms hold."""
    env = gym.make(level)
    try:
        found: set[Clause] = set()
        for seed in range(rooms):
            with contextlib.redirect_stdout(io.StringIO()):
                env.reset(seed=seed)
            for c in candidate_instructions(env.unwrapped):
                found |= clauses(c)
        return frozenset(found)
    finally:
        env.close()


def composition_problems(colour_object: Iterable[tuple[str, str]], verb_object: Iterable[tuple[str, str]],
                         cross_level: Iterable[tuple[str, str]], present: dict[str, set[Clause]],
                         trained: dict[str, set[Clause]]) -> list[str]:
    """Why a held-out pair does not test what its group says, per level (empty: it does).

    ``present[level]`` is what that level can ask about (:func:`level_inventory`, or the evaluation
    asks); ``trained[level]`` what its training instructions name. A ``colour_object`` pair tests
    composition: in every level where it occurs, its colour is trained with another object and its
    object with another colour. A ``verb_object`` pair likewise, verb and object. A ``cross_level``
    pair tests transfer across levels: each word is trained in some level, and in no level where
    the pair occurs are both trained (else it is a composition pair)."""
    def partners(level: str, pair: tuple[str, str], slots: tuple[int, int]) -> tuple[bool, bool]:
        first = any(x[slots[0]] == pair[0] and x[slots[1]] != pair[1] for x in trained[level])
        second = any(x[slots[1]] == pair[1] and x[slots[0]] != pair[0] for x in trained[level])
        return first, second

    problems = []
    for group, pairs, slots, words in (("colour_object", colour_object, (1, 2), ("colour", "object")),
                                       ("verb_object", verb_object, (0, 2), ("verb", "object"))):
        for pair in sorted(_pairs(pairs)):
            where = [lv for lv in present if any((x[slots[0]], x[slots[1]]) == pair for x in present[lv])]
            if not where:
                problems.append(f"{group} {pair}: occurs in no level's rooms ({', '.join(present)}); nothing to ask")
            for level in where:
                ok = partners(level, pair, slots)
                missing = [f"the {w} {v!r} with another {other}" for w, v, other, good in (
                    (words[0], pair[0], words[1], ok[0]), (words[1], pair[1], words[0], ok[1])) if not good]
                if missing:
                    problems.append(f"{group} {pair} in {level}: training there never pairs {' nor '.join(missing)}")
    for pair in sorted(_pairs(cross_level)):
        where = [lv for lv in present if any(x[1:] == pair for x in present[lv])]
        if not where:
            problems.append(f"cross_level {pair}: occurs in no level's rooms ({', '.join(present)}); nothing to ask")
        colour_anywhere = any(partners(lv, pair, (1, 2))[0] for lv in trained)
        object_anywhere = any(partners(lv, pair, (1, 2))[1] for lv in trained)
        if not (colour_anywhere and object_anywhere):
            problems.append(f"cross_level {pair}: its {'colour' if not colour_anywhere else 'object'} is trained "
                            "in no level, so there is nothing to transfer")
        if within := [lv for lv in where if all(partners(lv, pair, (1, 2)))]:
            problems.append(f"cross_level {pair}: composable within {', '.join(within)} (both words are trained "
                            "there); list it under colour_object")
    return problems


def check_composition(colour_object: Iterable[tuple[str, str]], verb_object: Iterable[tuple[str, str]],
                      cross_level: Iterable[tuple[str, str]], levels: Iterable[str]) -> None:
    """``ValueError`` naming each pair, level and missing word when a held-out pair does not test
    what its group says in the rooms of ``levels`` (:func:`composition_problems`), before any data
    exist; relabel checks the same on the training labels it wrote."""
    present = {lv: set(level_inventory(lv)) for lv in levels}
    pairs, verbs = _pairs(colour_object) | _pairs(cross_level), _pairs(verb_object)
    trained = {lv: {x for x in inv if x[1:] not in pairs and (x[0], x[2]) not in verbs} for lv, inv in present.items()}
    if problems := composition_problems(colour_object, verb_object, cross_level, present, trained):
        raise ValueError(
            "held-out pairs that do not test what their group says: " + "; ".join(problems) + ". A colour_object "
            "(or verb_object) pair must be composable from trained words in every level whose rooms hold it; "
            "withhold another pair, or list a colour x object pair whose words meet only across levels under "
            "held_out.cross_level (reported as its own group)."
        )


def _pairs(entries: Iterable[Iterable[str]]) -> set[tuple[str, str]]:
    return {tuple(e) for e in entries}


# --- paraphrases ---------------------------------------------------------------------------------


def load_paraphrases(path: Path) -> dict[str, tuple[str, ...]]:
    """Verb -> alternative templates (``{obj}``, and ``{other}`` for putnext), validated."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of verb -> list of templates")
    if missing := [v for v in VERBS if v not in data]:
        raise ValueError(f"{path}: missing key(s) {missing}")
    if extra := sorted(set(data) - set(VERBS)):
        raise ValueError(f"{path}: unknown key(s) {extra}; expected {list(VERBS)}")
    out = {}
    for verb in VERBS:
        templates = data[verb]
        if not isinstance(templates, list) or not templates or not all(isinstance(t, str) for t in templates):
            raise ValueError(f"{path}: key {verb!r}: expected a non-empty list of strings")
        expected = {"obj", "other"} if verb == "putnext" else {"obj"}
        for t in templates:
            fields = [f for _, f, _, _ in string.Formatter().parse(t) if f is not None]
            if sorted(fields) != sorted(expected):
                raise ValueError(
                    f"{path}: key {verb!r}: template {t!r} has placeholders {fields}, expected each of "
                    f"{sorted(expected)} once"
                )
            if t == _TEMPLATES[verb]:
                raise ValueError(f"{path}: key {verb!r}: template {t!r} is the training phrasing")
        out[verb] = tuple(templates)
    return out


def paraphrase(instruction: Instruction, template: str) -> str:
    """``template`` rendered for ``instruction``'s objects, e.g. "grab the red ball"."""
    if "{other}" in template and instruction.other is None:
        raise ValueError(f"template {template!r} needs two objects; {instruction.text!r} has one")
    return template.format(obj=_noun(instruction.obj), other=_noun(instruction.other) if instruction.other else "")


# --- vocabulary ----------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z]+")


def tokenize(text: str) -> list[str]:
    """Lower-case words; punctuation and digits are dropped."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Vocabulary:
    """Word ids for the instruction encoder: ``<pad>`` = 0, ``<unk>`` = 1, then sorted words.
    ``list(vocab.words)`` is its JSON form; ``Vocabulary(tuple(words))`` loads it back."""

    words: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    PAD = 0
    UNK = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", tuple(self.words))
        if self.words[:2] != ("<pad>", "<unk>"):
            raise ValueError("a vocabulary starts with '<pad>', '<unk>'")
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

    @classmethod
    def build(cls, texts: Iterable[str]) -> Vocabulary:
        return cls(("<pad>", "<unk>", *sorted({w for t in texts for w in tokenize(t)})))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: Iterable[str], max_len: int) -> np.ndarray:
        """(len(texts), max_len) int64 ids, right-padded with 0; ``ValueError`` if a text is longer."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not one string")
        texts = list(texts)
        out = np.zeros((len(texts), max_len), dtype=np.int64)
        for i, text in enumerate(texts):
            ids = [self._index.get(w, self.UNK) for w in tokenize(text)]
            if len(ids) > max_len:
                raise ValueError(f"{text!r} has {len(ids)} words, more than max_len={max_len}")
            out[i, : len(ids)] = ids
        return out

    def roles(self, ids: np.ndarray) -> np.ndarray:
        """``ids`` (from :meth:`encode`) with every colour word replaced by the id ``len(self)`` and
        every object word (door included) by ``len(self) + 1``: the sentence's shape without what
        it names ("go to the <colour> <object>")."""
        colour = [i for i, w in enumerate(self.words) if w in COLOURS]
        kind = [i for i, w in enumerate(self.words) if w in (*OBJECTS, DOOR)]
        out = np.where(np.isin(ids, colour), len(self), ids)
        return np.where(np.isin(ids, kind), len(self) + 1, out)

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` outside the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(w for w in tokenize(text) if w not in self._index))
