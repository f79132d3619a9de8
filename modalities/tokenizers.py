"""Text tokenizers: CLIP's byte-level BPE, and a local Hugging Face ``tokenizer.json``.

Both are callables ``texts -> batch``. :class:`ClipBpeTokenizer` returns ids [N, context_length] (start token,
ids, end token, zero padding; a text too long is cut so that the end token still stands last).
:class:`HFTokenizer` returns ``input_ids`` and ``attention_mask`` [N, L], padded to the longest text of the batch.
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.resources
import json
import os
from pathlib import Path
from typing import Any, Sequence

import ftfy
import regex
import torch
from tokenizers import Tokenizer

from omniembed.errors import CheckpointError, ConfigError, EmptyInputError, InputError, MissingInputError

SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"
N_MERGES = 49152 - 256 - 2
"""CLIP reads this many merges from its vocabulary file: a 49152-token BPE vocabulary minus the 256 bytes and the
two special tokens; the end-of-word copies of the bytes then bring it to 49408."""

# CLIP's pre-tokeniser: English contractions, runs of letters, single digits, runs of anything else but whitespace.
# CLIP also matched its special tokens' text here and emitted their ids; user text is kept literal instead (as
# open_clip does for that text), so a caption can never plant an end token that the EOS pooling would read.
PRE_TOKENIZER = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+", regex.IGNORECASE)
WHITESPACE_RUN = regex.compile(r"\s+")


def default_clip_vocab() -> Path:
    """CLIP's BPE merges file (``bpe_simple_vocab_16e6.txt.gz``) as shipped inside the open_clip package."""
    return Path(str(importlib.resources.files("open_clip").joinpath("bpe_simple_vocab_16e6.txt.gz")))


def byte_alphabet() -> dict[int, str]:
    """Each of the 256 bytes → one printable character, in CLIP's vocabulary order.

    Printable Latin-1 bytes stand for themselves and come first; the 68 others (controls, space, NBSP, soft
    hyphen) follow in byte order as chr(256), chr(257), ... so that BPE never sees whitespace or control codes.
    """
    kept = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    moved = sorted(set(range(256)) - set(kept))
    return {**{b: chr(b) for b in kept}, **{b: chr(256 + k) for k, b in enumerate(moved)}}


