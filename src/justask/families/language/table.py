"""Hindsight-labelled BabyAI steps: the training data of instruction-conditioned policies, and the
window sampler the one training loop draws their batches from.

A table holds every step of a set of episodes (image, direction, action) and a list of *labels*:
(episode, start step, end step, instruction). Label ``l`` says "steps start..end of episode e are a
demonstration of instruction i" (start: 0, or where the agent was heading for it, see
:mod:`.segments`). One episode usually carries several labels (everything it achieved, in
hindsight); the trainer expands labels into (step, instruction) samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from justask.io import load_arrays, save_arrays


@dataclass
class InstructionTable:
    images: np.ndarray  # (N, 7, 7, 3) uint8
    directions: np.ndarray  # (N,) int64
    actions: np.ndarray  # (N,) int64
    episode: np.ndarray  # (N,) int64
    timesteps: np.ndarray  # (N,) int64
    starts: np.ndarray  # (E + 1,) int64
    split: np.ndarray  # (E,) int8: 0 train, 1 validation
    label_episode: np.ndarray  # (L,) int64
    label_end: np.ndarray  # (L,) int64: the step at which the instruction became true
    label_instruction: np.ndarray  # (L,) int64: index into the table's instruction list
    label_start: np.ndarray | None = None  # (L,) int64: the segment's first step (None: 0 for all)

    ARRAYS = ("images", "directions", "actions", "episode", "timesteps", "starts", "split",
              "label_episode", "label_start", "label_end", "label_instruction")

    def __post_init__(self) -> None:
        if self.label_start is None:
            self.label_start = np.zeros_like(self.label_end)

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def n_episodes(self) -> int:
        return len(self.split)

    def samples(self, split: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(step row, instruction, first row of its segment) of every labelled step of episodes in
        ``split``, label by label."""
        keep = self.split[self.label_episode] == split
        first = self.starts[self.label_episode[keep]] + self.label_start[keep]
        lengths = self.label_end[keep] - self.label_start[keep] + 1
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return (np.repeat(first, lengths) + offsets, np.repeat(self.label_instruction[keep], lengths),
                np.repeat(first, lengths))

    def save(self, path: Path, meta: dict) -> Path:
        """Write arrays and ``meta.json`` (instruction list, vocabulary, counts) atomically."""
        return save_arrays(path, {n: getattr(self, n) for n in self.ARRAYS}, meta)

    @classmethod
    def load(cls, path: Path) -> tuple[InstructionTable, dict]:
        arrays, meta = load_arrays(path, cls.ARRAYS, "dvc repro relabel@language")
        return cls(**arrays), meta


