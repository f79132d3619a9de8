"""Audio files written with PyAV (ffmpeg's encoders), for the formats soundfile cannot write (AAC, WMA …)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_av_audio(path: Path, samples: np.ndarray, rate: int, codec: str = "aac",
                   container_format: str | None = None, bit_rate: int | None = None) -> Path:
    """[C, N] float32 samples (C = 1 or 2) → ``path`` encoded with ``codec`` in ``container_format`` (default:
    from the suffix); ``bit_rate`` where the encoder needs one (wmav2 will not open without it)."""
    import av

    layout = "stereo" if samples.shape[0] == 2 else "mono"
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout  # aac and wmav2 both take planar float (fltp) frames
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        mux_audio(container, stream, samples, rate)
    return path


def mux_audio(container, stream, samples: np.ndarray, rate: int) -> None:
    """Encode [C, N] float32 samples (C = 1 or 2) into the open PyAV audio ``stream`` of ``container`` in planar
    float frames of 1024 samples, then flush the encoder."""
    import av

    layout = "stereo" if samples.shape[0] == 2 else "mono"
    for start in range(0, samples.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]), format="fltp",
                                           layout=layout)
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
