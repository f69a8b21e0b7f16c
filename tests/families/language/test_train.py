"""Language training: windows over labelled steps, the instruction policy, checkpoints, and a
policy that must read its instruction to act right (both encoders)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from justask.errors import CheckpointError
from justask.families.language.grammar import Vocabulary
from justask.families.language.policy import (
    GridSpec,
    build_policy,
    candidate,
    instruction_features,
    load_policy,
    save_policy,
)
from justask.families.language.table import InstructionSteps, InstructionTable, mirror_windows
from justask.training.loop import Loop, fit

CPU = torch.device("cpu")
HP = {"hidden": 16, "context": 3, "dropout": 0.0, "lr": 3e-3, "weight_decay": 0.0, "batch_size": 32}


def table(lengths=(3, 4), labels=((0, 2, 0), (1, 1, 1), (1, 3, 0)), split=(0, 0), seed=0) -> InstructionTable:
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    lab = np.array(labels, dtype=np.int64).reshape(-1, 3)
    return InstructionTable(
        images=rng.integers(0, 3, (n, 7, 7, 3)).astype(np.uint8),
        directions=rng.integers(0, 4, n).astype(np.int64),
        actions=rng.integers(0, 7, n).astype(np.int64),
        episode=np.repeat(np.arange(len(lengths)), lengths).astype(np.int64),
        timesteps=np.concatenate([np.arange(k) for k in lengths]).astype(np.int64),
        starts=starts, split=np.array(split, dtype=np.int8),
        label_episode=lab[:, 0], label_end=lab[:, 1], label_instruction=lab[:, 2])


def test_samples_expand_each_label_over_its_prefix():
    steps, instr, _ = table().samples(0)
    # label (ep 0, end 2, i0) -> rows 0..2; (ep 1, end 1, i1) -> rows 3..4; (ep 1, end 3, i0) -> rows 3..6
    assert steps.tolist() == [0, 1, 2, 3, 4, 3, 4, 5, 6]
    assert instr.tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert len(table(split=(0, 1)).samples(1)[0]) == 6


def test_windows_stop_at_the_episode_start():
    t = table()
    features = {"tokens": np.array([[2, 3], [4, 0]])}
    data = InstructionSteps(t, 0, features, CPU)
    batch = data.windows(torch.tensor([3, 5]), 3)  # samples 3 and 5: episode 1's first step, two labels
    assert batch["mask"].tolist() == [[False, False, True], [False, False, True]]
    assert batch["images"][:, :2].eq(0).all() and batch["actions"][:, :2].eq(0).all()
    assert torch.equal(batch["images"][0, 2], torch.from_numpy(t.images[3]))
    assert batch["tokens"].tolist() == [[4, 0], [2, 3]]  # instruction 1, then 0
    deep = data.windows(torch.tensor([8]), 3)  # row 6: rows 4, 5, 6 of episode 1
    assert deep["mask"].all() and deep["actions"][0].tolist() == t.actions[4:7].tolist()
    with pytest.raises(ValueError, match="no labelled steps in split 1"):
        InstructionSteps(t, 1, features, CPU)


@pytest.mark.parametrize("encoder", ["word", "minilm"])
def test_policy_shapes_and_instruction_matters(encoder):
    torch.manual_seed(0)
    spec = GridSpec(act_dim=7, encoder=encoder, vocab_size=10)
    model = build_policy(HP, spec).eval()
    batch = {"images": torch.randint(0, 3, (2, 3, 7, 7, 3)), "directions": torch.randint(0, 4, (2, 3)),
             "actions": torch.zeros(2, 3, dtype=torch.long), "mask": torch.ones(2, 3, dtype=torch.bool)}
    a = batch | ({"tokens": torch.tensor([[2, 3], [2, 3]])} if encoder == "word" else
                 {"sentence": torch.randn(1, 384).repeat(2, 1)})
    b = batch | ({"tokens": torch.tensor([[4, 5], [4, 5]])} if encoder == "word" else
                 {"sentence": torch.randn(1, 384).repeat(2, 1)})
    assert model(a).shape == (2, 3, 7) and model.act(a).shape == (2,)
    assert not torch.allclose(model(a), model(b))


TEXTS = ["go to the red ball", "go to the blue ball"]  # one word apart


def _view_batch(n: int = 2) -> dict:
    from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

    images = torch.zeros(n, 1, 7, 7, 3, dtype=torch.uint8)
    images[..., 0] = OBJECT_TO_IDX["empty"]
    images[:, 0, 1, 3] = torch.tensor([OBJECT_TO_IDX["ball"], COLOR_TO_IDX["red"], 0])
    images[:, 0, 5, 3] = torch.tensor([OBJECT_TO_IDX["ball"], COLOR_TO_IDX["blue"], 0])
    return {"images": images, "directions": torch.zeros(n, 1, dtype=torch.long),
            "mask": torch.ones(n, 1, dtype=torch.bool)}


@pytest.mark.parametrize(("encoder", "reader"), [("word", "tokens"), ("minilm", "tokens"), ("word", "factored")])
def test_token_reader_one_word_changes_the_action_distribution(encoder, reader):
    """Reading the instruction word by word: the same view, "red" for "blue", another distribution."""
    torch.manual_seed(0)
    vocab = Vocabulary.build(TEXTS)
    spec = GridSpec(act_dim=7, encoder=encoder, vocab_size=len(vocab), reader=reader)
    model = build_policy(HP, spec).eval()
    features = {k: torch.as_tensor(v) for k, v in instruction_features(encoder, TEXTS, vocab, reader).items()}
    assert set(features) == {("word", "tokens"): {"tokens"}, ("minilm", "tokens"): {"token_states", "token_mask"},
                             ("word", "factored"): {"tokens", "roles"}}[encoder, reader]
    with torch.no_grad():
        probs = model(_view_batch() | features)[:, -1].softmax(-1)
    # factored: at initialisation the colour word moves only the attention weights between slot
    # values, a small change, yet far above float rounding (~1e-7)
    assert (probs[0] - probs[1]).abs().sum() > (1e-5 if reader == "factored" else 1e-3)
    # the cells attend over the words (a sentence reader has no such path)
    assert model.attend is not None and build_policy(HP, GridSpec(7, encoder, len(vocab))).attend is None


def test_cell_attention_reads_colour_and_object_separately():
    """A cell's attention score for a token is the sum of what its object, colour and state
    embeddings each score: over every (colour, object) cell the interaction contrast
    s(c, t) - s(c, t') - s(c', t) + s(c', t') is zero, so a never-trained pair (red ball) scores as
    "red" plus "ball". Checked for every token of a random word-token policy, across permutations
    of the colours and objects."""
    from justask.families.language.policy import CELL_VALUES

    torch.manual_seed(0)
    vocab = Vocabulary.build(TEXTS)
    model = build_policy({**HP, "hidden": 24}, GridSpec(7, "word", len(vocab), reader="tokens")).eval()
    objects, colours = torch.arange(5, 8), torch.arange(CELL_VALUES[1])  # ball, box, key x the 6 colours
    cells = torch.stack([torch.stack([o, c, torch.tensor(0)]) for o in objects for c in colours])
    with torch.no_grad():
        embedded = model.cell(cells + model.offsets).sum(-2)  # (18, 32)
        tokens, mask = model.instruction({"tokens": torch.as_tensor(vocab.encode(TEXTS, 6))})
        keys = model.attend.key(tokens[0])  # (L, dim)
        scores = (model.attend.query(embedded) @ keys.T).view(len(objects), len(colours), -1)
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        o, o2 = torch.randperm(len(objects), generator=gen)[:2]
        c, c2 = torch.randperm(len(colours), generator=gen)[:2]
        contrast = scores[o, c] - scores[o, c2] - scores[o2, c] + scores[o2, c2]
        assert contrast.abs().max() < 1e-5
    assert scores.std() > 1e-2  # the scores do vary with the cell: the check is not vacuous


FACTORED_TEXTS = ["go to the red ball", "go to the blue ball", "put the red ball next to the grey key",
                  "put the blue ball next to the green key"]


def _factored(hidden: int = 24):
    torch.manual_seed(0)
    vocab = Vocabulary.build(FACTORED_TEXTS)
    model = build_policy({**HP, "hidden": hidden}, GridSpec(7, "word", len(vocab), reader="factored")).eval()
    features = {k: torch.as_tensor(v) for k, v in instruction_features("word", FACTORED_TEXTS, vocab,
                                                                       "factored").items()}
    return model, vocab, features


def test_factored_reader_names_no_pair_past_the_match():
    """``reader: factored``: what reaches FiLM and the attention's values (the slots) is the same for
    "red ball" as for "blue ball", in a go-to and in a put-next's two clauses; a word's key is its
    own embedding, the same "ball" after "red" as after "blue"; only the colour word's key differs.
    So the instruction's colour word can act only through which cells it matches."""
    model, vocab, features = _factored()
    with torch.no_grad():
        film, keys, mask, slots = model.condition(features)
    for a, b in ((0, 1), (2, 3)):  # one or two colour words changed
        assert torch.equal(film[a], film[b]) and torch.equal(slots[a], slots[b])
        same = features["tokens"][a] == features["tokens"][b]
        assert torch.equal(keys[a][same], keys[b][same]) and not torch.equal(keys[a][~same], keys[b][~same])
    ball = vocab.encode(["ball"], 1)[0, 0]
    at = features["tokens"] == ball
    assert torch.equal(keys[0][at[0]], keys[2][at[2]][:1])  # "ball" in a go-to and in a put-next
    assert not torch.equal(film[0], film[2])  # the slots do tell the sentence's shape (go to / put next)


