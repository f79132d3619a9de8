"""Text tokenizers: CLIP's byte-level BPE and a local Hugging Face ``tokenizer.json``.

Both are callables ``texts -> batch``: the CLIP tokenizer returns ids [N, context_length] (start token, ids,
end token, zero padding; a text that is too long is cut so the end token still stands last), the HF one a dict
of ``input_ids`` and ``attention_mask`` [N, L] padded to the longest text of the batch.
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.resources
import json
import os
from pathlib import Path
from typing import Sequence

import ftfy
import regex
import torch

from omniembed.errors import MissingInputError

# CLIP's pre-tokeniser: special tokens, English contractions, letter runs, single digits, other symbol runs.
_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
_N_MERGES = 49152 - 256 - 2


def default_clip_vocab() -> Path:
    """The CLIP BPE merges file (``bpe_simple_vocab_16e6.txt.gz``) that the open_clip package ships."""
    return Path(str(importlib.resources.files("open_clip") / "bpe_simple_vocab_16e6.txt.gz"))


@functools.lru_cache(maxsize=1)
def _byte_to_unicode() -> dict[int, str]:
    """Reversible map of the 256 bytes to printable unicode characters (byte-level BPE alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _clean(text: str) -> str:
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


class ClipBpeTokenizer:
    """CLIP's tokenizer: ftfy + html unescape, whitespace collapsed, lower case, byte-level BPE.

    ``__call__(texts)`` → LongTensor [N, context_length].
    """

    def __init__(self, vocab_path: str | os.PathLike | None = None, context_length: int = 77):
        path = Path(vocab_path) if vocab_path is not None else default_clip_vocab()
        if not path.is_file():
            raise MissingInputError(str(path), "BPE vocabulary file not found")
        with gzip.open(path, "rt", encoding="utf-8") as f:
            merges = [tuple(line.split()) for line in f.read().split("\n")[1:_N_MERGES + 1]]
        alphabet = list(_byte_to_unicode().values())
        vocab = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.decoder = {i: token for token, i in self.encoder.items()}
        self.ranks = {merge: i for i, merge in enumerate(merges)}
        self.byte_encoder = _byte_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.context_length = context_length
        self.sot_token_id = self.encoder["<|startoftext|>"]
        self.eot_token_id = self.encoder["<|endoftext|>"]
        self.pad_token_id = 0
        self._bpe = functools.lru_cache(maxsize=100_000)(self._bpe_uncached)

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def _bpe_uncached(self, token: str) -> tuple[str, ...]:
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        return word

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text`` without start/end tokens."""
        ids: list[int] = []
        for piece in _PATTERN.findall(_clean(text)):
            mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self._bpe(mapped))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        special = {self.sot_token_id, self.eot_token_id, self.pad_token_id}
        text = "".join(self.decoder[int(i)] for i in ids if int(i) not in special)
        return bytearray(self.byte_decoder[c] for c in text).decode("utf-8", errors="replace").replace("</w>", " ").strip()

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.sot_token_id, *self.encode(text), self.eot_token_id]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot_token_id
            out[row, : len(ids)] = torch.tensor(ids)
        return out


class HFTokenizer:
    """A local Hugging Face ``tokenizer.json`` (the ``tokenizers`` library), padded per batch, truncated.

    ``__call__(texts)`` → {"input_ids": [N, L], "attention_mask": [N, L]} with L ≤ ``context_length``.
    """

    def __init__(self, tokenizer_json: str | os.PathLike, context_length: int = 256):
        from tokenizers import Tokenizer

        path = Path(tokenizer_json)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise MissingInputError(str(path), "tokenizer.json not found")
        self.tokenizer = Tokenizer.from_file(str(path))
        self.pad_token_id = _pad_id(path, self.tokenizer)
        self.context_length = context_length
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=context_length)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        encodings = self.tokenizer.encode_batch(list(texts))
        length = max(len(e.ids) for e in encodings)
        ids = torch.full((len(texts), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(texts), length), dtype=torch.long)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = torch.tensor(enc.ids)
            mask[row, : len(enc.ids)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def _pad_id(path: Path, tokenizer) -> int:
    config = path.with_name("tokenizer_config.json")
    pad = "[PAD]"
    if config.is_file():
        pad = json.loads(config.read_text()).get("pad_token", pad) or pad
        pad = pad["content"] if isinstance(pad, dict) else pad
    token_id = tokenizer.token_to_id(pad)
    return 0 if token_id is None else token_id
