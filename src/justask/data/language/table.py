"""Hindsight-labelled BabyAI steps: the training data of instruction-conditioned policies.

A table holds every step of a set of episodes (image, direction, action) and a list of *labels*:
(episode, end step, instruction). Label ``l`` says "steps 0..end of episode e are a demonstration
of instruction i". One episode usually carries several labels (everything it achieved, in
hindsight); the trainer expands labels into (step, instruction) samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from justask.data.atomic import load_arrays, save_arrays


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

    ARRAYS = ("images", "directions", "actions", "episode", "timesteps", "starts", "split",
              "label_episode", "label_end", "label_instruction")

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def n_episodes(self) -> int:
        return len(self.split)

    def samples(self, split: int) -> tuple[np.ndarray, np.ndarray]:
        """(step row, instruction) of every labelled step of episodes in ``split``, label by label."""
        keep = self.split[self.label_episode] == split
        first = self.starts[self.label_episode[keep]]
        lengths = self.label_end[keep] + 1
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return np.repeat(first, lengths) + offsets, np.repeat(self.label_instruction[keep], lengths)

    def save(self, path: Path, meta: dict) -> Path:
        """Write arrays and ``meta.json`` (instruction list, vocabulary, counts) atomically."""
        return save_arrays(path, {n: getattr(self, n) for n in self.ARRAYS}, meta)

    @classmethod
    def load(cls, path: Path) -> tuple[InstructionTable, dict]:
        arrays, meta = load_arrays(path, cls.ARRAYS, "dvc repro relabel@language")
        return cls(**arrays), meta


def build_instruction_table(episodes: list[dict], labels: list[list[tuple[int, int]]],
                            split: np.ndarray) -> InstructionTable:
    """Stack Minari episodes (dicts with ``observations`` {image, direction}, ``actions``) and
    their labels (per episode: (end step, instruction index) pairs)."""
    lengths = np.array([len(e["actions"]) for e in episodes], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = [(e, end, i) for e, ls in enumerate(labels) for end, i in ls]
    for e, end, _ in flat:
        if not 0 <= end < lengths[e]:
            raise ValueError(f"episode {e}: label ends at step {end}, outside its {lengths[e]} steps")
    col = lambda k: np.array([x[k] for x in flat], dtype=np.int64)  # noqa: E731
    return InstructionTable(
        images=np.concatenate([e["observations"]["image"][:-1] for e in episodes]).astype(np.uint8),
        directions=np.concatenate([e["observations"]["direction"][:-1] for e in episodes]).astype(np.int64),
        actions=np.concatenate([np.asarray(e["actions"]) for e in episodes]).astype(np.int64),
        episode=np.repeat(np.arange(len(episodes)), lengths).astype(np.int64),
        timesteps=np.concatenate([np.arange(n) for n in lengths]).astype(np.int64),
        starts=starts,
        split=np.asarray(split, dtype=np.int8),
        label_episode=col(0), label_end=col(1), label_instruction=col(2),
    )
