"""Per-modality loaders, preprocessing, stems and encoders; importing this package registers them all."""

from . import audio, image, text, video  # noqa: F401
