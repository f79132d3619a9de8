"""One small valid file for every registered file suffix, made on the fly: the seeds the loader fuzz test mutates.

``SEEDS`` maps a suffix to a writer ``(path) -> None``; :func:`write_seed` writes one. A suffix a modality
registers without a writer here is caught by the fuzz test (every suffix must be fuzzed).
"""

from __future__ import annotations

import fractions
from pathlib import Path
from typing import Callable

import numpy as np

from av_media import write_av_audio

RNG_SEED = 0
SIDE = (24, 20)  # width, height of image-like seeds
RATE = 16000


def _rgb() -> np.ndarray:
    return np.random.default_rng(RNG_SEED).integers(0, 255, (SIDE[1], SIDE[0], 3), dtype=np.uint8)


def _pil(mode: str | None = None, fmt: str | None = None, array: Callable[[], np.ndarray] = _rgb):
    def write(path: Path) -> None:
        from PIL import Image

        image = Image.fromarray(array())
        (image.convert(mode) if mode else image).save(path, format=fmt)
    return write


def _depth_values() -> np.ndarray:
    return np.random.default_rng(RNG_SEED).integers(200, 5000, (SIDE[1], SIDE[0]), dtype=np.uint16)


def _grey() -> np.ndarray:
    return _rgb()[..., 0]


def _npy(array: Callable[[], np.ndarray]):
    def write(path: Path) -> None:
        np.save(path, array())
    return write


def _points() -> np.ndarray:
    return np.random.default_rng(RNG_SEED).normal(size=(64, 3))


def _open3d_cloud(path: Path) -> None:
    import open3d as o3d

    assert o3d.io.write_point_cloud(str(path), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(_points())))


def _open3d_mesh(path: Path) -> None:
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh.create_sphere(radius=1.0, resolution=4)
    mesh.compute_triangle_normals()
    assert o3d.io.write_triangle_mesh(str(path), mesh)


def _npz(path: Path) -> None:
    np.savez(path, points=_points())


def _tone(seconds: float = 0.5, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _soundfile(fmt: str, subtype: str | None = None, rate: int = RATE):
    def write(path: Path) -> None:
        import soundfile as sf

        sf.write(str(path), _tone(rate=rate), rate, format=fmt, subtype=subtype)
    return write


def _av_audio(container_format: str, codec: str, rate: int = 22050):
    def write(path: Path) -> None:
        write_av_audio(path, _tone(rate=rate)[None, :], rate, codec, container_format, bit_rate=64000)
    return write


def _av_video(container_format: str, codec: str, fps: int = 10):
    def write(path: Path) -> None:
        import av

        with av.open(str(path), "w", format=container_format) as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
            for i in range(6):
                frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 30 * i, np.uint8), format="rgb24")
                frame.pts, frame.time_base = i, fractions.Fraction(1, fps)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return write


def _text(path: Path) -> None:
    path.write_text("a dog barking in the rain\n", encoding="utf-8")


def _imu_csv(path: Path) -> None:
    rows = np.random.default_rng(RNG_SEED).normal(size=(40, 6))
    path.write_text("ax,ay,az,gx,gy,gz\n" + "".join(",".join(f"{v:.5f}" for v in r) + "\n" for r in rows))


SEEDS: dict[str, Callable[[Path], None]] = {
    # images (torchvision or PIL)
    ".jpg": _pil(), ".jpeg": _pil(), ".png": _pil(), ".gif": _pil(), ".webp": _pil(), ".bmp": _pil(),
    ".tif": _pil(), ".tiff": _pil(), ".ppm": _pil(), ".pgm": _pil("L"), ".pbm": _pil("1"), ".tga": _pil(),
    ".ico": _pil(),
    # depth and thermal maps
    ".depth.png": _pil(array=_depth_values), ".depth.tif": _pil(array=_depth_values),
    ".depth.tiff": _pil(array=_depth_values), ".depth.npy": _npy(_depth_values),
    ".thermal.png": _pil(array=_grey), ".thermal.jpg": _pil(array=_grey), ".thermal.jpeg": _pil(array=_grey),
    ".thermal.tif": _pil(array=_grey), ".thermal.tiff": _pil(array=_grey), ".thermal.npy": _npy(_grey),
    # IMU series
    ".imu.npy": _npy(lambda: np.random.default_rng(RNG_SEED).normal(size=(6, 40)).astype(np.float32)),
    ".imu.csv": _imu_csv,
    # point clouds and meshes
    ".ply": _open3d_cloud, ".pcd": _open3d_cloud, ".xyz": _open3d_cloud, ".pts": _open3d_cloud,
    ".obj": _open3d_mesh, ".off": _open3d_mesh, ".stl": _open3d_mesh, ".npy": _npy(_points), ".npz": _npz,
    # text
    ".txt": _text,
    # audio
    ".wav": _soundfile("WAV", "PCM_16"), ".flac": _soundfile("FLAC"), ".ogg": _soundfile("OGG", "VORBIS"),
    ".oga": _soundfile("OGG", "VORBIS"), ".opus": _soundfile("OGG", "OPUS", rate=48000),
    ".mp3": _soundfile("MP3", "MPEG_LAYER_III", rate=22050), ".aif": _soundfile("AIFF", "PCM_16"),
    ".aiff": _soundfile("AIFF", "PCM_16"), ".aifc": _soundfile("AIFF", "PCM_16"), ".au": _soundfile("AU", "PCM_16"),
    ".caf": _soundfile("CAF", "PCM_16"), ".w64": _soundfile("W64", "PCM_16"),
    ".m4a": _av_audio("ipod", "aac"), ".aac": _av_audio("adts", "aac"), ".wma": _av_audio("asf", "wmav2"),
    # video
    ".mp4": _av_video("mp4", "libx264"), ".m4v": _av_video("mp4", "libx264"), ".mov": _av_video("mov", "libx264"),
    ".mkv": _av_video("matroska", "libx264"), ".webm": _av_video("webm", "libvpx"),
    ".avi": _av_video("avi", "mpeg4"), ".mpg": _av_video("mpeg", "mpeg1video", fps=25),  # MPEG-1: 24/25/30 fps
    ".mpeg": _av_video("mpeg", "mpeg1video", fps=25),
}


def write_seed(suffix: str, path: Path) -> Path:
    """Write the valid seed file of ``suffix`` at ``path`` (whose name ends in ``suffix``)."""
    SEEDS[suffix](path)
    return path
