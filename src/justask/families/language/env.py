"""BabyAI episodes from behaviour policies of mixed quality, to be relabeled in hindsight.

An episode is defined by (level, env_seed, behaviour, behaviour_seed): the env is reset with
``env_seed`` and every random choice of the behaviour comes from ``default_rng(behaviour_seed)``,
never from the env's generator, so ``env.reset(seed=env_seed)`` followed by the recorded actions
reproduces the episode exactly in a fresh env.

Behaviours: minigrid's BabyAI bot on the episode's own mission (``bot``), the bot pursuing another
instruction achievable in the same level (``other_goal``), the bot with epsilon-random actions
(``noisy_bot``) and uniformly random actions (``random``). The env always keeps its own mission,
so ``success`` and termination refer to it whatever the behaviour pursued.

Episodes are rolled out by the shared engine (:func:`justask.rollout.run_episodes`): a behaviour is
a batch policy whose bots read each slot's env, and the env exposes the observation a policy
sees, ``Dict(image, direction)``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from justask.executors import run_all
from justask.rollout import Episode, run_episodes
from justask.seeding import stream_seeds

if TYPE_CHECKING:
    from justask.config import Params
    from justask.settings import ScaleConfig

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


OBSERVATION_SPACE = spaces.Dict({
    "image": spaces.Box(0, 255, (7, 7, 3), np.uint8),
    "direction": spaces.Discrete(4),
})
ACTION_SPACE = spaces.Discrete(DONE + 1)


class View(gym.ObservationWrapper):
    """What the agent sees: the 7x7 partial view and its direction (minigrid's text mission is
    left out: a policy is told its instruction apart), and resets without the level generator's
    "Sampling rejected" prints."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = OBSERVATION_SPACE

    def observation(self, observation: dict) -> dict:
        return {"image": observation["image"], "direction": observation["direction"]}

    def reset(self, **kwargs):
        with contextlib.redirect_stdout(io.StringIO()):
            return super().reset(**kwargs)


def make_grid_env(level: str, max_steps: int | None = None, render_mode: str | None = None) -> gym.Env:
    """One BabyAI env of ``level`` (``max_steps``: another time limit than the level's own)."""
    import minigrid  # noqa: F401 (registers the BabyAI levels)

    kwargs = {"render_mode": render_mode} | ({} if max_steps is None else {"max_steps": max_steps})
    return View(gym.make(level, disable_env_checker=True, **kwargs))


