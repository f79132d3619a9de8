"""Video frame decoding: decord against PyAV (``video.decoder``), side by side on the same files in one run.

    .venv/bin/python tools/bench_video.py [--repeats 7] [--clips 5] [--frames 2]

Each case is what the video modality does per file: open it (frame timestamps, no decoding), choose ``clips`` ×
``frames`` frames by timestamp, decode them to RGB. Files are H.264 made on the fly: a short small clip (the
OmniDigits size), and 12 s at 320 × 240 with a keyframe every 12 frames (frequent seeks) and every 250 (long
groups of pictures, so each wanted frame costs a long decode). The decoders alternate for ``--repeats`` rounds, so
a noisy neighbour on shared cores hits both alike; the median of each and the ratio PyAV / decord are printed,
after checking that both decoded identical frames.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omniembed.modalities.video_io import clip_frame_indices, open_video  # noqa: E402

CASES = {  # name → (seconds, fps, width, height, keyframe interval)
    "OmniDigits-size clip (3 s, 10 fps, 64×48)": (3.0, 10, 64, 48, 250),
    "12 s, 25 fps, 320×240, keyframe every 12": (12.0, 25, 320, 240, 12),
    "12 s, 25 fps, 320×240, keyframe every 250": (12.0, 25, 320, 240, 250),
}


def make_video(path: Path, seconds: float, fps: int, width: int, height: int, gop: int) -> Path:
    """A scrolling noise texture (every frame different, so nothing is a trivial copy) with B-frames."""
    texture = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"g": str(gop), "bf": "2"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.roll(texture, 3 * i, axis=1), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def decode(path: Path, decoder: str, clips: int, frames: int) -> np.ndarray:
    video = open_video(path, decoder)
    return video.frames([i for c in clip_frame_indices(video.timestamps, clips, 2.0, frames) for i in c])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--frames", type=int, default=2)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, PyAV {av.__version__}, {args.clips} clips × "
          f"{args.frames} frames, median of {args.repeats}\n")
    print("| file | decord | PyAV | PyAV / decord |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in CASES.items():
            path = make_video(Path(tmp) / "clip.mp4", *spec)
            assert np.array_equal(decode(path, "decord", args.clips, args.frames),
                                  decode(path, "pyav", args.clips, args.frames)), f"{name}: frames differ"
            times: dict[str, list[float]] = {"decord": [], "pyav": []}
            for _ in range(args.repeats):
                for decoder in times:
                    start = time.perf_counter()
                    decode(path, decoder, args.clips, args.frames)
                    times[decoder].append(time.perf_counter() - start)
            decord_ms, pyav_ms = (1000 * statistics.median(times[d]) for d in ("decord", "pyav"))
            print(f"| {name} | {decord_ms:.1f} ms | {pyav_ms:.1f} ms | {pyav_ms / decord_ms:.2f} |")


if __name__ == "__main__":
    main()
