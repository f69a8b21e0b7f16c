"""LunarLander behaviour policies of graded, *consistent* quality.

All controllers share the structure of gymnasium's heuristic lander (steer the angle towards the
pad, hold a hover height proportional to the horizontal offset, damp velocities) and differ in
systematically wrong gains, targets or thresholds. Each behaves the same way every episode, so a
policy conditioned on return can tell them apart; epsilon-random noise on an expert cannot show
that, because BC's argmax removes it.

Observation layout (gymnasium docs): x, y, vx, vy, angle, angular velocity, left leg, right leg.
NumPy only: params schemas read :data:`CONTROLLERS` without importing gymnasium.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import gymnasium as gym


@dataclass(frozen=True)
class Gains:
    """Gains of the heuristic controller (defaults: gymnasium's heuristic lander)."""

    angle_x: float = 0.5  # aim the body towards the pad: weight of horizontal offset...
    angle_vx: float = 1.0  # ...and of horizontal speed
    angle_max: float = 0.4  # clip of the target angle (radians)
    hover_x: float = 0.55  # target height per unit of horizontal offset
    hover_offset: float = 0.0  # extra target height: > 0 hovers instead of landing
    k_angle: float = 0.5
    k_spin: float = 1.0
    k_height: float = 0.5
    k_vy: float = 0.5
    threshold: float = 0.05  # dead band before an engine fires


EXPERT = Gains()

# Name -> (gains, what is wrong with it). Mean returns on LunarLander-v3 (discrete) are measured
# by the collect stage and written to the dataset's metadata; see README for the figures.
CONTROLLERS: dict[str, tuple[Gains | None, str]] = {
    "expert": (EXPERT, "gymnasium's heuristic lander"),
    "hoverer": (replace(EXPERT, hover_offset=0.25), "holds altitude above the pad until time runs out"),
    "overcorrector": (replace(EXPERT, k_angle=3.0, k_spin=0.3), "attitude gain far too high, weak damping"),
    "sloppy": (replace(EXPERT, threshold=0.25), "wide dead band: fires engines late"),
    "lazy": (replace(EXPERT, k_height=0.2, k_vy=0.2), "weak height control: lands hard"),
    "drifter": (replace(EXPERT, angle_x=0.0, angle_vx=0.2), "ignores horizontal offset: lands off the pad"),
    "random": (None, "uniformly random actions"),
}


def controller_actions(obs: np.ndarray, gains: Gains, continuous: bool) -> np.ndarray:
    """Vectorised heuristic: actions for a batch of observations ``obs`` of shape (n, 8)."""
    s = obs
    angle_targ = np.clip(s[:, 0] * gains.angle_x + s[:, 2] * gains.angle_vx, -gains.angle_max, gains.angle_max)
    hover_targ = gains.hover_x * np.abs(s[:, 0]) + gains.hover_offset
    angle_todo = (angle_targ - s[:, 4]) * gains.k_angle - s[:, 5] * gains.k_spin
    hover_todo = (hover_targ - s[:, 1]) * gains.k_height - s[:, 3] * gains.k_vy
    legs = (s[:, 6] > 0) | (s[:, 7] > 0)
    angle_todo = np.where(legs, 0.0, angle_todo)
    hover_todo = np.where(legs, -s[:, 3] * gains.k_vy, hover_todo)
    if continuous:
        a = np.stack([hover_todo * 20 - 1, -angle_todo * 20], axis=1)
        return np.clip(a, -1, 1).astype(np.float32)
    th = gains.threshold
    a = np.zeros(len(s), dtype=np.int64)
    a = np.where(angle_todo > th, 1, a)
    a = np.where(angle_todo < -th, 3, a)
    return np.where((hover_todo > np.abs(angle_todo)) & (hover_todo > th), 2, a)


class BehaviourPolicy:
    """A controller with epsilon-random actions; randomness comes from per-episode generators so
    an episode's actions depend only on its own seed, not on how episodes are batched."""

    def __init__(self, controller: str, epsilon: float, action_space: gym.Space, continuous: bool):
        self.gains = CONTROLLERS[controller][0]
        self.epsilon = epsilon
        self.continuous = continuous
        self.action_space = action_space

    def _random(self, rng: np.random.Generator) -> np.ndarray | int:
        if self.continuous:
            return rng.uniform(-1, 1, size=self.action_space.shape).astype(np.float32)
        return int(rng.integers(self.action_space.n))

    def act(self, obs: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
        if self.gains is None:
            return np.array([self._random(r) for r in rngs])
        actions = controller_actions(obs, self.gains, self.continuous)
        if self.epsilon > 0:
            for i, rng in enumerate(rngs):
                if rng.random() < self.epsilon:
                    actions[i] = self._random(rng)
        return actions