def make_grid_vector_env(num_envs: int, level: str, max_steps: int | None = None,
                         render_mode: str | None = None) -> gym.vector.SyncVectorEnv:
    """``num_envs`` envs of one level, autoreset disabled (the rollout engine resets each episode
    with its own seed)."""
    return gym.vector.SyncVectorEnv([lambda: make_grid_env(level, max_steps, render_mode) for _ in range(num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.DISABLED)


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


@dataclass
class _Pursuit:
    """What a behaviour pursues in one episode: its bot (None: random actions), the instruction an
    other-goal bot follows, the bot's suggested next action, its random stream."""

    behaviour: GridBehaviour
    rng: np.random.Generator
    mission: str
    bot: object = None
    instr: object = None
    suggested: int | None = None
    action: int = -1
    failed: bool = False  # the bot raised (or found no instruction to pursue): the episode ends after this step


class BehaviourBatch:
    """The behaviours of a list of episode specs as one batch policy for the rollout engine.

    Each slot's bot plans from that slot's env; a bot that reaches its own goal ends the episode
    (recorded as truncated) instead of stepping ``done``, except when the env's own mission is met
    at reset, where ``done`` is the bot's own way to end it (the verifier needs one step)."""

    def __init__(self, envs: gym.vector.SyncVectorEnv, specs: list[Spec]):
        self.envs, self.specs = envs, specs
        self.slots: list[_Pursuit | None] = [None] * envs.num_envs
        self.pursuits: dict[int, _Pursuit] = {}  # episode index -> its pursuit, for the episode's record

    def start(self, slot: int, episode_index: int) -> None:
        _, _, behaviour, behaviour_seed, *_ = self.specs[episode_index]
        env = self.envs.envs[slot]
        p = _Pursuit(behaviour, np.random.default_rng(behaviour_seed), env.unwrapped.mission)
        try:
            if behaviour.name == "other_goal":
                p.bot, p.instr, p.suggested = _other_goal_bot(env, p.rng)
                p.failed = p.bot is None
            elif behaviour.name != "random":
                p.bot = _bot_for(env, None)
                p.suggested = p.bot.replan()
        except Exception:  # the bot fails on rare layouts
            p.bot, p.failed = None, True
        self.slots[slot] = self.pursuits[episode_index] = p

    def act(self, obs: dict, active: np.ndarray) -> np.ndarray:
        actions = np.zeros(self.envs.num_envs, np.int64)
        for i in np.flatnonzero(active):
            p = self.slots[i]
            if p.bot is None:
                action = int(p.rng.integers(N_ACTIONS))
            elif p.suggested == DONE:  # only before the first step: see the class docstring
                action = DONE
            else:
                action = int(p.suggested)
                if p.behaviour.name == "noisy_bot" and p.rng.random() < p.behaviour.epsilon:
                    action = int(p.rng.integers(N_ACTIONS))
            actions[i] = p.action = action
        return actions

    def observe(self, rewards: np.ndarray, ended: np.ndarray, active: np.ndarray) -> np.ndarray:
        stop = np.zeros(self.envs.num_envs, dtype=bool)
        for i in np.flatnonzero(active & ~ended):
            p = self.slots[i]
            if p.failed:
                stop[i] = True
                continue
            if p.bot is None:
                continue
            try:
                if p.instr is not None and p.action == self.envs.envs[i].unwrapped.actions.drop:
                    p.instr.update_objs_poss()  # the env does this for its own instruction only
                p.suggested = p.bot.replan(None if p.action == p.suggested else p.action)
            except Exception:  # e.g. a random toggle opened a box (DisappearedBoxError): stop here
                p.failed = stop[i] = True
                continue
            stop[i] = p.suggested == DONE  # its goal is reached: stop without stepping `done`
        return stop


# level, env_seed, behaviour, behaviour_seed[, max_steps (None: the level's own limit)]
Spec = tuple[str, int, GridBehaviour, int] | tuple[str, int, GridBehaviour, int, int | None]


def _grid_episode(spec: Spec, e: Episode, p: _Pursuit) -> GridEpisode:
    return GridEpisode(
        level=spec[0], env_seed=int(spec[1]), behaviour=p.behaviour.label, mission=p.mission,
        images=np.asarray(e.observations["image"], dtype=np.uint8),
        directions=np.asarray(e.observations["direction"], dtype=np.int64),
        actions=np.asarray(e.actions, dtype=np.int64), rewards=e.rewards.astype(np.float32),
        terminations=e.terminations, truncations=e.truncations,
        success=bool(e.terminations[-1] and e.rewards[-1] > 0), bot_failed=p.failed)


def _run_chunk(specs: list[Spec]) -> list[GridEpisode]:
    """Roll out a chunk of specs, one env per run of specs with the same (level, max_steps): reset
    with an episode's seed, minigrid regenerates the whole level from that seed alone, so a reused
    env gives the same episodes as a fresh one (and saves the env construction per episode)."""
    episodes: list[GridEpisode] = []
    start = 0
    while start < len(specs):
        key = (specs[start][0], specs[start][4] if len(specs[start]) > 4 else None)
        end = start
        while end < len(specs) and (specs[end][0], specs[end][4] if len(specs[end]) > 4 else None) == key:
            end += 1
        group = specs[start:end]
        envs = make_grid_vector_env(1, *key)
        try:
            policy = BehaviourBatch(envs, group)
            done = run_episodes(envs, [s[1] for s in group], policy)
        finally:
            envs.close()
        episodes += [_grid_episode(s, e, policy.pursuits[e.index]) for s, e in zip(group, done, strict=True)]
        start = end
    return episodes


def run_grid_episode(level: str, env_seed: int, behaviour: GridBehaviour, behaviour_seed: int,
                     max_steps: int | None = None) -> GridEpisode:
    """Roll out one episode in a fresh env (see the module docstring for what defines it)."""
    return _run_chunk([(level, env_seed, behaviour, behaviour_seed, max_steps)])[0]


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


def episode_specs(seed: int, level: str, behaviour: GridBehaviour, n: int, stream: str = "collect",
                  max_steps: int | None = None):
    """(level, env_seed, behaviour, behaviour_seed, max_steps) of the first ``n`` episodes of a behaviour."""
    env_seeds = stream_seeds(seed, f"language/{stream}/{level}/{behaviour.label}/env", n)
    beh_seeds = stream_seeds(seed, f"language/{stream}/{level}/{behaviour.label}/behaviour", n)
    return [(level, e, behaviour, b, max_steps) for e, b in zip(env_seeds, beh_seeds, strict=True)]


def collect_env_seeds(params: Params) -> set[int]:
    """Every env seed collection uses (evaluation must stay disjoint from these)."""
    fam = params.family("language")
    cfg = fam.collect
    seeds: set[int] = set()
    for level in fam.env.levels:
        for b in cfg.mix:
            seeds |= {s[1] for s in episode_specs(params.seed, level, GridBehaviour(b.behaviour, b.epsilon),
                                                  b.episodes)}
        seeds |= {s[1] for s in episode_specs(params.seed, level, GridBehaviour("bot"), cfg.demos, "demos")}
    return seeds
