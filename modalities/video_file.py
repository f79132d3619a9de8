"""An opened video file, whichever decoder opened it (:mod:`.video_io` picks one): its frame timestamps and a reader
of the frames at chosen indices."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class FrameReader(Protocol):
    def frames(self, indices: list[int]) -> np.ndarray:
        """uint8 ``[len(indices), H, W, 3]`` RGB, frame ``i`` being the i-th in presentation order."""


@dataclass
class VideoFile:
    """An opened video: ``timestamps`` float64 ``[n, 2]`` (start, end of each frame, seconds) and its reader."""

    path: Path
    timestamps: np.ndarray
    reader: FrameReader

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def n_frames(self) -> int:
        return len(self.timestamps)

    @property
    def duration(self) -> float:
        """Seconds from the first frame's start to the last frame's end."""
        return float(self.timestamps[-1, 1] - self.timestamps[0, 0])

    def frames(self, indices: list[int]) -> np.ndarray:
        """uint8 ``[len(indices), H, W, 3]`` RGB."""
        return self.reader.frames(list(indices))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
