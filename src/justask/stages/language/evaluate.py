"""evaluate (language): ask every trained policy, in words, for the evaluation asks of relabel.

Each ask (``conditions.json``) is a level, an env seed disjoint from collection, the instruction
minigrid's verifier checks, and the text the policy is told (a paraphrase for that group). The
env's own mission is replaced by the asked instruction, so the episode ends with success exactly
when the verifier says the instruction was carried out. All asks of a model and seed run
together, one batched forward pass per step across the live envs.

Writes ``metrics/language.json`` (success rate and episode length per model and group, mean over
seeds x asks with a stratified-bootstrap CI), ``metrics/language-heatmap.csv`` (success per colour x
object, held-out cells marked), per-episode results, and logs to MLflow.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from justask.config import Params
from justask.data.atomic import atomic_write, write_json, write_text
from justask.data.language.grammar import parse
from justask.envs.babyai import make_grid_env, reset_quietly
from justask.executors import run_all
from justask.metrics import iqm_with_ci
from justask.models.common import MIN_ROWS
from justask.paths import family_paths
from justask.render import success_heatmap
from justask.seeding import seed_everything
from justask.stages import StageFailed
from justask.stages.language.relabel import GROUPS
from justask.stages.language.train import instruction_features, load_policy
from justask.tracking import setup_mlflow
from justask.train import pick_device


def rollout_asks(model, vocab, asks: list[dict], device: torch.device,
                 num_envs: int = 32, frames: bool = False) -> list[dict]:
    """Run one episode per ask (``level``, ``env_seed``, ``instruction`` the verifier checks,
    ``text`` the policy is told) with ``model``; returns ``success`` and ``length`` per ask, and
    with ``frames=True`` the rendered ``frames`` of each episode too."""
    k = model.context
    features = instruction_features(model.spec.encoder, [a["text"] for a in asks], vocab)
    results: list[dict] = [{}] * len(asks)
    pending = list(range(len(asks)))[::-1]
    slots: list[dict] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small forward passes: threads only add overhead
    try:
        while pending or slots:
            while pending and len(slots) < num_envs:
                i = pending.pop()
                ask = asks[i]
                env = make_grid_env(ask["level"], render_mode="rgb_array" if frames else None)
                obs = reset_quietly(env, ask["env_seed"])
                u = env.unwrapped
                u.instrs = parse(ask["instruction"]).to_minigrid()
                u.instrs.reset_verifier(u)
                u.mission = ask["text"]  # what the agent was told, not the level's own mission
                slots.append({"i": i, "env": env, "steps": 0, "images": np.zeros((k, 7, 7, 3), np.uint8),
                              "dirs": np.zeros(k, np.int64), "mask": np.zeros(k, bool), "obs": obs,
                              "features": None, "instruction": None, "frames": [env.render()] if frames else None})
            for s in slots:  # slide each window and append the current frame
                for key in ("images", "dirs", "mask"):
                    s[key][:-1] = s[key][1:]
                s["images"][-1], s["dirs"][-1], s["mask"][-1] = s["obs"]["image"], s["obs"]["direction"], True
            idx = np.array([s["i"] for s in slots])
            batch = {
                "images": torch.as_tensor(np.stack([s["images"] for s in slots]), device=device),
                "directions": torch.as_tensor(np.stack([s["dirs"] for s in slots]), device=device),
                "mask": torch.as_tensor(np.stack([s["mask"] for s in slots]), device=device),
            } | {name: torch.as_tensor(v[idx], device=device) for name, v in features.items()}
            with torch.inference_mode():
                if len(slots) >= MIN_ROWS:
                    actions = _act_cached(model, slots, batch, k, device).cpu().numpy()
                else:  # too few rows for the cached path to match the full one bit for bit (once
                    # fewer than MIN_ROWS envs are live, no more are started: the cache is not needed)
                    actions = model.act(batch).cpu().numpy()
            alive = []
            for s, a in zip(slots, actions, strict=True):
                s["obs"], reward, terminated, truncated, _ = s["env"].step(int(a))
                s["steps"] += 1
                if frames:
                    s["frames"].append(s["env"].render())
                if terminated or truncated:
                    results[s["i"]] = {"success": bool(terminated and reward > 0), "length": s["steps"]}
                    if frames:
                        results[s["i"]]["frames"] = s["frames"]
                    s["env"].close()
                else:
                    alive.append(s)
            slots = alive
    finally:
        torch.set_num_threads(threads)
    return results


def _act_cached(model, slots: list[dict], batch: dict, k: int, device: torch.device) -> torch.Tensor:
    """``model.act(batch)`` for at least ``MIN_ROWS`` slots, encoding each view once, when it
    arrives, instead of at every step of the K-step window, and each instruction once per episode
    (``slot["features"]``: the window's (K, hidden) view features; ``slot["instruction"]``).

    The same actions as the full pass (tests/test_inference.py): that pass also encodes every view
    (and the empty views that left-pad a new window) on its own, and with at least ``MIN_ROWS`` rows
    in a matrix product a row's result does not depend on the others (see
    :data:`justask.models.common.MIN_ROWS`; new instructions are padded to that many rows)."""
    new = [j for j, s in enumerate(slots) if s["features"] is None]
    if new:  # encode each instruction once, when its episode starts
        rows = torch.as_tensor(new + new[:1] * (MIN_ROWS - len(new)), device=device)
        key = model.instruction.input_key
        for j, c in zip(new, model.instruction({key: batch[key][rows]}), strict=False):  # drops the padding
            slots[j]["instruction"] = c
    cond = torch.stack([s["instruction"] for s in slots])  # (B, hidden)
    images = np.stack([s["obs"]["image"] for s in slots] + [np.zeros((7, 7, 3), np.uint8)] * len(new))
    f = model.frame_features(torch.as_tensor(images, device=device), torch.cat([cond, cond[new]]))
    empty = dict(zip(new, f[len(slots):], strict=True))  # a new window starts as K empty views
    windows = torch.stack([empty[j].expand(k, -1) if s["features"] is None else s["features"]
                           for j, s in enumerate(slots)])
    windows = torch.cat([windows[:, 1:], f[:len(slots), None]], dim=1)
    for s, w in zip(slots, windows, strict=True):
        s["features"] = w
    return model.window_logits(windows, batch["directions"])[:, -1].argmax(-1)


def ask_job(job: tuple[Path, list[dict], str, int]) -> list[dict]:
    """:func:`rollout_asks` of the checkpoint at ``job[0]`` on asks ``job[1]`` (device ``job[2]``,
    ``job[3]`` envs at a time), loading the policy in whichever process runs it."""
    ckpt, asks, device, num_envs = job
    model, vocab, _ = load_policy(ckpt, device)
    with torch.no_grad():
        return rollout_asks(model, vocab, asks, torch.device(device), num_envs)


def evaluate(params: Params, root: Path = Path(".")) -> dict:
    cfg = params.language
    paths = family_paths("language", root)
    device = pick_device(cfg.train.device)
    seed_everything(params.seed)
    torch.set_grad_enabled(False)
    try:
        conditions = json.loads(paths.conditions.read_text())
    except FileNotFoundError:
        raise StageFailed(f"{paths.conditions}: missing; run `dvc repro relabel@language`") from None
    asks = conditions["asks"]
    held = cfg.relabel.held_out
    t0 = time.perf_counter()
    rows = []
    gifs_done = False
    paths.evaluate.mkdir(parents=True, exist_ok=True)
    keys, jobs = [], []
    for name in cfg.train.models:
        for seed in cfg.train.seeds:
            ckpt = paths.train / name / f"seed{seed}" / "model.pt"
            try:
                model, vocab, _ = load_policy(ckpt, device)
            except FileNotFoundError:
                raise StageFailed(f"{ckpt}: missing; run `dvc repro train@language`") from None
            except ValueError as e:
                raise StageFailed(str(e)) from None
            if cfg.evaluate.gif and not gifs_done:
                _write_gifs(model, vocab, asks, device, paths.evaluate / "gifs")
                gifs_done = True
            keys.append((name, seed, vocab))
            jobs.append((ckpt.absolute(), asks, str(device), cfg.evaluate.num_envs))
    # Each (model, seed) is one job that loads its checkpoint wherever it runs (see justask.executors).
    for (name, seed, vocab), results in zip(keys, run_all(ask_job, jobs, params.scale.workers, params.scale),
                                            strict=True):
        for ask, r in zip(asks, results, strict=True):
            instr = parse(ask["instruction"])
            rows.append({"model": name, "seed": seed, **ask, **r,
                         "unknown_words": len(vocab.unknown_words(ask["text"])),
                         "verb": instr.verb, "colour": instr.obj[0], "type": instr.obj[1]})
    print(f"evaluate (language): {len(keys)} model runs done ({time.perf_counter() - t0:.0f}s)")
    episodes = pd.DataFrame(rows)
    metrics = {"seeds": list(cfg.train.seeds), "asks_per_group": cfg.relabel.asks_per_group,
               "levels": list(cfg.collect.levels), "models": {}}
    for name, g in episodes.groupby("model", sort=False):
        cells = {}
        for group in GROUPS:
            sub = g[g.group == group]
            if sub.empty:
                continue
            matrix = sub.pivot_table(index="seed", columns=["level", "env_seed"], values="success").to_numpy(float)
            mean, lo, hi = iqm_with_ci(matrix, cfg.evaluate.bootstrap_reps, params.seed, statistic="mean")
            cells[group] = {"success": round(mean, 4), "ci": [round(lo, 4), round(hi, 4)],
                            "length": round(float(sub.length.mean()), 2), "asks": int(len(sub)),
                            "unknown_word_rate": round(float((sub.unknown_words > 0).mean()), 4)}
        metrics["models"][name] = cells
    heat = (episodes[episodes.group.isin(["seen", "colour_object"])]
            .groupby(["model", "colour", "type"]).success.agg(["mean", "count"]).reset_index())
    heat = heat.rename(columns={"mean": "success", "count": "episodes"})
    heat["held_out"] = [bool({(c, t)} & {tuple(p) for p in held.colour_object}) for c, t in zip(
        heat.colour, heat.type, strict=True)]
    atomic_write(paths.evaluate / "episodes.csv", lambda p: episodes.to_csv(p, index=False))
    buf = io.StringIO()
    heat.to_csv(buf, index=False, float_format="%.4f")
    write_text(paths.metrics.with_name("language-heatmap.csv"), buf.getvalue())
    success_heatmap(heat, paths.evaluate / "heatmap.png")
    write_json(paths.metrics, metrics)
    _log_mlflow(params, root, metrics, paths)
    print(f"evaluate (language): {len(episodes)} episodes in {time.perf_counter() - t0:.1f}s")
    return metrics


def _write_gifs(model, vocab, asks: list[dict], device, folder: Path) -> None:
    """One GIF per condition group: the group's first ask, with the asked text as the caption."""
    from justask.render import write_gif

    firsts = {}
    for ask in asks:
        firsts.setdefault(ask["group"], ask)
    picked = list(firsts.values())
    for ask, r in zip(picked, rollout_asks(model, vocab, picked, device, frames=True), strict=True):
        outcome = "success" if r["success"] else "fail"
        write_gif(r["frames"], folder / f"{ask['group']}-{outcome}.gif", duration_ms=200)


def _log_mlflow(params: Params, root: Path, metrics: dict, paths) -> None:
    mlflow = setup_mlflow(params.tracking, root)
    with mlflow.start_run(run_name="evaluate-language"):
        mlflow.set_tags({"family": "language", "stage": "evaluate", "profile": params.profile})
        mlflow.log_metrics({f"{m}.{g}.success": c["success"] for m, cells in metrics["models"].items()
                            for g, c in cells.items()})
        mlflow.log_artifact(str(paths.metrics))
        mlflow.log_artifact(str(paths.evaluate / "heatmap.png"))
