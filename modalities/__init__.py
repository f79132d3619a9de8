"""Per-modality loaders, preprocessing, stems and encoders; importing this package registers them all."""

from . import image, text  # noqa: F401
