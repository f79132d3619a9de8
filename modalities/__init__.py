"""Per-modality loaders, preprocessing, stems and encoders; importing this package registers them all."""

from . import image  # noqa: F401  (text lands with the tokenizers)
