"""relabel (language): describe every episode in hindsight, withhold the held-out conditions,
and write the evaluation asks as data.

Outputs under ``artifacts/language/relabel/``:

* ``relabeled/``: the behaviour mix with every true description of what each episode achieved
  (checked by minigrid's own verifier, see :func:`.grammar.describe`), minus every
  description that uses a held-out combination;
* ``demos/``: the bot's demonstrations labelled with their own missions only (the demos-only
  baseline), with the same held-out descriptions removed;
* ``instructions.json``: every description found, with its HER-style goal columns, label count
  and held-out group (so a reader sees exactly what was never trained on);
* ``conditions.json``: the evaluation asks, per level and group (seen, held-out colour x object,
  held-out verb x object, paraphrases, the level's own missions), on env seeds disjoint from
  collection.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from justask.config import Params
from justask.datasets import read_episodes, split_mask
from justask.errors import StageFailed
from justask.executors import run_all
from justask.io import write_json
from justask.paths import family_paths
from justask.seeding import stream_seeds

from .asking import GROUPS
from .env import collect_env_seeds, make_grid_env, reset_quietly
from .grammar import (
    GOAL_COLUMNS,
    HELD_OUT_GROUPS,
    Instruction,
    Vocabulary,
    candidate_instructions,
    clauses,
    composition_problems,
    describe,
    from_goal_tuple,
    from_minigrid,
    is_held_out,
    level_inventory,
    load_paraphrases,
    paraphrase,
)
from .table import build_instruction_table


def _text(ep: dict, key: str) -> str:
    return bytes(ep["infos"][key][0]).decode()


# level, env seed, actions, max_sequences, max_steps, segment slack, segment margin
Replay = tuple[str, int, list[int], int, int | None, float | None, float]


Label = tuple[str, int, int, tuple[str, ...]]  # text, segment start, end step, goal columns


def _describe_chunk(jobs: list[Replay]) -> list[list[Label]]:
    return [[(a.text, a.start, a.step, a.instruction.goal_tuple()) for a in describe(*job)] for job in jobs]


def describe_all(episodes: list[dict], max_sequences: int, workers: int,
                 max_steps: dict[str, int | None] | None = None, scale=None,
                 slack: float | None = None, margin: float = 0.0) -> list[list[Label]]:
    """Hindsight descriptions of every episode, in ``workers`` processes on the executor ``scale``
    names (order preserved). ``max_steps`` maps a behaviour name to the time limit its episodes
    were collected with (absent or None: the level's own), so each replay ends where its episode did;
    ``slack`` and ``margin`` make each label's segment goal-directed (:mod:`.segments`)."""
    max_steps = max_steps or {}
    jobs = [(_text(e, "level"), int(e["seed"]), [int(a) for a in e["actions"]], max_sequences,
             max_steps.get(_text(e, "behaviour")), slack, margin) for e in episodes]
    size = max(1, len(jobs) // (8 * max(workers, 1)))
    chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    return [d for part in run_all(_describe_chunk, chunks, workers, scale) for d in part]


def own_mission(level: str, seed: int) -> Instruction:
    """The level's own mission for ``seed`` in the grammar ("a" normalised to "the")."""
    env = make_grid_env(level)
    try:
        reset_quietly(env, seed)
        return from_minigrid(env.unwrapped.instrs)
    finally:
        env.close()


def relabel(params: Params, root: Path = Path(".")) -> None:
    fam = params.family("language")
    cfg, collect_cfg = fam.relabel, fam.collect
    held = cfg.held_out
    paths = family_paths("language", root)
    t0 = time.perf_counter()
    try:
        mix = read_episodes(paths.dataset("mix"))
        demos = read_episodes(paths.dataset("demos"))
    except FileNotFoundError as e:
        raise StageFailed(f"{e}; run `dvc repro collect@language`") from None
    try:
        templates = load_paraphrases(root / held.paraphrases)
    except (OSError, ValueError) as e:
        raise StageFailed(f"families.language.relabel.held_out.paraphrases: {e}") from None

    # Hindsight descriptions of the mix; the demos keep only their own (successful) missions.
    described = describe_all(mix, cfg.max_sequences, collect_cfg.workers,
                             {b.name: b.max_steps for b in collect_cfg.mix}, params.scale,
                             cfg.segment_slack, cfg.segment_margin)
    demo_labels = []
    for ep in demos:
        mission = own_mission(_text(ep, "level"), int(ep["seed"]))
        ok = bool(ep["terminations"][-1]) and float(ep["rewards"][-1]) > 0
        demo_labels.append([(mission.text, 0, len(ep["actions"]) - 1, mission.goal_tuple())] if ok else [])

    catalogue: dict[str, dict] = {}
    counts: Counter[str] = Counter()
    for labels in (*described, *demo_labels):
        for text, _, _, goal in labels:
            if text not in catalogue:
                group = is_held_out(from_goal_tuple(goal), held.colour_object, held.verb_object, held.cross_level)
                catalogue[text] = {"goal": dict(zip(GOAL_COLUMNS, goal, strict=True)), "held_out": group}
            counts[text] += 1
    trainable = sorted(t for t, c in catalogue.items() if c["held_out"] is None)
    if not trainable:
        raise StageFailed("families.language.relabel.held_out: no training description left; withhold fewer "
                          "combinations or collect more episodes")
    index = {t: i for i, t in enumerate(trainable)}
    vocab = Vocabulary.build(trainable)
    design = held_out_design(params, mix, described, set(trainable))

    out = {}
    for name, episodes, labels in (("relabeled", mix, described), ("demos", demos, demo_labels)):
        kept = [[(start, end, index[text]) for text, start, end, _ in ls if text in index] for ls in labels]
        split = split_mask(len(episodes), cfg.val_fraction, params.seed)
        table = build_instruction_table(episodes, kept, split)
        meta = {"instructions": trainable, "vocabulary": list(vocab.words), "levels": list(fam.env.levels),
                "episodes": len(episodes), "steps": len(table), "labels": int(len(table.label_end)),
                "labelled_episodes": int(sum(bool(k) for k in kept)),
                # what goal-directed segments change: supervised steps against plain prefixes
                "segment_steps": int((table.label_end - table.label_start + 1).sum()),
                "prefix_steps": int((table.label_end + 1).sum()),
                "held_out_labels_removed": int(sum(len(ls) for ls in labels) - sum(len(k) for k in kept))}
        table.save(paths.relabel / name, meta)
        out[name] = {k: v for k, v in meta.items() if k not in ("instructions", "vocabulary")}

    write_json(paths.relabel / "instructions.json", {
        "trainable": len(trainable), "held_out": sum(c["held_out"] is not None for c in catalogue.values()),
        "design": design,
        "instructions": {t: {**c, "labels": counts[t]} for t, c in sorted(catalogue.items())},
    })
    asks = evaluation_asks(params, set(trainable), templates)
    write_json(paths.conditions, {"groups": list(GROUPS), "asks": asks,
                                  "held_out": held.model_dump(mode="json"), "datasets": out})
    print(f"relabel (language): {out['relabeled']['labels']} labels on {out['relabeled']['labelled_episodes']} "
          f"of {len(mix)} episodes, {len(trainable)} training instructions, {len(asks)} evaluation asks "
          f"in {time.perf_counter() - t0:.1f}s")


def held_out_design(params: Params, episodes: list[dict], described: list[list[tuple]],
                    trainable: set[str]) -> dict[str, dict[str, list[str]]]:
    """Check, on the training labels just written, that every held-out pair tests what its group
    says in each level (:func:`.grammar.composition_problems`), and return what that rests on: per
    level, the (verb, colour, type) clauses its training labels name. ``StageFailed`` names the pair,
    the level and the missing word (too few episodes can leave a word untrained in a level)."""
    fam = params.family("language")
    held = fam.relabel.held_out
    trained: dict[str, set] = {level: set() for level in fam.env.levels}
    for ep, labels in zip(episodes, described, strict=True):
        for text, _, _, goal in labels:
            if text in trainable:
                trained[_text(ep, "level")] |= clauses(from_goal_tuple(goal))
    present = {level: set(level_inventory(level)) for level in fam.env.levels}
    if problems := composition_problems(held.colour_object, held.verb_object, held.cross_level, present, trained):
        raise StageFailed("families.language.relabel.held_out: on the training labels, " + "; ".join(problems)
                          + ". Collect more episodes (collect.mix) or withhold other pairs.")
    return {level: sorted(" ".join(c) for c in trained[level]) for level in fam.env.levels}


def evaluation_asks(params: Params, seen: set[str], templates: dict[str, tuple[str, ...]]) -> list[dict]:
    """``asks_per_group`` asks per (level, group), each on its own env seed, never a collect seed.

    An ask is an instruction achievable in that seed's room: ``instruction`` is what the env's
    verifier checks; ``text`` is what the policy is told (a paraphrase for that group).
    """
    cfg = params.family("language").relabel
    held = cfg.held_out
    used = collect_env_seeds(params)
    asks = []
    for level in params.family("language").env.levels:
        need = dict.fromkeys(GROUPS, cfg.asks_per_group)
        env = make_grid_env(level)
        for seed in stream_seeds(params.seed, f"language/evaluate/{level}", cfg.asks_per_group * 200):
            if not any(need.values()):
                break
            if seed in used:
                continue
            reset_quietly(env, seed)
            rng = np.random.default_rng([seed, 17])
            candidates = candidate_instructions(env)
            group_of = {c: is_held_out(c, held.colour_object, held.verb_object, held.cross_level) for c in candidates}
            pools = {"seen": [c for c in candidates if c.text in seen],
                     **{g: [c for c in candidates if group_of[c] == g] for g in HELD_OUT_GROUPS}}
            pools["paraphrase"] = pools["seen"]
            try:
                pools["mission"] = [from_minigrid(env.unwrapped.instrs)]
            except ValueError:
                pools["mission"] = []
            for group in GROUPS:
                if need[group] and pools[group]:
                    instr = pools[group][rng.integers(len(pools[group]))]
                    text = instr.text
                    if group == "paraphrase":
                        options = templates[instr.verb]
                        text = paraphrase(instr, options[rng.integers(len(options))])
                    asks.append({"level": level, "env_seed": int(seed), "group": group,
                                 "instruction": instr.text, "text": text})
                    need[group] -= 1
        env.close()
        short = {g: n for g, n in need.items() if n}
        if short:
            print(f"relabel (language): {level}: could not find enough asks for {short} "
                  "(no such objects in its rooms); those groups are smaller")
    return asks
