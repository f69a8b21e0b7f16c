"""Asking an instruction policy, in words: the evaluation's condition groups and the rollouts of
asks (a level, an env seed, the instruction minigrid's verifier checks, the text the policy is
told), shared by the evaluate stage, ``justask ask language`` and the bench."""

from __future__ import annotations

import numpy as np
import torch
from minigrid.core.actions import Actions
from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT

from justask.models.common import MIN_ROWS
from justask.rollout import run_episodes

from .env import make_grid_vector_env
from .grammar import parse
from .policy import instruction_features

GROUPS = ("seen", "colour_object", "cross_level", "verb_object", "paraphrase", "mission")
# Which object an episode engaged first, against the one its first clause names (see first_contact).
CONTACTS = ("target", "same_colour", "same_type", "other", "none")
_OBJECTS = {"door", "key", "ball", "box"}
_PICKABLE = {"key", "ball", "box"}


def first_contact(images: np.ndarray, actions: np.ndarray, verb: str) -> tuple[str, str] | None:
    """The first (colour, type) the agent engaged, read off its own views ``images`` (T+1, 7, 7, 3):
    for go to, the first object it faced after a step; for pick up and put next to, the first it
    picked up (a pickup whose front cell empties); for open, the first door it toggled. None if none.

    In minigrid's egocentric view the agent sits at (3, 6) looking up, so (3, 5) is the cell in front.
    """
    front = images[:, 3, 5]
    for t, action in enumerate(actions):
        kind, colour = IDX_TO_OBJECT[int(front[t, 0])], IDX_TO_COLOR.get(int(front[t, 1]), "")
        after = IDX_TO_OBJECT[int(front[t + 1, 0])]
        if verb == "goto" and after in _OBJECTS:
            return IDX_TO_COLOR[int(front[t + 1, 1])], after
        if verb in ("pickup", "putnext") and action == Actions.pickup and kind in _PICKABLE and after == "empty":
            return colour, kind
        if verb == "open" and action == Actions.toggle and kind == "door":
            return colour, kind
    return None


def contact_kind(contact: tuple[str, str] | None, target: tuple[str, str]) -> str:
    """Where ``contact`` stands against ``target`` (colour, type): one of :data:`CONTACTS`."""
    if contact is None:
        return "none"
    if contact == tuple(target):
        return "target"
    return "same_colour" if contact[0] == target[0] else "same_type" if contact[1] == target[1] else "other"


