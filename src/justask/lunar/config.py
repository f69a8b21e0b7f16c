"""Params schemas of the LunarLander world, shared by the families that collect in it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from justask.lunar.controllers import CONTROLLERS
from justask.settings import Fraction, PosInt, Strict

SUPPORTED_ENVS = ("LunarLander-v3",)


class EnvConfig(Strict):
    id: Literal[SUPPORTED_ENVS] = "LunarLander-v3"  # type: ignore[valid-type]
    continuous: bool = False
    max_episode_steps: Annotated[int, Field(ge=10, le=10_000)] = 1000


class BehaviourSpec(Strict):
    """``episodes`` rollouts of ``controller`` with epsilon-random actions at rate ``epsilon``."""

    controller: str
    epsilon: Fraction = 0.0
    episodes: PosInt

    @field_validator("controller")
    @classmethod
    def known_controller(cls, v: str) -> str:
        if v not in CONTROLLERS:
            raise ValueError(f"unknown controller {v!r}; allowed: {', '.join(CONTROLLERS)}")
        return v

    @property
    def name(self) -> str:
        return behaviour_name(self.controller, self.epsilon)


def behaviour_name(controller: str, epsilon: float) -> str:
    """``expert``, or ``expert-eps0.3`` with epsilon-random actions."""
    return controller if epsilon == 0 else f"{controller}-eps{epsilon:g}"