def clip_normalize(text: str) -> str:
    """CLIP's text cleaning: ftfy fix, HTML unescaped twice, whitespace runs → one space, stripped, lower case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return WHITESPACE_RUN.sub(" ", text).strip().lower()


def checked_texts(texts: str | Sequence[str]) -> list[str]:
    """``texts`` as a list of non-blank strings (one string is a batch of one); raises EmptyInputError/InputError."""
    batch = [texts] if isinstance(texts, str) else list(texts)
    if not batch:
        raise EmptyInputError("texts", "no texts to tokenize")
    for text in batch:
        if not isinstance(text, str):
            raise InputError(f"<{type(text).__name__}>", "a text must be a str")
        if not text.strip():
            raise EmptyInputError(repr(text), "empty text")
    return batch


class ClipBpeTokenizer:
    """CLIP's tokenizer: :func:`clip_normalize`, CLIP's pre-tokeniser, byte-level BPE with the file's merges.

    ``__call__(texts)`` → LongTensor [N, context_length]: 49406, the BPE ids, 49407, then zeros. Ids equal
    open_clip's and ImageBind's for every text, except that ImageBind (like the original CLIP) turns the literal
    text ``<|startoftext|>`` / ``<|endoftext|>`` into the special ids; here it stays text (see PRE_TOKENIZER).
    """

    def __init__(self, vocab_path: str | os.PathLike | None = None, context_length: int = 77):
        if context_length < 2:
            raise ConfigError(f"context_length must leave room for the start and end tokens, got {context_length}")
        path = Path(vocab_path) if vocab_path is not None else default_clip_vocab()
        merges = _read_merges(path)
        self.byte_to_char = byte_alphabet()
        alphabet = list(self.byte_to_char.values())
        tokens = [*alphabet, *(c + END_OF_WORD for c in alphabet), *("".join(m) for m in merges), SOT_TOKEN, EOT_TOKEN]
        self.token_to_id = {token: i for i, token in enumerate(tokens)}
        self.id_to_token = tokens
        self.merge_rank = {pair: rank for rank, pair in enumerate(merges)}
        self.char_to_byte = {c: b for b, c in self.byte_to_char.items()}
        self.context_length = context_length
        self.sot_token_id = self.token_to_id[SOT_TOKEN]
        self.eot_token_id = self.token_to_id[EOT_TOKEN]
        self.pad_token_id = 0
        # Words repeat a lot across captions; merging is the slow part, so each word's ids are memoised.
        self._word_ids = functools.lru_cache(maxsize=65536)(self._bpe_word_ids)

    @property
    def vocab_size(self) -> int:
        """49408 for CLIP's file: 256 bytes, their word-end forms, 48894 merges, 2 special tokens."""
        return len(self.id_to_token)

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text``, without the start and end tokens ([] when nothing is left after cleaning)."""
        ids: list[int] = []
        for word in PRE_TOKENIZER.findall(clip_normalize(text)):
            ids.extend(self._word_ids("".join(self.byte_to_char[b] for b in word.encode("utf-8"))))
        return ids

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Text of ``ids`` (one row of :meth:`__call__` or :meth:`encode`'s list): the start token is dropped and
        reading stops at the end token (what follows is padding); word ends become spaces."""
        ids = [int(i) for i in ids]
        if self.eot_token_id in ids:
            ids = ids[: ids.index(self.eot_token_id)]
        chars = "".join(self.id_to_token[i] for i in ids if i != self.sot_token_id)
        text = bytes(self.char_to_byte[c] for c in chars).decode("utf-8", errors="replace")
        return text.replace(END_OF_WORD, " ").strip()

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Token ids [N, context_length] of N texts (see the class docstring)."""
        batch = checked_texts(texts)
        out = torch.full((len(batch), self.context_length), self.pad_token_id, dtype=torch.long)
        for row, text in enumerate(batch):
            ids = [self.sot_token_id, *self.encode(text)][: self.context_length - 1] + [self.eot_token_id]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def _bpe_word_ids(self, word: str) -> tuple[int, ...]:
        """Ids of one pre-tokenised word (bytes already mapped to characters): its characters, the last one
        marked as a word end, are merged pair by pair, the lowest-ranked pair first, until no merge applies."""
        symbols = [*word[:-1], word[-1] + END_OF_WORD]
        while len(symbols) > 1:
            pairs = list(zip(symbols, symbols[1:]))
            best = min(pairs, key=lambda pair: self.merge_rank.get(pair, N_MERGES))
            if best not in self.merge_rank:
                break
            merged: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return tuple(self.token_to_id[s] for s in symbols)


def _read_merges(path: Path) -> list[tuple[str, str]]:
    """The first :data:`N_MERGES` merge pairs of a CLIP vocabulary file (gzip text; line 1 is a version header)."""
    if not path.is_file():
        raise MissingInputError(str(path), "CLIP BPE vocabulary file not found")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")[1 : N_MERGES + 1]
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not a gzip-compressed CLIP BPE vocabulary ({exc})") from exc
    merges = [tuple(line.split()) for line in lines]
    if len(merges) < N_MERGES or any(len(m) != 2 for m in merges):
        raise CheckpointError(f"{path}: expected {N_MERGES} merge lines of two symbols after the header")
    return merges  # type: ignore[return-value]


class HFTokenizer:
    """A local Hugging Face ``tokenizer.json`` run by the ``tokenizers`` library, as transformers would run it.

    The pad token and the padding/truncation sides come from ``tokenizer_config.json`` /
    ``special_tokens_map.json`` beside the file when present (the padding stored in tokenizer.json itself, often a
    fixed length, is replaced). ``__call__(texts)`` → {"input_ids", "attention_mask"}: LongTensors [N, L], L the
    longest text of the batch in tokens (special tokens included), at most ``context_length``.
    """

    def __init__(self, tokenizer_json: str | os.PathLike, context_length: int = 256):
        path = Path(tokenizer_json)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise MissingInputError(str(path), "tokenizer.json not found")
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust library raises a bare Exception on malformed files
            raise CheckpointError(f"{path}: not a Hugging Face tokenizers file ({exc})") from exc
        settings = _tokenizer_settings(path)
        pad_token = _token_text(settings.get("pad_token")) or (self.tokenizer.padding or {}).get("pad_token")
        pad_id = self.tokenizer.token_to_id(pad_token) if pad_token else None
        if pad_id is None:
            raise CheckpointError(f"{path}: no pad token in the vocabulary (looked for {pad_token!r})")
        self.pad_token_id = pad_id
        self.context_length = context_length
        self.tokenizer.enable_padding(direction=settings.get("padding_side", "right"), pad_id=pad_id,
                                      pad_token=pad_token)
        self.tokenizer.enable_truncation(max_length=context_length,
                                         direction=settings.get("truncation_side", "right"))

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (what ``len(AutoTokenizer)`` gives)."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def __call__(self, texts: str | Sequence[str]) -> dict[str, torch.Tensor]:
        """{"input_ids": [N, L], "attention_mask": [N, L]} (1 on tokens, 0 on padding)."""
        encodings = self.tokenizer.encode_batch(checked_texts(texts))
        return {"input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
                "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)}


def _tokenizer_settings(path: Path) -> dict[str, Any]:
    """special_tokens_map.json overlaid with tokenizer_config.json, from the directory of ``path`` ({} if none)."""
    settings: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        file = path.with_name(name)
        if file.is_file():
            try:
                settings.update(json.loads(file.read_text(encoding="utf-8")))
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"{file}: not valid JSON ({exc})") from exc
    return settings


def _token_text(token: str | dict[str, Any] | None) -> str | None:
    """A special token as stored in tokenizer_config.json: plain text or an AddedToken dict with ``content``."""
    return token.get("content") if isinstance(token, dict) else token