class AskPolicy:
    """An instruction policy as a batch policy for the rollout engine: slot ``i`` holds an episode
    of ``asks`` (all of one level), the env's own instruction replaced by the asked one, so the
    episode ends with success exactly when minigrid's verifier says it was carried out.

    Each view is encoded once, when it arrives, and each instruction once per episode, instead of
    every step of the K-frame window; with at least ``MIN_ROWS`` rows in a matrix product a row's
    result does not depend on the others (:data:`justask.models.common.MIN_ROWS`), so fewer live
    slots are padded with repeats of themselves and an ask's actions are the ones the full forward
    pass gives, whatever else runs beside it (tests/families/language/test_inference.py)."""

    def __init__(self, model, vocab, asks: list[dict], envs, device: torch.device):
        n, k = envs.num_envs, model.context
        self.model, self.asks, self.envs, self.device, self.k = model, asks, envs, device, k
        self.text = {name: torch.as_tensor(v, device=device) for name, v in
                     instruction_features(model.spec.encoder, [a["text"] for a in asks], vocab,
                                          model.spec.reader).items()}
        self.ask = np.zeros(n, np.int64)  # the ask each slot holds
        self.images = np.zeros((n, k, 7, 7, 3), np.uint8)
        self.dirs = np.zeros((n, k), np.int64)
        self.features: list[torch.Tensor | None] = [None] * n  # (K, hidden) view features of the window
        self.instruction: list[tuple[torch.Tensor, ...] | None] = [None] * n  # the model's condition()

    def start(self, slot: int, episode_index: int) -> None:
        ask = self.asks[episode_index]
        u = self.envs.envs[slot].unwrapped
        u.instrs = parse(ask["instruction"]).to_minigrid()
        u.instrs.reset_verifier(u)
        u.mission = ask["text"]  # what the agent was told, not the level's own mission
        self.ask[slot] = episode_index
        self.images[slot], self.dirs[slot] = 0, 0
        self.features[slot] = self.instruction[slot] = None

    def act(self, obs: dict, active: np.ndarray) -> np.ndarray:
        live = np.flatnonzero(active)
        for window, now in ((self.images, obs["image"]), (self.dirs, obs["direction"])):
            window[live, :-1] = window[live, 1:]
            window[live, -1] = now[live]
        rows = np.resize(live, max(len(live), MIN_ROWS))  # live slots, repeated up to MIN_ROWS rows
        actions = np.zeros(len(active), np.int64)
        with torch.inference_mode():
            actions[live] = self._act(rows)[:len(live)]
        return actions

    def _act(self, rows: np.ndarray) -> np.ndarray:
        model, device = self.model, self.device
        new = [j for j, s in enumerate(rows) if self.features[s] is None]
        if new:  # encode each instruction once, when its episode starts (padded to MIN_ROWS rows)
            asks = [self.ask[rows[j]] for j in new]
            padded = asks + asks[:1] * (MIN_ROWS - len(asks))
            encoded = model.condition({k: v[padded] for k, v in self.text.items()})
            for i, j in enumerate(new):  # drops the padding
                self.instruction[rows[j]] = tuple(c[i] for c in encoded)
        cond = tuple(torch.stack(parts) for parts in zip(*(self.instruction[s] for s in rows), strict=True))
        views = np.concatenate([self.images[rows, -1], np.zeros((len(new), 7, 7, 3), np.uint8)])
        f = model.frame_features(torch.as_tensor(views, device=device), tuple(torch.cat([c, c[new]]) for c in cond))
        empty = dict(zip(new, f[len(rows):], strict=True))  # a new window starts as K empty views
        windows = torch.stack([empty[j].expand(self.k, -1) if self.features[s] is None else self.features[s]
                               for j, s in enumerate(rows)])
        windows = torch.cat([windows[:, 1:], f[:len(rows), None]], dim=1)
        for s, w in zip(rows, windows, strict=True):
            self.features[s] = w
        dirs = torch.as_tensor(self.dirs[rows], device=device)
        return model.window_logits(windows, dirs)[:, -1].argmax(-1).cpu().numpy()

    def observe(self, rewards: np.ndarray, ended: np.ndarray, active: np.ndarray) -> None:
        pass


def rollout_asks(model, vocab, asks: list[dict], device: torch.device,
                 num_envs: int = 32, frames: bool = False) -> list[dict]:
    """Run one episode per ask (``level``, ``env_seed``, ``instruction`` the verifier checks,
    ``text`` the policy is told) with ``model``, the asks of each level across ``num_envs`` envs;
    returns ``success``, ``length`` and ``contact`` (:func:`contact_kind` of the first object the
    episode engaged against the one the ask's first clause names) per ask, in order, and with
    ``frames=True`` the rendered ``frames`` of each episode too."""
    results: list[dict] = [{}] * len(asks)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small forward passes: threads only add overhead
    try:
        for level in dict.fromkeys(a["level"] for a in asks):
            index = [i for i, a in enumerate(asks) if a["level"] == level]
            group = [asks[i] for i in index]
            envs = make_grid_vector_env(min(num_envs, len(group)), level, render_mode="rgb_array" if frames else None)
            try:
                episodes = run_episodes(envs, [a["env_seed"] for a in group],
                                        AskPolicy(model, vocab, group, envs, device), frames=int(frames))
            finally:
                envs.close()
            for i, e in zip(index, episodes, strict=True):
                first = parse(asks[i]["instruction"]).parts[0]
                contact = first_contact(e.observations["image"], e.actions, first.verb)
                results[i] = {"success": bool(e.terminations[-1] and e.rewards[-1] > 0), "length": len(e),
                              "contact": contact_kind(contact, first.obj)}
                if frames:
                    results[i]["frames"] = e.frames
    finally:
        torch.set_num_threads(threads)
    return results
