"""Text modality: CLIP BPE (or a local HF tokenizer.json) → causal transformer → EOS token → projection.

A local Hugging Face sentence-encoder directory can serve as a frozen text tower instead (``hf_tower``).
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import torch
from torch import nn

from omniembed.config import HeadConfig, ModalityConfig, TransformerConfig
from omniembed.encoder import Batch, ModalityEncoder
from omniembed.errors import ConfigError, EmptyInputError, InputError, UnreadableInputError
from omniembed.nn.heads import Postprocess, TokenHead
from omniembed.nn.tokens import PoolingHead, Tokens, TransformerTrunk
from omniembed.nn.transformer import Transformer
from omniembed.registry import Modality, register_modality

from .hf_text import SentenceEncoderTower
from .open_clip_tower import OpenClipConfig, build_open_clip_encoder, without_weight_file
from .tokenizers import ClipBpeTokenizer, HFTokenizer

TOWER_DIR = "text_tower"
TOKENIZERS: dict[str, Callable[[str | None, int], Callable[[list[str]], Batch]]] = {
    "clip_bpe": lambda path, n: ClipBpeTokenizer(path, context_length=n),
    "hf": lambda path, n: HFTokenizer(_required(path, "text.tokenizer_path"), context_length=n),
}


@dataclass
class HFTowerConfig:
    """A frozen local sentence-transformers directory used as the whole text encoder."""

    TAG: ClassVar[str] = "hf_tower"

    path: str = ""
    project: bool = False
    """Add a trainable Linear from the tower's dim to the shared dim (needed when they differ)."""
    weights_in_checkpoint: bool = False
    """True once saved by OmniEmbed: the tower's weights then live in model.safetensors, not in ``path``."""


@dataclass
class TextConfig(ModalityConfig):
    tokenizer: Literal["clip_bpe", "hf"] = "clip_bpe"
    tokenizer_path: str | None = None
    """The BPE vocabulary (.txt.gz) for clip_bpe — default: the one open_clip ships — or a tokenizer.json for hf."""
    context_length: int = 77
    vocab_size: int = 49408
    tower: HFTowerConfig | OpenClipConfig | None = None
    """Another whole encoder instead of the token stem and transformer: ``{kind: hf_tower, path: ...}`` (a frozen
    local sentence encoder, its own tokenizer) or ``{kind: open_clip, arch: ...}`` (a frozen open_clip text tower,
    ``modalities/open_clip_tower.py``; clip_bpe ids). Configs written with ``hf_tower:`` / ``open_clip:`` keys
    read as these."""
    trunk: TransformerConfig = field(default_factory=lambda: TransformerConfig(width=512, depth=12, heads=8, causal=True))
    head: HeadConfig = field(default_factory=lambda: HeadConfig(pool="eos", norm_eps=1e-5))


class TokenStem(nn.Module):
    """Token + learned position embeddings. ids [B, L] → Tokens([B, L, D], ids)."""

    def __init__(self, vocab_size: int, context_length: int, width: int):
        super().__init__()
        self.token_embed = nn.Embedding(vocab_size, width)
        self.pos_embed = nn.Parameter(torch.zeros(1, context_length, width))
        nn.init.normal_(self.token_embed.weight, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.01)

    def forward(self, ids: torch.Tensor) -> Tokens:
        return Tokens(self.token_embed(ids) + self.pos_embed[:, : ids.shape[1]], ids=ids)


class HFInputStem(nn.Module):
    """Passes a tokenizer's dict {input_ids, attention_mask} [B, L] on to the HF tower."""

    def forward(self, batch: dict[str, torch.Tensor]) -> Tokens:
        return Tokens(batch["input_ids"], mask=batch["attention_mask"])


class HFTowerTrunk(nn.Module):
    """The frozen sentence encoder: Tokens(ids, mask) → Tokens(pooled [B, 1, F])."""

    def __init__(self, tower: SentenceEncoderTower):
        super().__init__()
        self.tower = tower

    def forward(self, x: Tokens) -> Tokens:
        return Tokens(self.tower(x.tokens, x.mask).unsqueeze(1))

    def train(self, mode: bool = True) -> "HFTowerTrunk":
        super().train(mode)
        self.tower.eval()  # frozen: dropout stays off
        return self


class FirstToken(nn.Module):
    """Tokens → the single pooled vector [B, F] (the tower's own dim is the shared dim)."""

    def forward(self, x: Tokens) -> torch.Tensor:
        return x.tokens[:, 0]


