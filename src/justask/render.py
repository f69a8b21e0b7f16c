"""Rollout GIFs: watch a conditioned policy do what it was asked."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from justask.data.atomic import atomic_write


def record_gif(model, env_cfg, target: float, env_seed: int, path: Path, device,
               max_steps: int = 400, every: int = 2, reward_fn=None) -> Path:
    """Roll out one episode asking for ``target`` and save every ``every``-th frame as a GIF
    (``reward_fn``: a learned reward for the return-to-go, as in :func:`justask.evaluate.rollout`)."""
    from justask.envs.lunar import make_env
    from justask.evaluate import ConditionedRollout

    env = make_env(env_cfg.id, env_cfg.continuous, env_cfg.max_episode_steps, render_mode="rgb_array")
    policy = ConditionedRollout(model, 1, np.array([target]), device, reward_fn)
    policy.start(0, 0)
    obs, _ = env.reset(seed=env_seed)
    frames = [env.render()]
    for step in range(max_steps):
        action = policy.act(obs[None], np.array([True]))[0]
        obs, reward, terminated, truncated, _ = env.step(action)
        policy.observe(np.array([reward]), np.array([True]))
        if step % every == 0 or terminated or truncated:
            frames.append(env.render())
        if terminated or truncated:
            break
    env.close()
    return write_gif([f[::2, ::2] for f in frames], path)  # half resolution keeps the file small


def write_gif(frames: list[np.ndarray], path: Path, duration_ms: int = 40) -> Path:
    """Write RGB ``frames`` as a looping GIF, atomically."""
    atomic_write(path, lambda p: iio.imwrite(p, np.stack(frames), extension=".gif", duration=duration_ms, loop=0))
    return path
