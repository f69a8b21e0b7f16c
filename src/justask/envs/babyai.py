"""BabyAI episodes from behaviour policies of mixed quality, to be relabeled in hindsight.

An episode is defined by (level, env_seed, behaviour, behaviour_seed): the env is reset with
``env_seed`` and every random choice of the behaviour comes from ``default_rng(behaviour_seed)``,
never from the env's generator, so ``env.reset(seed=env_seed)`` followed by the recorded actions
reproduces the episode exactly in a fresh env.

Behaviours: minigrid's BabyAI bot on the episode's own mission (``bot``), the bot pursuing another
instruction achievable in the same level (``other_goal``), the bot with epsilon-random actions
(``noisy_bot``) and uniformly random actions (``random``). The env always keeps its own mission,
so ``success`` and termination refer to it whatever the behaviour pursued.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

from justask.executors import run_all

if TYPE_CHECKING:
    from justask.config import ScaleConfig

BEHAVIOURS = ("bot", "other_goal", "noisy_bot", "random")
N_ACTIONS = 6  # random actions: left, right, forward, pickup, drop, toggle
DONE = 6  # stepped only when the own mission is already met at reset (see _run)


@dataclass(frozen=True)
class GridBehaviour:
    name: str
    epsilon: float = 0.0

    def __post_init__(self):
        if self.name not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {self.name!r}; expected one of {BEHAVIOURS}")
        if not 0.0 <= self.epsilon <= 1.0 or (self.epsilon and self.name != "noisy_bot"):
            raise ValueError(f"epsilon {self.epsilon} is only valid in [0, 1] for noisy_bot")

    @property
    def label(self) -> str:
        return f"{self.name}-eps{self.epsilon:g}" if self.name == "noisy_bot" else self.name


@dataclass
class GridEpisode:
    """A finished episode: ``images`` and ``directions`` have one more row than ``actions`` (the final one)."""

    level: str
    env_seed: int
    behaviour: str
    mission: str
    images: np.ndarray  # (T+1, 7, 7, 3) uint8
    directions: np.ndarray  # (T+1,) int64
    actions: np.ndarray  # (T,) int64
    rewards: np.ndarray  # (T,) float32
    terminations: np.ndarray  # (T,) bool
    truncations: np.ndarray  # (T,) bool
    success: bool
    bot_failed: bool = False  # the bot raised (or found no instruction to pursue); the episode was cut short

    def __len__(self) -> int:
        return len(self.actions)


def make_grid_env(level: str, max_steps: int | None = None, render_mode: str | None = None) -> gym.Env:
    import minigrid  # noqa: F401 (registers the BabyAI levels)

    kwargs = {"render_mode": render_mode} | ({} if max_steps is None else {"max_steps": max_steps})
    return gym.make(level, disable_env_checker=True, **kwargs)


def reset_quietly(env: gym.Env, seed: int) -> dict:
    """``env.reset(seed=seed)`` without the level generator's "Sampling rejected" prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        obs, _ = env.reset(seed=seed)
    return obs


def room_objects(env: gym.Env) -> list[tuple[str, str]]:
    """(colour, type) of every object in the level (doors included, walls and floor not), in grid order."""
    grid = env.unwrapped.grid
    return [(c.color, c.type) for c in grid.grid if c is not None and c.type not in ("wall", "floor")]


def _instructions(env: gym.Env) -> list:
    """Every GoTo / Pickup / PutNext / Open instruction over the level's objects, by colour and type
    (an instruction about a colour and type shared by several objects is met by any of them)."""
    from minigrid.envs.babyai.core.verifier import GoToInstr, ObjDesc, OpenInstr, PickupInstr, PutNextInstr

    objs = list(dict.fromkeys(room_objects(env)))
    movable = [o for o in objs if o[1] != "door"]
    out = [GoToInstr(ObjDesc(t, c)) for c, t in objs]
    out += [PickupInstr(ObjDesc(t, c)) for c, t in movable]
    out += [PutNextInstr(ObjDesc(t1, c1), ObjDesc(t2, c2)) for c1, t1 in movable for c2, t2 in movable
            if (c1, t1) != (c2, t2)]
    # A locked door needs a key of its colour (the bot would look for it and fail).
    keys = {c for c, t in movable if t == "key"}
    locked = {d.color for d in env.unwrapped.grid.grid if d is not None and d.type == "door" and d.is_locked} - keys
    out += [OpenInstr(ObjDesc(t, c)) for c, t in objs if t == "door" and c not in locked]
    return out


def _bot_for(env: gym.Env, instr):
    """A bot pursuing ``instr`` (None: the env's own mission). The bot reads ``instrs`` only in its
    constructor, so the env's own instruction is swapped out just for that and keeps deciding
    termination."""
    from minigrid.utils.baby_ai_bot import BabyAIBot

    u = env.unwrapped
    if instr is None:
        return BabyAIBot(env)
    own = u.instrs
    instr.reset_verifier(u)
    u.instrs = instr
    try:
        return BabyAIBot(env)
    finally:
        u.instrs = own


