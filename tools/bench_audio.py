"""Audio preprocessing throughput: the per-file Kaldi path vs the batched path, side by side in one run.

    .venv/bin/python tools/bench_audio.py [--files 64] [--seconds 5] [--rate 44100] [--channels 1] [--repeats 7]

Both paths start from the same files on disk and end at the model input ``[B, 3, 1, 128, 204]``:

* **per-file kaldi** — ``AudioConfig(resampler="torchaudio", fbank="kaldi")``, one file at a time (batch of 1):
  read the clip windows, ``torchaudio.functional.resample``, ``torchaudio.compliance.kaldi.fbank`` per clip.
  This is ImageBind's ``load_and_transform_audio_data`` recipe call for call (the golden-feature test pins it).
* **batched** — the default ``AudioConfig()``: the same reads, the polyphase resampler per file, then one
  :class:`BatchedFbank` call over all 64 × 3 clips in ``collate``.

Paths alternate for ``--repeats`` rounds, so a noisy neighbour on shared cores hits both alike. Each path's best
round (least disturbed; the stage columns are from it) and median are reported, and the ratio of each round's
two timings. The stage columns split each path's time into reading + resampling (``prepare``) and the filterbank
(``collate``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_imagebind import cpu_model  # noqa: E402
from omniembed.modalities.audio import AudioConfig, AudioModality  # noqa: E402


def make_files(directory: Path, n: int, seconds: float, rate: int, channels: int) -> list[Path]:
    """``n`` 16-bit wav files of a tone sweep plus noise (each different)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    paths = []
    for i in range(n):
        tone = 0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t * (1 + 0.1 * t))
        wave = np.stack([tone + 0.05 * rng.standard_normal(t.shape) for _ in range(channels)], axis=1)
        path = directory / f"clip{i:03d}.wav"
        sf.write(path, wave.astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def per_file(mod: AudioModality, files: list[Path]) -> tuple[torch.Tensor, float, float]:
    prep = fbank = 0.0
    out = []
    for f in files:
        t0 = time.perf_counter()
        sample = mod.prepare(f)
        t1 = time.perf_counter()
        out.append(mod.collate([sample]))
        t2 = time.perf_counter()
        prep, fbank = prep + t1 - t0, fbank + t2 - t1
    return torch.cat(out), prep, fbank


def batched(mod: AudioModality, files: list[Path]) -> tuple[torch.Tensor, float, float]:
    t0 = time.perf_counter()
    samples = [mod.prepare(f) for f in files]
    t1 = time.perf_counter()
    out = mod.collate(samples)
    return out, t1 - t0, time.perf_counter() - t1




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    paths = {
        "per-file kaldi": (AudioModality(AudioConfig(resampler="torchaudio", fbank="kaldi")), per_file),
        "batched": (AudioModality(AudioConfig()), batched),
    }
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), args.files, args.seconds, args.rate, args.channels)
        times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in paths}
        outputs = {}
        for name, (mod, run) in paths.items():  # warm-up (kernels, caches)
            outputs[name] = run(mod, files[:4])[0]
        for _ in range(args.repeats):
            for name, (mod, run) in paths.items():
                t0 = time.perf_counter()
                out, prep, fbank = run(mod, files)
                times[name].append((time.perf_counter() - t0, prep, fbank))
                outputs[name] = out

    clips = args.files * AudioConfig().n_clips
    diff = (outputs["per-file kaldi"] - outputs["batched"]).abs()
    print(f"command: {' '.join([Path(sys.executable).name] + sys.argv)}")
    print(f"cpu: {cpu_model()} | torch {torch.__version__} | torch.get_num_threads() = {torch.get_num_threads()} | "
          f"os.cpu_count() = {os.cpu_count()}")
    print(f"input: {args.files} wav files × {args.seconds:g} s at {args.rate} Hz, {args.channels} ch, 16-bit → "
          f"{clips} clips [1, 128, 204]; {args.repeats} alternating rounds\n")
    header = (f"| {'path':<16} | {'clips/s best':>12} | {'clips/s median':>14} | {'read+resample ms':>16} | "
              f"{'fbank ms':>8} | {'× per-file best':>15} | {'× per-file median':>17} |")
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    base_best = min(t[0] for t in times["per-file kaldi"])
    base_median = statistics.median(t[0] for t in times["per-file kaldi"])
    for name in paths:
        best = min(times[name], key=lambda t: t[0])  # the round least disturbed by neighbours
        median = statistics.median(t[0] for t in times[name])
        print(f"| {name:<16} | {clips / best[0]:>12.0f} | {clips / median:>14.0f} | {best[1] * 1e3:>16.1f} | "
              f"{best[2] * 1e3:>8.1f} | {base_best / best[0]:>15.2f} | {base_median / median:>17.2f} |")
    paired = [a[0] / b[0] for a, b in zip(times["per-file kaldi"], times["batched"])]
    print(f"\nper-round ratio (per-file time / batched time, same round): median {statistics.median(paired):.2f}, "
          f"min {min(paired):.2f}, max {max(paired):.2f}")
    print(f"agreement (model-input units): max |Δ| = {diff.max():.2e}, mean |Δ| = {diff.mean():.2e}")


if __name__ == "__main__":
    main()
