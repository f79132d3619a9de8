"""OmniEmbedModel: one encoder per modality, all projecting into one shared, L2-normalised space."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .encoder import Encoder
from .errors import CheckpointError, ConfigError, MissingModalityError, OutputExistsError
from .io import load_tensors, replace_owned_entries, save_tensors, write_json
from .model_card import CARD_FILE, CONFIG_FILE, TRAINING_FILE, WEIGHTS_FILE, is_hand_written, write_model_card
from .model_config import ModelConfig
from .provenance import SOURCE_FILE, announce, read_source
from .publish import push_model
from .registry import Modality, get_modality, list_modalities, modality_for_suffix, path_suffix

FORMAT = "omniembed/1"
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, TRAINING_FILE, SOURCE_FILE, CARD_FILE)
"""Top-level names (glob patterns) of a model folder's own files, besides each modality's ``asset_names``: see
:func:`owns_entry`. A file :meth:`OmniEmbedModel.save` writes must be listed here (save refuses to stage others)."""


def owns_entry(name: str) -> bool:
    """Whether a top-level entry of a model folder is the model's own (replaced or removed when the model is
    overwritten) rather than the user's (always kept): :data:`MODEL_FILES` plus every registered modality's
    ``asset_names`` — all modalities, so an overwrite also drops assets of modalities the new model lacks."""
    patterns = MODEL_FILES + tuple(p for m in list_modalities() for p in get_modality(m).asset_names)
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def is_model_dir(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds an OmniEmbed model: a ``config.json`` object whose format is omniembed's."""
    try:
        data = json.loads((Path(directory) / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and str(data.get("format", "")).startswith("omniembed/")


def trained_pairs(directory: str | os.PathLike) -> list[tuple[str, str]]:
    """The modality pairs a model exported by ``omniembed train`` was trained on (its ``training.json``); [] when
    it records none."""
    path = Path(directory) / TRAINING_FILE
    if not path.is_file():
        return []
    return [tuple(p) for p in json.loads(path.read_text()).get("pairs", [])]


def check_save_target(directory: Path, overwrite: bool) -> None:
    """Refuse to save into a file, into a non-empty folder that holds no model, or over a model without
    ``overwrite`` — saving must never delete what a user keeps there."""
    if directory.exists() and not directory.is_dir():
        raise OutputExistsError(str(directory), "is a file, not a folder to save a model in")
    if not directory.is_dir() or not any(directory.iterdir()):
        return
    if not is_model_dir(directory):
        raise OutputExistsError(str(directory), f"is not empty and holds no OmniEmbed model (no {CONFIG_FILE} of "
                                                "format omniembed/…); refusing to write into it — choose a new "
                                                "or empty folder")
    if not overwrite:
        raise OutputExistsError(str(directory), "already holds an OmniEmbed model; pass overwrite=True "
                                                "(--overwrite on the command line) to replace its files — "
                                                "other files in the folder are kept")


class OmniEmbedModel(nn.Module):
    """A ``ModuleDict`` of :class:`~omniembed.encoder.Encoder` (one per modality) plus each modality's processor.

    ``embed`` is the user-facing entry point; ``encode(modality, batch)`` runs one encoder on an already
    preprocessed batch; ``encode_image`` / ``encode_text`` follow open_clip's names.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.processors: dict[str, Modality] = {
            name: get_modality(name)(cfg) for name, cfg in config.modalities.items()
        }
        self.encoders = nn.ModuleDict({
            name: proc.build_encoder(config.embed_dim) for name, proc in self.processors.items()
        })
        for name, encoder in self.encoders.items():
            if not isinstance(encoder, Encoder):  # the model, embed and the trainer rely on the contract's methods
                raise ConfigError(f"modality '{name}': build_encoder returned a {type(encoder).__name__}, not an "
                                  f"omniembed.encoder.Encoder (subclass it, or build a ModalityEncoder)")
        for proc in self.processors.values():
            proc.link(self.processors, self.encoders)
        self.source: dict[str, Any] | None = None
        """Where the weights came from and their licence (``source.json``, :mod:`omniembed.provenance`)."""
        self.eval()

    # ---- introspection ---------------------------------------------------------------------------------------
    @property
    def modalities(self) -> list[str]:
        return list(self.encoders.keys())

    @property
    def anchor(self) -> str:
        return self.config.anchor

    @property
    def prompt(self) -> str:
        """The modality zero-shot prompts and text queries are embedded with (``ModelConfig.prompt``)."""
        return self.config.prompt

    def prompt_modality(self) -> str:
        """:attr:`prompt`, checked to be one of the model's encoders (else :class:`MissingModalityError`)."""
        self.processor(self.prompt)
        return self.prompt

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def processor(self, modality: str) -> Modality:
        if modality not in self.processors:
            raise MissingModalityError(modality, self.modalities)
        return self.processors[modality]

    def encoder(self, modality: str) -> Encoder:
        if modality not in self.encoders:
            raise MissingModalityError(modality, self.modalities)
        return self.encoders[modality]

    def modality_of(self, path: str | os.PathLike) -> str | None:
        """The model's modality that reads this file (by its longest registered compound suffix), or None."""
        return modality_for_suffix(path_suffix(path), among=self.modalities)

    def logit_scale(self, modality: str) -> torch.Tensor:
        """The modality's logit scale (a scalar tensor), used by contrastive losses against the anchor."""
        return self.encoder(modality).logit_scale

    def fingerprint(self) -> str:
        """sha256 over the config and every weight: equal fingerprints mean equal embeddings. The config is hashed
        in its untagged spelling (:func:`omniembed.config.to_dict`), so a model keeps the fingerprint it had before
        its tower settings became ``tower: {kind: ...}`` and indexes built with it still open."""
        h = hashlib.sha256(json.dumps(self.config.to_dict(untagged=True), indent=2).encode())
        for key, tensor in sorted(self.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:32]

    # ---- forward paths ---------------------------------------------------------------------------------------
    def encode(self, modality: str, batch: Any) -> torch.Tensor:
        """Unit embeddings [B, E] of a preprocessed, collated batch."""
        return self.encoder(modality)(batch)

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """open_clip-compatible: images [B, 3, H, W] (preprocessed) → [B, E]."""
        return self._encode_compat("image", images, normalize)

    def encode_text(self, tokens: Any, normalize: bool = True) -> torch.Tensor:
        """open_clip-compatible: token ids [B, L] (or a tokenizer dict) of the :attr:`prompt` modality → [B, E]."""
        return self._encode_compat(self.prompt, tokens, normalize)

    def _encode_compat(self, modality: str, batch: Any, normalize: bool) -> torch.Tensor:
        enc = self.encoder(modality)
        return enc(batch) if normalize else enc.features(batch).mean(dim=1)

    def forward(self, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """{modality: collated batch} → {modality: unit embeddings [B, E]} (the training entry point)."""
        return {m: self.encode(m, batch) for m, batch in inputs.items()}

    def embed(self, inputs: Any, modality: str | None = None, batch_size: int = 32, device: str | None = None,
              normalize: bool = True, to: str = "numpy", progress: bool | None = None, on_error: str = "raise",
              precision: str = "fp32", parts: bool = False) -> Any:
        """Embed paths, raw arrays/tensors or strings: float32 rows [n, E] in input order.

        See :func:`omniembed.embedding.embed` for the full contract.
        """
        from .embedding import embed

        return embed(self, inputs, modality=modality, batch_size=batch_size, device=device, normalize=normalize,
                     to=to, progress=progress, on_error=on_error, precision=precision, parts=parts)

    @staticmethod
    def similarity(a: Any, b: Any) -> Any:
        """Cosine similarity matrix [n, m] of two sets of unit rows (numpy in → numpy out, torch → torch)."""
        if isinstance(a, torch.Tensor):
            b = torch.as_tensor(b, dtype=a.dtype, device=a.device)
            return a @ b.T
        return np.asarray(a, dtype=np.float32) @ np.asarray(b, dtype=np.float32).T

    # ---- checkpoints -----------------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (+ tokenizer/tower files, ``source.json`` when the weights
        have a recorded source) and the model card ``README.md`` to ``directory``.

        ``directory`` may be new or empty. A folder that already holds a model needs ``overwrite=True``; then
        only the model's own files (:func:`owns_entry`) are replaced, all at once, and the user's other files
        stay — a ``README.md`` a person wrote included (the card is then not written). Any other non-empty folder
        is refused (:class:`OutputExistsError`).
        """
        directory = Path(directory)
        check_save_target(directory, overwrite)
        card = not is_hand_written(directory / CARD_FILE)
        owns = owns_entry if card else (lambda name: name != CARD_FILE and owns_entry(name))
        with replace_owned_entries(directory, owns) as tmp:
            self._write_files(tmp, card)
        return directory

    def _write_files(self, tmp: Path, card: bool) -> None:
        """Write every file of the checkpoint into the (staging) folder ``tmp``; names must be in MODEL_FILES."""
        stored = {name: proc.export_assets(tmp) for name, proc in self.processors.items()}
        config = ModelConfig(embed_dim=self.config.embed_dim, anchor=self.config.anchor, modalities=stored,
                             name=self.config.name, prompt=self.config.prompt)
        write_json(tmp / CONFIG_FILE, {"format": FORMAT, **config.to_dict()})
        save_tensors(tmp / WEIGHTS_FILE, self.state_dict(), metadata={"format": FORMAT})
        if self.source is not None:
            write_json(tmp / SOURCE_FILE, self.source)
        if card:
            write_model_card(tmp)

    def push_to_hub(self, repo_id: str, private: bool | None = None, revision: str | None = None,
                    commit_message: str | None = None, token: str | None = None) -> str:
        """Save (with the model card) and upload to the Hugging Face Hub repository ``repo_id`` (created if
        needed); ``omniembed.load("hf:" + repo_id)`` reads it back. Returns the commit URL."""
        return push_model(self, repo_id, private=private, revision=revision, commit_message=commit_message,
                          token=token)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | None = None) -> "OmniEmbedModel":
        """Rebuild from a directory written by :meth:`save`; weights must match the config exactly."""
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise CheckpointError(f"{directory}: not an OmniEmbed checkpoint ({CONFIG_FILE} missing)")
        try:
            data = json.loads(config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{config_path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise CheckpointError(f"{config_path}: expected a JSON object, got a JSON {type(data).__name__}")
        data.pop("format", None)
        try:
            config = ModelConfig.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{config_path}: {exc}") from None
        config.modalities = {m: get_modality(m).resolve_assets(c, directory) for m, c in config.modalities.items()}
        model = cls(config)
        model.load_weights(directory / WEIGHTS_FILE)
        model.source = read_source(directory)
        announce(model.source, "loading")
        if device is not None:
            model.to(device)
        return model

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load a safetensors state dict strictly; any missing, unexpected or mis-shaped tensor is an error."""
        state = load_tensors(path)
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        mis_shaped = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                      if k in state and state[k].shape != v.shape]
        if missing or unexpected or mis_shaped:
            parts = [f"{label}: {', '.join(items[:8])}{' …' if len(items) > 8 else ''}"
                     for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mis_shaped))
                     if items]
            raise CheckpointError(f"{path}: weights do not match the config ({'; '.join(parts)})")
        _refuse_non_finite(path, state, {name for name, _ in self.named_parameters(remove_duplicate=False)})
        self.load_state_dict(state, strict=True)


def _refuse_non_finite(path: str | os.PathLike, state: dict[str, torch.Tensor], parameters: set[str]) -> None:
    """A parameter holding NaN or Inf is refused rather than warned about: every input it touches would embed to a
    non-finite vector, each then refused one by one (buffers may hold -inf on purpose, e.g. attention masks)."""
    bad = [f"{k} ({int((~torch.isfinite(v)).sum())} of {v.numel()})" for k, v in sorted(state.items())
           if k in parameters and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: weights hold NaN or Inf values, so every embedding they touch would be "
                              f"non-finite: {', '.join(bad[:8])}{' …' if len(bad) > 8 else ''}")
