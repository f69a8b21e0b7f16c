"""Dark Room (Laskin et al., 2022; Zintgraf et al.'s grid world): an agent in a ``size`` x ``size``
room starts in the centre cell and sees only its own cell; an unobserved goal cell is the task
(:mod:`.goals` lists the tasks and splits them). Actions: 0 stay, 1 up, 2 down, 3 left, 4 right (a
move into a wall stays put). The reward is 1 for every step that ends on the goal, so an episode of
H steps from a goal d moves away is worth at most H - d + 1. The dynamics are :func:`move` and
:func:`reward`, used by the gymnasium env, the source learner and the batched in-context rollouts
alike."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .goals import start_cell

ENV_ID = "justask/DarkRoom-v0"
ACTIONS = 5
STEPS = np.array([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)], dtype=np.int64)  # (row, col) change per action


def move(cells: np.ndarray, actions: np.ndarray, size: int) -> np.ndarray:
    """Cells (..., 2) after ``actions`` (...), clipped at the walls."""
    return np.clip(cells + STEPS[actions], 0, size - 1)


def reward(cells: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """1.0 where a cell (..., 2) is its goal (..., 2), else 0.0."""
    return np.all(cells == goals, axis=-1).astype(np.float32)


def frame(size: int, cell, goal, px: int = 16) -> np.ndarray:
    """An RGB picture of the room: the goal green (the agent never sees it), the agent white."""
    img = np.full((size * px, size * px, 3), 40, np.uint8)
    img[::px, :, :] = img[:, ::px, :] = 70
    (gr, gc), (ar, ac) = goal, cell
    img[gr * px + 2:(gr + 1) * px - 1, gc * px + 2:(gc + 1) * px - 1] = (40, 170, 60)
    img[ar * px + 4:(ar + 1) * px - 3, ac * px + 4:(ac + 1) * px - 3] = (235, 235, 235)
    return img


class DarkRoom(gym.Env):
    """One Dark Room task; the goal is set at construction or by ``reset(options={"goal": (r, c)})``."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, size: int = 9, goal: tuple[int, int] | None = None, render_mode: str | None = None):
        self.size, self.render_mode = size, render_mode
        self.goal = np.array(goal if goal is not None else (0, 0), np.int64)
        self.observation_space = spaces.Box(0.0, float(size - 1), (2,), np.float32)
        self.action_space = spaces.Discrete(ACTIONS)
        self.cell = np.array(start_cell(size), np.int64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if options and "goal" in options:
            self.goal = np.array(options["goal"], np.int64)
        self.cell = np.array(start_cell(self.size), np.int64)
        return self.cell.astype(np.float32), {}

    def step(self, action):
        self.cell = move(self.cell, int(action), self.size)
        return self.cell.astype(np.float32), float(reward(self.cell, self.goal)), False, False, {}

    def render(self):
        return frame(self.size, self.cell, self.goal)


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=f"{__name__}:DarkRoom")


def make_env(cfg, goal: tuple[int, int] | None = None) -> gym.Env:
    """The registered env for the family's ``env`` section (time limit ``max_episode_steps``)."""
    return gym.make(ENV_ID, size=cfg.size, goal=goal, max_episode_steps=cfg.max_episode_steps)
