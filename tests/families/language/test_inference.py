"""The language evaluation's inference shortcut (each BabyAI view and each instruction encoded once)
gives the same episodes, bit for bit, as the plain batched pass over every K-frame window: it rests
on the CPU matrix-product property ``justask.models.common.MIN_ROWS`` (see
tests/engine/test_inference.py for the return-conditioned models' shortcut)."""

import numpy as np
import pytest
import torch


@pytest.mark.parametrize(("encoder", "reader"), [("word", "sentence"), ("word", "tokens"), ("minilm", "tokens"),
                                                   ("word", "factored")])
def test_language_cached_views_match_the_full_pass(monkeypatch, encoder, reader):
    """The language rollout with its per-view cache and with the plain full pass gives the same
    episodes (actions decide success and length; 24 asks on 8 envs turn slots over many times),
    for a policy reading one instruction vector and for one whose cells attend over the tokens."""
    from justask.families.language import asking as lang_ask
    from justask.families.language.env import make_grid_env, reset_quietly
    from justask.families.language.grammar import Vocabulary
    from justask.families.language.policy import GridSpec, build_policy

    level = "BabyAI-GoToLocal-v0"
    env = make_grid_env(level)
    asks = []
    for seed in range(24):
        reset_quietly(env, 1000 + seed)
        mission = env.unwrapped.mission.replace("go to a ", "go to the ")  # the grammar's wording
        asks.append({"level": level, "env_seed": 1000 + seed, "instruction": mission, "text": mission})
    env.close()
    vocab = Vocabulary.build([a["text"] for a in asks])
    torch.manual_seed(0)
    model = build_policy({"hidden": 64, "context": 4, "dropout": 0.0},
                         GridSpec(act_dim=7, encoder=encoder, vocab_size=len(vocab), reader=reader)).eval()
    with torch.no_grad():  # turn and move only (an untrained policy may prefer "done"): some asks end early
        model.head.bias[3:] = -1e3
    cpu = torch.device("cpu")
    cached = lang_ask.rollout_asks(model, vocab, asks, cpu, num_envs=8)

    passes = []

    def full_pass(self, rows: np.ndarray) -> np.ndarray:
        """The plain batched pass: every slot's whole K-frame window and its instruction, each step."""
        passes.append(len(rows))
        asked = torch.as_tensor(self.ask[rows], device=self.device)
        batch = {"images": torch.as_tensor(self.images[rows], device=self.device),
                 "directions": torch.as_tensor(self.dirs[rows], device=self.device),
                 **{k: v[asked] for k, v in self.text.items()}}
        return self.model.act(batch).cpu().numpy()

    monkeypatch.setattr(lang_ask.AskPolicy, "_act", full_pass)
    full = lang_ask.rollout_asks(model, vocab, asks, cpu, num_envs=8)
    assert passes  # the full pass did run in place of the cached one
    assert cached == full
    assert len({r["length"] for r in full}) > 1  # episodes of different lengths: slots turned over