def test_factored_convolutions_see_colour_only_through_the_match():
    """With the colour queries' weights at zero (no colour matches any word better than another), a
    view's colours change nothing; with them, recolouring the view changes the features: colour
    enters the policy only through matching the words, never beside the object in the convolutions."""
    model, _, features = _factored()
    views = _view_batch()["images"][:, 0]  # a red ball and a blue ball
    recoloured = views.clone()
    recoloured[..., 1] = (recoloured[..., 1] + 2) % 6
    with torch.no_grad():
        cond = tuple(c[:2] for c in model.condition(features))
        assert not torch.allclose(model.frame_features(views, cond), model.frame_features(recoloured, cond))
        model.attend_colour.query.weight.zero_()
        assert torch.equal(model.frame_features(views, cond), model.frame_features(recoloured, cond))


@pytest.mark.parametrize("encoder", ["word", "minilm"])
def test_policy_learns_to_follow_the_instruction(encoder):
    """Identical observations, two instructions, two different actions: only a policy that reads
    the instruction gets both right (a plain BC clone would sit at 50%)."""
    n = 40
    images = np.random.default_rng(0).integers(0, 3, (1, 7, 7, 3)).repeat(2 * n, 0).astype(np.uint8)
    t = InstructionTable(
        images=images, directions=np.zeros(2 * n, np.int64),
        actions=np.array([0] * n + [2] * n, np.int64), episode=np.repeat([0, 1], n).astype(np.int64),
        timesteps=np.tile(np.arange(n), 2).astype(np.int64), starts=np.array([0, n, 2 * n], np.int64),
        split=np.zeros(2, np.int8), label_episode=np.array([0, 1]), label_end=np.array([n - 1, n - 1]),
        label_instruction=np.array([0, 1]))
    texts = ["go to the red ball", "pick up the blue key"]
    vocab = Vocabulary.build(texts)
    features = instruction_features(encoder, texts, vocab)
    data = InstructionSteps(t, 0, features, CPU)
    spec = GridSpec(act_dim=7, encoder=encoder, vocab_size=len(vocab))
    build, optimisation = candidate(spec, HP, 150)
    result = fit(build, data, data, optimisation, Loop(eval_every=50, patience=5, seed=0, device=CPU))
    batch = data.windows(torch.tensor([n - 1, 2 * n - 1]), 3)
    assert result.model.act(batch).tolist() == [0, 2]
    assert result.best_val_loss < 0.3  # a policy blind to the instruction cannot go below ln 2 = 0.69