def build_instruction_table(episodes: list[dict], labels: list[list[tuple[int, int, int]]],
                            split: np.ndarray) -> InstructionTable:
    """Stack Minari episodes (dicts with ``observations`` {image, direction}, ``actions``) and
    their labels (per episode: (start step, end step, instruction index))."""
    lengths = np.array([len(e["actions"]) for e in episodes], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = [(e, start, end, i) for e, ls in enumerate(labels) for start, end, i in ls]
    for e, start, end, _ in flat:
        if not 0 <= start <= end < lengths[e]:
            raise ValueError(f"episode {e}: label covers steps {start}..{end}, outside its {lengths[e]} steps")
    col = lambda k: np.array([x[k] for x in flat], dtype=np.int64)  # noqa: E731
    return InstructionTable(
        images=np.concatenate([e["observations"]["image"][:-1] for e in episodes]).astype(np.uint8),
        directions=np.concatenate([e["observations"]["direction"][:-1] for e in episodes]).astype(np.int64),
        actions=np.concatenate([np.asarray(e["actions"]) for e in episodes]).astype(np.int64),
        episode=np.repeat(np.arange(len(episodes)), lengths).astype(np.int64),
        timesteps=np.concatenate([np.arange(n) for n in lengths]).astype(np.int64),
        starts=starts,
        split=np.asarray(split, dtype=np.int8),
        label_episode=col(0), label_start=col(1), label_end=col(2), label_instruction=col(3),
    )


class InstructionSteps:
    """Hindsight-labelled BabyAI samples (step, instruction) on the device, sampled as windows.

    A sample is one labelled step; its window holds the K steps up to it from the same episode
    (``mask``), and the loss is taken only on those inside the label's segment (``supervised``:
    an action before the agent headed for the goal is not a demonstration of it, though what it
    saw then is context). The instruction enters as token ids (word encoder) or precomputed
    frozen-encoder outputs.

    With ``mirror``, :meth:`sample` reflects a random half of the windows: the same episode in the
    mirror-image room is just as valid a demonstration of the same instruction (the grammar has no
    left/right words), so it doubles the rooms a policy sees without inventing labels.
    """

    def __init__(self, table, split: int, instructions: dict[str, np.ndarray], device: torch.device,
                 max_rows: int | None = None, mirror: bool = False):
        steps, instr, first = table.samples(split)
        if len(steps) == 0:
            raise ValueError(f"no labelled steps in split {split}; collect more episodes or hold out less")
        if max_rows is not None and len(steps) > max_rows:  # evenly spaced, deterministic subset
            keep = np.linspace(0, len(steps) - 1, max_rows).astype(np.int64)
            steps, instr, first = steps[keep], instr[keep], first[keep]
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=device)  # noqa: E731
        self.steps, self.instr, self.first = t(steps), t(instr), t(first)
        self.rows = torch.arange(len(steps), device=device)
        self.images, self.directions, self.actions = t(table.images), t(table.directions), t(table.actions)
        self.ep_start = t(table.starts[table.episode])
        self.instructions = {k: t(v) for k, v in instructions.items()}  # e.g. tokens (I, L) or sentence (I, 384)
        self.device, self.mirror = device, mirror

    def __len__(self) -> int:
        return len(self.rows)

    def windows(self, samples: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        ends = self.steps[samples]
        idx = ends[:, None] - torch.arange(k - 1, -1, -1, device=self.device)
        mask = idx >= self.ep_start[ends][:, None]
        idx = torch.where(mask, idx, ends[:, None])
        batch = {
            "images": self.images[idx] * mask[..., None, None, None],
            "directions": self.directions[idx] * mask,
            "actions": self.actions[idx] * mask,
            "mask": mask,
            "supervised": mask & (idx >= self.first[samples][:, None]),
        }
        return batch | {k_: v[self.instr[samples]] for k_, v in self.instructions.items()}

    def sample(self, gen: torch.Generator, batch: int, k: int) -> dict[str, torch.Tensor]:
        pick = torch.randint(len(self.rows), (batch,), generator=gen, device="cpu").to(self.device)
        out = self.windows(pick, k)
        if self.mirror:
            out = mirror_windows(out, torch.rand(batch, generator=gen).to(self.device) < 0.5)
        return out


# minigrid's actions: 0 turn left, 1 turn right; the others (forward, pickup, drop, toggle, done)
# are their own mirror images.
TURN_LEFT, TURN_RIGHT = 0, 1


def mirror_windows(batch: dict[str, torch.Tensor], flip: torch.Tensor) -> dict[str, torch.Tensor]:
    """Reflect the rows ``flip`` of a window batch through a north-south mirror of the room.

    In the agent's egocentric 7x7 view (axis 0 runs left to right) a reflection of the world is a
    left-right flip of the view; turning left becomes turning right; the absolute direction
    (0 east, 1 south, 2 west, 3 north) swaps east and west. Padded steps stay zero.
    """
    f = flip[:, None]
    mask = batch["mask"]
    actions = batch["actions"]
    swapped = torch.where(actions == TURN_LEFT, TURN_RIGHT, torch.where(actions == TURN_RIGHT, TURN_LEFT, actions))
    return batch | {
        "images": torch.where(flip[:, None, None, None, None], batch["images"].flip(2), batch["images"]),
        "directions": torch.where(f, (2 - batch["directions"]) % 4, batch["directions"]) * mask,
        "actions": torch.where(f, swapped, actions) * mask,
    }