@register_modality
class TextModality(Modality):
    name = "text"
    config_cls = TextConfig
    suffixes = (".txt",)
    asset_names = ("tokenizer.*", TOWER_DIR)
    config: TextConfig

    def __init__(self, config: TextConfig):
        super().__init__(config)
        if isinstance(config.tower, HFTowerConfig):
            self.tower = SentenceEncoderTower.from_directory(
                config.tower.path, load_weights=not config.tower.weights_in_checkpoint)
            self.tokenizer = self.tower.tokenizer()
        else:
            self.tower = None
            self.tokenizer = TOKENIZERS[config.tokenizer](config.tokenizer_path, config.context_length)

    def load(self, path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableInputError(str(path), f"not UTF-8 text ({exc})") from exc

    def accepts(self, item: Any) -> bool:
        return isinstance(item, str)

    def sort_key(self, item: Any) -> int:
        return len(item) if isinstance(item, str) else 0

    def preprocess(self, raw: Any) -> str:
        """Validate one text; tokenisation happens per batch in :meth:`collate`."""
        if not isinstance(raw, str):
            raise InputError(f"<{type(raw).__name__}>", "text input must be a string")
        if not raw.strip():
            raise EmptyInputError(repr(raw), "empty text")
        return raw

    def collate(self, samples: list[str]) -> Batch:
        """Token ids [B, L] (trailing all-padding columns dropped; the causal mask makes that exact) or a dict."""
        batch = self.tokenizer(samples)
        if isinstance(batch, torch.Tensor):
            used = int((batch != 0).any(dim=0).nonzero().max()) + 1
            return batch[:, :used]
        return batch

    def build_encoder(self, embed_dim: int) -> ModalityEncoder:
        cfg = self.config
        if isinstance(cfg.tower, OpenClipConfig):
            return build_open_clip_encoder("text", cfg, embed_dim)
        if self.tower is not None:
            if cfg.tower.project:
                head: nn.Module = PoolingHead(TokenHead(HeadConfig(pool="cls", norm=False), self.tower.dim, embed_dim))
            elif self.tower.dim == embed_dim:
                head = FirstToken()
            else:
                raise ConfigError(f"text tower {cfg.tower.path} gives {self.tower.dim}-d vectors but the model's "
                                  f"embed_dim is {embed_dim}: set text.tower.project = true")
            return ModalityEncoder(HFInputStem(), HFTowerTrunk(self.tower), head, Postprocess(cfg.logit_scale))
        if cfg.trunk.width <= 0 or not cfg.trunk.causal:
            raise ConfigError("text.trunk must be causal with a positive width")
        stem = TokenStem(cfg.vocab_size, cfg.context_length, cfg.trunk.width)
        return ModalityEncoder(stem, TransformerTrunk(Transformer(cfg.trunk)),
                               PoolingHead(TokenHead(cfg.head, cfg.trunk.width, embed_dim)),
                               Postprocess(cfg.logit_scale))

    @classmethod
    def tiny_config(cls) -> TextConfig:
        return TextConfig(trunk=TransformerConfig(width=64, depth=2, heads=4, causal=True))

    def export_assets(self, directory: Path) -> TextConfig:
        cfg = without_weight_file(self.config)
        if isinstance(cfg.tower, HFTowerConfig):
            self.tower.export_files(directory / TOWER_DIR)
            tower = dataclasses.replace(cfg.tower, path=TOWER_DIR, weights_in_checkpoint=True)
            return dataclasses.replace(cfg, tower=tower)
        if cfg.tokenizer_path is not None:
            target = directory / f"tokenizer{''.join(Path(cfg.tokenizer_path).suffixes)}"
            shutil.copyfile(cfg.tokenizer_path, target)
            return dataclasses.replace(cfg, tokenizer_path=target.name)
        return cfg

    @classmethod
    def resolve_assets(cls, config: TextConfig, directory: Path) -> TextConfig:
        if isinstance(config.tower, HFTowerConfig) and not Path(config.tower.path).is_absolute():
            tower = dataclasses.replace(config.tower, path=str(directory / config.tower.path))
            config = dataclasses.replace(config, tower=tower)
        if config.tokenizer_path is not None and not Path(config.tokenizer_path).is_absolute():
            config = dataclasses.replace(config, tokenizer_path=str(directory / config.tokenizer_path))
        return config


def _required(value: str | None, key: str) -> str:
    if not value:
        raise ConfigError(f"{key} must be set")
    return value
