"""A whole model's config: the shared embedding dim, the anchor modality and one config per modality (the dataclass
its registered :class:`~omniembed.registry.Modality` names), with a strict JSON round trip.

It sits above the registry (reading a model config means asking each modality for its config class), while the
field dataclasses and the codec it uses sit below it in :mod:`omniembed.config`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import DEFAULT_PROMPT, ModalityConfig, _coerce, from_dict, to_dict
from .errors import ConfigError


@dataclass
class ModelConfig:
    """A whole model: one encoder per modality, all projecting to ``embed_dim``, aligned to ``anchor``.

    ``prompt`` names the modality that zero-shot class prompts and text queries are embedded with (``omniembed
    search --text``, ``Text(...)`` inputs, the eval runner's classifier, the server's text box). It need not be one
    of ``modalities``: a model without it simply has no text queries.
    """

    embed_dim: int = 64
    anchor: str = "image"
    modalities: dict[str, ModalityConfig] = field(default_factory=dict)
    name: str = "custom"
    prompt: str = DEFAULT_PROMPT

    def to_dict(self, untagged: bool = False) -> dict[str, Any]:
        """The config as JSON data; ``untagged``: tagged fields in their older spelling (see :func:`to_dict`)."""
        data = {
            "name": self.name,
            "embed_dim": self.embed_dim,
            "anchor": self.anchor,
            "modalities": {m: to_dict(c, untagged) for m, c in self.modalities.items()},
        }
        # written only when it differs from the default, so the config.json (and fingerprint) of every model
        # saved before the key existed stays byte-identical and old indexes still match their model
        if self.prompt != DEFAULT_PROMPT:
            data["prompt"] = self.prompt
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        from .registry import get_modality  # here, not at the top: the registry imports torch

        if not isinstance(data, dict):
            raise ConfigError(f"model config must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"name", "embed_dim", "anchor", "modalities", "prompt"}
        if unknown:
            raise ConfigError(f"unknown model config key(s): {', '.join(sorted(unknown))}")
        mods = data.get("modalities", {})
        if not isinstance(mods, dict) or not mods:
            raise ConfigError("model config needs a non-empty 'modalities' object")
        modalities = {m: from_dict(get_modality(m).config_cls, c, path=f"modalities.{m}") for m, c in mods.items()}
        config = cls(
            embed_dim=_coerce(int, data.get("embed_dim", 64), "embed_dim"),
            anchor=_coerce(str, data.get("anchor", "image"), "anchor"),
            modalities=modalities,
            name=_coerce(str, data.get("name", "custom"), "name"),
            prompt=_coerce(str, data.get("prompt", DEFAULT_PROMPT), "prompt"),
        )
        config.validate()
        return config

    def validate(self) -> None:
        if self.embed_dim <= 0:
            raise ConfigError(f"embed_dim must be positive, got {self.embed_dim}")
        if self.anchor not in self.modalities:
            raise ConfigError(f"anchor '{self.anchor}' is not one of the model's modalities {sorted(self.modalities)}")
        if not self.prompt:
            raise ConfigError("prompt must name a modality (default 'text'), got an empty string")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str, source: str = "<config>") -> "ModelConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: not valid JSON ({exc})") from exc
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> "ModelConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a model config (a binary file, not JSON); a model is a checkpoint "
                              "directory, a config .json or a registered model name") from None
        return cls.from_json(text, source=str(path))
