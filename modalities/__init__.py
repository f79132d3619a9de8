"""Per-modality loaders, preprocessing, stems and encoders; importing this package registers them all."""

from . import audio, depth, image, imu, pointcloud, text, thermal, video  # noqa: F401
