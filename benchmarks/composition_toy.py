"""Development ablation: can the instruction policy compose a colour and an object it never saw
together, when it reads the instruction as one sentence vector and when it reads it word by word?

A controlled task with no BabyAI dynamics, so that only the instruction path is tested: one 7x7
view holds the target (colour, object) and two distractors, one sharing its colour and one its
object, at random cells; the right action is "left" (0) or "right" (1), the target's side. The
policy must bind colour to object. It trains on 12 of the 18 ball/box/key pairs and is asked the
6 held-out pairs of the default profile's ``held_out.colour_object`` (each colour once, each object
twice), on views it never saw. The policy is :mod:`justask.families.language.policy` at the default
profile's width (hidden 64 here, one frame), fitted with the one training loop.

    .venv/bin/python benchmarks/composition_toy.py [encoder,... reader,... steps] \
        > benchmarks/results/composition_toy.jsonl
"""

from __future__ import annotations

import json
import sys
import time
from functools import partial

import numpy as np
import torch
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

from justask.config import load_params
from justask.families.language.grammar import COLOURS, OBJECTS, Vocabulary
from justask.families.language.policy import GridSpec, build_policy, instruction_features
from justask.training.loop import Loop, Optimisation, fit

HELD = {tuple(p) for p in load_params("params.yaml").family("language").relabel.held_out.colour_object}


def views(n: int, pairs: list[tuple[str, str]], rng: np.random.Generator):
    """``n`` views (N, 1, 7, 7, 3), their actions (N, 1) and instruction texts."""
    images = np.zeros((n, 1, 7, 7, 3), np.uint8)
    images[..., 0] = OBJECT_TO_IDX["empty"]
    actions = np.zeros((n, 1), np.int64)
    texts = []
    for i in range(n):
        colour, kind = pairs[rng.integers(len(pairs))]
        same_colour = (colour, [k for k in OBJECTS if k != kind][rng.integers(2)])
        same_kind = ([c for c in COLOURS if c != colour][rng.integers(5)], kind)
        for (c, k), cell in zip([(colour, kind), same_colour, same_kind], rng.permutation(49)[:3], strict=True):
            images[i, 0, cell // 7, cell % 7] = (OBJECT_TO_IDX[k], COLOR_TO_IDX[c], 0)
            if (c, k) == (colour, kind):
                actions[i, 0] = int(cell % 7 >= 4)
        texts.append(f"go to the {colour} {kind}")
    return images, actions, texts


class Views:
    """Single-frame windows over fixed views, for :func:`justask.training.loop.fit`."""

    def __init__(self, images, actions, features):
        self.images, self.actions = torch.as_tensor(images), torch.as_tensor(actions)
        self.features = {k: torch.as_tensor(v) for k, v in features.items()}
        self.rows = torch.arange(len(actions))

    def __len__(self) -> int:
        return len(self.rows)

    def windows(self, rows: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        return {"images": self.images[rows], "directions": torch.zeros(len(rows), 1, dtype=torch.long),
                "actions": self.actions[rows], "mask": torch.ones(len(rows), 1, dtype=torch.bool),
                **{name: v[rows] for name, v in self.features.items()}}

    def sample(self, gen: torch.Generator, batch: int, k: int) -> dict[str, torch.Tensor]:
        return self.windows(torch.randint(len(self.rows), (batch,), generator=gen), k)


def main(encoders: list[str], readers: list[str], steps: int) -> None:
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    trained = [(c, k) for c in COLOURS for k in OBJECTS if (c, k) not in HELD]
    sets = {"train": views(6000, trained, rng), "seen": views(1000, trained, rng),
            "held_out": views(1000, sorted(HELD), rng)}
    vocab = Vocabulary.build(sets["train"][2] + sets["held_out"][2])
    for encoder in encoders:
        for reader in readers:
            data = {name: Views(x[0], x[1], instruction_features(encoder, x[2], vocab, reader))
                    for name, x in sets.items()}
            spec = GridSpec(act_dim=7, encoder=encoder, vocab_size=len(vocab), reader=reader)
            hp = {"hidden": 64, "context": 1, "dropout": 0.0}
            t0 = time.perf_counter()
            torch.manual_seed(0)
            result = fit(partial(build_policy, hp, spec), data["train"], data["seen"],
                         Optimisation(1e-3, 1e-4, 128, steps), Loop(250, 100, 0, torch.device("cpu")))
            with torch.no_grad():
                accuracy = {name: round(float((result.model.act(d.windows(d.rows, 1)) == d.actions[:, 0])
                                              .float().mean()), 3) for name, d in data.items()}
            print(json.dumps({"encoder": encoder, "reader": reader, "steps": steps, "accuracy": accuracy,
                              "held_out_pairs": sorted(HELD), "fit_s": round(time.perf_counter() - t0, 1)}),
                  flush=True)


if __name__ == "__main__":
    args = sys.argv[1:] or ["word,minilm", "sentence,tokens", "1500"]
    main(args[0].split(","), args[1].split(","), int(args[2]))
