"""Hindsight language relabeling for the ``language`` family on BabyAI.

A small template grammar (:class:`Instruction`, :class:`Sequence`) whose sentences minigrid's own
verifier can check; :func:`describe` replays an episode and returns every sentence of the grammar
that became true, with the step at which it did. Also: held-out conditions, paraphrases for
evaluation, and the word vocabulary of the policy's instruction encoder.
"""

from __future__ import annotations

import contextlib
import copy
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
    """``instruction`` first became true at action index ``step`` (its segment is steps 0..step)."""

    instruction: Instruction | Sequence
    text: str
    step: int


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
             max_steps: int | None = None) -> list[Achievement]:
    """Every true sentence about what the episode ``(level, env_seed, actions)`` achieved, sorted by
    (step, text).

    One replay runs minigrid's verifier of every candidate instruction exactly as the level's
    ``step`` runs its own mission's, so every label is the env's own verdict. Sequences "a then b"
    (``b`` achieved after ``a``, as ``BeforeInstr`` checks it) are added, at most ``max_sequences``
    of them, chosen by a generator seeded with ``env_seed``. ``max_steps`` is the time limit the
    episode ran under (None: the level's own).
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
    for t, action in enumerate(actions):
        if ended:
            raise ValueError(f"{level} seed {env_seed}: {len(actions)} actions, but the episode ended at step {t - 1}")
        _, _, terminated, truncated, _ = u.step(action)
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
                successes[i].append(t)
                if _stale(u, candidates[i]):
                    stale.add((i, t))
        if new and track_all:
            fresh[t] = {i for i, v in enumerate(verifiers) if _fresh_verify(v, action)}

    first = {i: s[0] for i, s in enumerate(successes) if s and (i, s[0]) not in stale}
    found = [Achievement(candidates[i], candidates[i].text, t) for i, t in first.items()]
    pairs = []
    for a, t_a in first.items() if track_all else ():
        for b in first:
            # BeforeInstr starts checking b at the step a succeeds; b true there too is no "then".
            if b == a or b in fresh[t_a]:
                continue
            later = [t for t in successes[b] if t > t_a]
            if later and (b, later[0]) not in stale:
                seq = Sequence(candidates[a], candidates[b])
                pairs.append(Achievement(seq, seq.text, later[0]))
    if len(pairs) > max_sequences:
        pairs.sort(key=lambda x: (x.step, x.text))
        rng = np.random.default_rng([env_seed, zlib.crc32(b"language/sequences")])
        pairs = [pairs[i] for i in rng.choice(len(pairs), max_sequences, replace=False)]
    return sorted(found + pairs, key=lambda x: (x.step, x.text))


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


def is_held_out(
    instruction: Instruction | Sequence,
    colour_object: Iterable[tuple[str, str]],
    verb_object: Iterable[tuple[str, str]],
) -> str | None:
    """The held-out group, "colour_object" or "verb_object" (checked in that order), if any clause
    (either object of a putnext) uses a withheld (colour, type) or (verb, type) combination; else None."""
    colour_object, verb_object = _pairs(colour_object), _pairs(verb_object)
    parts = instruction.parts
    if any(o in colour_object for p in parts for o in (p.obj, p.other) if o):
        return "colour_object"
    if any((p.verb, o[1]) in verb_object for p in parts for o in (p.obj, p.other) if o):
        return "verb_object"
    return None


def check_held_out(colour_object: Iterable[tuple[str, str]], verb_object: Iterable[tuple[str, str]]) -> None:
    """``ValueError`` if an entry is not a combination of the grammar, or if withholding leaves a
    colour (with a ball, box or key), an object type or a verb out of training entirely."""
    colour_object, verb_object = _pairs(colour_object), _pairs(verb_object)
    bad = [f"colour_object {p}" for p in sorted(colour_object) if p[0] not in COLOURS or p[1] not in VERB_TYPES["goto"]]
    bad += [f"verb_object {p}" for p in sorted(verb_object) if p[0] not in VERBS or p[1] not in VERB_TYPES[p[0]]]
    if bad:
        raise ValueError(f"held-out entries outside the grammar: {', '.join(bad)}")

    trained = [
        (verb, colour, kind)
        for verb, kinds in VERB_TYPES.items()
        for kind in kinds
        for colour in COLOURS
        if (colour, kind) not in colour_object and (verb, kind) not in verb_object
    ]
    problems = []
    for colour in sorted(set(COLOURS) - {c for _, c, k in trained if k != DOOR}):
        entries = sorted(p for p in colour_object if p[0] == colour)
        problems.append(f"colour {colour!r} (colour_object withholds {entries})")
    for kind in sorted(set(VERB_TYPES["goto"]) - {k for _, _, k in trained}):
        entries = sorted(p for p in colour_object if p[1] == kind) + sorted(p for p in verb_object if p[1] == kind)
        problems.append(f"object {kind!r} (withheld: {entries})")
    for verb in sorted(set(VERBS) - {v for v, _, _ in trained}):
        entries = sorted(p for p in verb_object if p[0] == verb)
        problems.append(f"verb {verb!r} (verb_object withholds {entries})")
    if problems:
        raise ValueError(
            "held-out conditions would remove from training entirely: " + "; ".join(problems)
            + ". Each colour, object type and verb must still appear in other combinations."
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

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` outside the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(w for w in tokenize(text) if w not in self._index))