@pytest.mark.parametrize("reader", ["sentence", "factored"])
def test_checkpoint_roundtrip_and_foreign_files(tmp_path, reader):
    spec = GridSpec(act_dim=7, encoder="word", vocab_size=6, reader=reader)
    model = build_policy(HP, spec)
    vocab = Vocabulary.build(["go to the red ball"])
    path = tmp_path / "model.pt"
    save_policy(path, HP, spec, model, vocab, {"seed": 0})
    loaded, vocab2, payload = load_policy(path)
    assert vocab2 == vocab and payload["meta"] == {"seed": 0}
    assert type(loaded) is type(model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    torch.save({"kind": "rvs", "state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other\.pt: not a justask language checkpoint: it holds a 'rvs' "
                                              r"model, and only instruction models are read here"):
        load_policy(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_policy(tmp_path / "junk.pt")


def _mirrored_copy(env):
    """A deep copy of a minigrid env in the mirror-image room (north-south mirror axis)."""
    import copy

    from minigrid.core.grid import Grid

    twin = copy.deepcopy(env.unwrapped)
    old, width = twin.grid, twin.grid.width
    twin.grid = Grid(width, old.height)
    for x in range(width):
        for y in range(old.height):
            twin.grid.set(width - 1 - x, y, old.get(x, y))
    x, y = twin.agent_pos
    twin.agent_pos = (width - 1 - x, y)
    twin.agent_dir = (2 - twin.agent_dir) % 4
    return twin


def test_mirrored_windows_are_what_minigrid_shows_in_the_mirror_room():
    """Ground truth from minigrid itself: play the same episode in a room and its mirror image
    (turns swapped); the mirror room's views, directions and actions are the mirrored windows."""
    from justask.families.language.env import make_grid_env, reset_quietly

    env = make_grid_env("BabyAI-GoToLocal-v0")
    obs = reset_quietly(env, 3)
    twin = _mirrored_copy(env)
    actions = [0, 2, 2, 1, 2, 1, 1, 2, 0, 2]
    images, dirs, twin_images, twin_dirs = [], [], [], []
    for a in actions:
        images.append(obs["image"]), dirs.append(obs["direction"])
        t_obs = twin.gen_obs()
        twin_images.append(t_obs["image"]), twin_dirs.append(t_obs["direction"])
        obs = env.step(a)[0]
        twin.step({0: 1, 1: 0}.get(a, a))
    env.close()
    batch = {"images": torch.tensor(np.stack(images))[None], "directions": torch.tensor(dirs)[None],
             "actions": torch.tensor(actions)[None], "mask": torch.ones(1, len(actions), dtype=torch.bool)}
    mirrored = mirror_windows(batch, torch.tensor([True]))
    assert not torch.equal(mirrored["images"], batch["images"])  # the room is not symmetric
    assert torch.equal(mirrored["images"][0], torch.tensor(np.stack(twin_images)))
    assert mirrored["directions"][0].tolist() == twin_dirs
    assert mirrored["actions"][0].tolist() == [{0: 1, 1: 0}.get(a, a) for a in actions]
    same = mirror_windows(batch, torch.tensor([False]))
    assert all(torch.equal(same[k], batch[k]) for k in batch)


def test_mirroring_keeps_padding_zero():
    batch = {"images": torch.ones(1, 3, 7, 7, 3, dtype=torch.uint8), "directions": torch.tensor([[0, 0, 1]]),
             "actions": torch.tensor([[0, 0, 0]]), "mask": torch.tensor([[False, False, True]])}
    out = mirror_windows(batch, torch.tensor([True]))
    assert out["directions"].tolist() == [[0, 0, 1]] and out["actions"].tolist() == [[0, 0, 1]]