def _other_goal_bot(env: gym.Env, rng: np.random.Generator):
    """(bot, instruction, first action) for a random instruction other than the mission; Nones if
    none works. Instructions the bot fails on or finds already met at reset are redrawn."""
    u = env.unwrapped
    candidates = [i for i in _instructions(env) if i.surface(u) != u.mission]
    while candidates:
        instr = candidates.pop(int(rng.integers(len(candidates))))
        try:
            bot = _bot_for(env, instr)
            action = bot.replan()
        except Exception:  # the bot fails on rare layouts: try another instruction
            continue
        if action != DONE:
            return bot, instr, action
    return None, None, None


def _run(env: gym.Env, level: str, env_seed: int, behaviour: GridBehaviour, behaviour_seed: int) -> GridEpisode:
    rng = np.random.default_rng(behaviour_seed)
    obs = reset_quietly(env, env_seed)
    u = env.unwrapped
    mission = u.mission
    images, directions = [obs["image"]], [obs["direction"]]
    actions, rewards, terms, truncs = [], [], [], []

    bot, instr, suggested, failed = None, None, None, False
    try:
        if behaviour.name == "other_goal":
            bot, instr, suggested = _other_goal_bot(env, rng)
            failed = bot is None
        elif behaviour.name != "random":
            bot = _bot_for(env, None)
            suggested = bot.replan()
    except Exception:  # the bot fails on rare layouts
        bot, failed = None, True

    while True:
        if bot is None:
            action = int(rng.integers(N_ACTIONS))
        elif suggested == DONE:
            if behaviour.name == "other_goal" or actions:
                break  # its goal is reached: stop without stepping `done`
            # The own mission is met at reset (e.g. already facing the GoTo target): the env's
            # verifier needs one step, and `done` is the bot's own way to end it.
            action = DONE
        else:
            action = int(suggested)
            if behaviour.name == "noisy_bot" and rng.random() < behaviour.epsilon:
                action = int(rng.integers(N_ACTIONS))
        obs, reward, term, trunc, _ = env.step(action)
        images.append(obs["image"])
        directions.append(obs["direction"])
        actions.append(action)
        rewards.append(reward)
        terms.append(term)
        truncs.append(trunc)
        if term or trunc or failed:
            break
        if bot is not None:
            try:
                if instr is not None and action == u.actions.drop:
                    instr.update_objs_poss()  # the env does this for its own instruction only
                suggested = bot.replan(None if action == suggested else action)
            except Exception:  # e.g. a random toggle opened a box (DisappearedBoxError): stop here
                failed = True
                break
    if not (terms[-1] or truncs[-1]):
        truncs[-1] = True

    return GridEpisode(
        level=level,
        env_seed=int(env_seed),
        behaviour=behaviour.label,
        mission=mission,
        images=np.asarray(images, dtype=np.uint8),
        directions=np.asarray(directions, dtype=np.int64),
        actions=np.asarray(actions, dtype=np.int64),
        rewards=np.asarray(rewards, dtype=np.float32),
        terminations=np.asarray(terms, dtype=bool),
        truncations=np.asarray(truncs, dtype=bool),
        success=bool(terms[-1] and rewards[-1] > 0),
        bot_failed=failed,
    )


def run_grid_episode(level: str, env_seed: int, behaviour: GridBehaviour, behaviour_seed: int,
                     max_steps: int | None = None) -> GridEpisode:
    """Roll out one episode in a fresh env (see the module docstring for what defines it)."""
    env = make_grid_env(level, max_steps)
    try:
        return _run(env, level, env_seed, behaviour, behaviour_seed)
    finally:
        env.close()


# level, env_seed, behaviour, behaviour_seed[, max_steps (None: the level's own limit)]
Spec = tuple[str, int, GridBehaviour, int] | tuple[str, int, GridBehaviour, int, int | None]


def _run_chunk(specs: list[Spec]) -> list[GridEpisode]:
    """Roll out a chunk of specs with one env per (level, max_steps): reset with an episode's seed,
    minigrid regenerates the whole level from that seed alone, so a reused env gives the same
    episodes as a fresh one (and saves the env construction per episode)."""
    envs: dict[tuple[str, int | None], gym.Env] = {}
    try:
        episodes = []
        for level, env_seed, behaviour, behaviour_seed, *rest in specs:
            key = (level, rest[0] if rest else None)
            if key not in envs:
                envs[key] = make_grid_env(*key)
            episodes.append(_run(envs[key], level, env_seed, behaviour, behaviour_seed))
        return episodes
    finally:
        for env in envs.values():
            env.close()


def collect_grid_episodes(specs: list[Spec], workers: int, progress: Callable[[int], object] | None = None,
                          scale: ScaleConfig | None = None) -> list[GridEpisode]:
    """Roll out every spec, in ``workers`` processes on the executor ``scale`` names (in-process
    for the default process executor and ``workers <= 1``; see :mod:`justask.executors`); results
    are in input order and identical whatever the executor. ``progress(n)`` is called with the
    number of episodes just finished (e.g. ``lambda n: bar.advance(task, n)``)."""
    step = max(1, min(64, -(-len(specs) // (4 * max(workers, 1)))))
    chunks = [specs[i:i + step] for i in range(0, len(specs), step)]
    done = None if progress is None else (lambda _i, eps: progress(len(eps)))
    return [e for eps in run_all(_run_chunk, chunks, workers, scale, on_result=done) for e in eps]
