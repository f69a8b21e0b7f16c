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


def _figure_to(path: Path, fig) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def success_heatmap(heat, path: Path) -> Path:
    """One panel per model: success rate per colour x object, held-out cells outlined in red.
    ``heat`` has columns model, colour, type, success, held_out (``language-heatmap.csv``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(heat["model"]))
    colours, types = sorted(set(heat["colour"])), sorted(set(heat["type"]))
    fig, axes = plt.subplots(1, len(models), figsize=(1.0 + 0.75 * len(types) * len(models), 0.5 + 0.5 * len(colours)),
                             squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        grid = np.full((len(colours), len(types)), np.nan)
        sub = heat[heat["model"] == model]
        for _, r in sub.iterrows():
            grid[colours.index(r["colour"]), types.index(r["type"])] = r["success"]
        ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        for _, r in sub.iterrows():
            i, j = colours.index(r["colour"]), types.index(r["type"])
            ax.text(j, i, f"{100 * r['success']:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if r["success"] < 0.5 else "black")
            if r["held_out"]:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        ax.set_xticks(range(len(types)), types)
        ax.set_yticks(range(len(colours)), colours)
        ax.set_title(model, fontsize=9)
    fig.suptitle("success % when asked (red: colour x object never trained on)", fontsize=9, y=1.06)
    return _figure_to(path, fig)


def return_scatter(points, path: Path, demonstrator_return: float) -> Path:
    """Learned vs true return per held-out trajectory, one colour per behaviour; the dashed line
    marks the demonstrator's mean true return. ``points``: behaviour, true_return, predicted_return."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, g in points.groupby("behaviour", sort=False):
        ax.scatter(g["true_return"], g["predicted_return"], s=12, label=name)
    ax.axvline(demonstrator_return, ls="--", color="grey", label="demonstrator (mean)")
    ax.set_xlabel("true return")
    ax.set_ylabel("learned return")
    ax.legend(fontsize=7)
    return _figure_to(path, fig)
