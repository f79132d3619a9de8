"""Files → vectors end to end: ``model.embed(paths)`` vs ImageBind's own loaders + model, side by side in one run.

    .venv/bin/python tools/bench_embed_imagebind.py --imagebind-src PATH/TO/ImageBind [--files 32] [--batch 8]

Both sides start from the same JPEG files on disk (photo-sized, 640 × 480) and the same captions, and end at unit
vectors from the same ViT-B-sized random ImageBind (the architecture of :mod:`bench_imagebind`, converted with
:func:`omniembed.convert.from_imagebind`):

* **ImageBind**: ``imagebind.data.load_and_transform_vision_data`` / ``load_and_transform_text`` on each batch of
  ``--batch`` inputs, then ``ImageBindModel({modality: x})`` — its own code, imported from ``--imagebind-src``;
* **OmniEmbed**: ``model.embed(inputs, batch_size=--batch, precision=...)`` — reading, preprocessing, batching,
  encoding and normalising as a user calls it.

Each precision is like for like: fp32 against fp32, and ``precision="bf16"`` (weights cast once) against the
reference under bf16 autocast (its only bf16 path). ``embed`` batches captions to their longest one rather than
ImageBind's fixed 77 tokens (exact under the causal mask); that is part of what ``embed`` does, so it is in the
figure — the output's last column shows the vectors agree. Runs alternate; ratios are between the best of the
repeats (the least-disturbed run on a shared machine). ImageBind's audio loader needs pytorchvideo's clip sampler,
which does not install beside this torchvision, so audio is not timed end to end here (``tools/bench_audio.py``
times the audio preprocessing against the same Kaldi recipe).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_imagebind import ARCH, autocast, cpu_model, load_reference, time_interleaved  # noqa: E402


def load_reference_data(src: Path) -> types.ModuleType:
    """``imagebind.data`` from the checkout (after :func:`load_reference` set up the package). Its module imports
    pytorchvideo for the audio and video loaders only; a stand-in that fails on use lets the image and text
    loaders import without it."""
    try:
        __import__("pytorchvideo")
    except ImportError:
        def absent(*_: object, **__: object) -> None:
            raise RuntimeError("pytorchvideo is not installed: ImageBind's audio/video loaders cannot run")

        names = ("pytorchvideo", "pytorchvideo.transforms", "pytorchvideo.data",
                 "pytorchvideo.data.clip_sampling", "pytorchvideo.data.encoded_video")
        for name in names:
            sys.modules[name] = types.ModuleType(name)
        sys.modules["pytorchvideo"].transforms = sys.modules["pytorchvideo.transforms"]
        sys.modules["pytorchvideo.data.clip_sampling"].ConstantClipsPerVideoSampler = absent
        sys.modules["pytorchvideo.data.encoded_video"].EncodedVideo = absent
    data = __import__("imagebind.data", fromlist=["load_and_transform_text"])
    bpe = src / "imagebind" / "bpe" / "bpe_simple_vocab_16e6.txt.gz"
    data.return_bpe_path = lambda: str(bpe)  # the checkout's vocabulary, not an installed package's resource
    return data


def make_images(directory: Path, n: int) -> list[Path]:
    """``n`` 640 × 480 JPEGs: smooth gradients with noise, each different (a photo's size and compressibility)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    paths = []
    for i in range(n):
        base = np.stack([(xx * (i + 1) / 640) % 1, (yy / 480), ((xx + yy) / 1120 + i / n) % 1], axis=-1)
        pixels = np.clip(base * 255 + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = directory / f"photo_{i:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


WORDS = ("a photo of the dog cat car red blue small large old new man woman child running sitting on in near "
         "beside under tree house street beach snow park table bowl of soup with two three people").split()


def make_captions(n: int) -> list[str]:
    """``n`` captions of 4–15 words (caption-like lengths)."""
    rng = np.random.default_rng(1)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 16)))) for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imagebind-src", type=Path, required=True, help="a checkout of facebookresearch/ImageBind")
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not (args.imagebind_src / "imagebind" / "data.py").is_file():
        parser.error(f"--imagebind-src {args.imagebind_src}: no imagebind/data.py there")

    from omniembed.convert import from_imagebind

    device = torch.device("cpu")
    torch.manual_seed(0)
    reference = load_reference(args.imagebind_src).ImageBindModel(**ARCH).eval()
    data = load_reference_data(args.imagebind_src)
    ours = from_imagebind(reference.state_dict(), ARCH, modalities=["vision", "text"]).eval()
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {"vision": make_images(Path(tmp), args.files), "text": make_captions(args.files)}
        loaders = {"vision": data.load_and_transform_vision_data, "text": data.load_and_transform_text}
        rows, agreement = [], {}
        with torch.inference_mode():
            for m, items in inputs.items():
                runs: dict[str, Callable[[], torch.Tensor]] = {}
                for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
                    runs[f"ImageBind loaders + model, {label}"] = _reference_run(
                        reference, loaders[m], m, items, args.batch, dtype)
                    runs[f"OmniEmbed embed(), {label}"] = (
                        lambda items=items, label=label: torch.from_numpy(ours.embed(
                            list(items), batch_size=args.batch, precision=label, progress=False)))
                times = time_interleaved(runs, args.repeats, device)
                for label in ("fp32", "bf16"):
                    ref, omni = f"ImageBind loaders + model, {label}", f"OmniEmbed embed(), {label}"
                    rows.append((m, label, times[ref], times[omni]))
                    agreement[(m, label)] = float((runs[ref]().float() * runs[omni]()).sum(dim=1).min())

    print(f"command: {' '.join(sys.argv)}")
    print(f"device: cpu ({cpu_model()}); torch {torch.__version__}; {torch.get_num_threads()} threads; "
          f"{args.files} inputs per modality, batch {args.batch}; best and median of {args.repeats} interleaved "
          "repeats; files read from disk on every repeat")
    print()
    print("| modality | precision | ImageBind best s (median) | OmniEmbed best s (median) | inputs/s ImageBind "
          "| inputs/s OmniEmbed | speed vs ImageBind | min cosine between the two sides' vectors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for m, label, (rb, rm), (ob, om) in rows:
        print(f"| {m} | {label} | {rb:.3f} ({rm:.3f}) | {ob:.3f} ({om:.3f}) | {args.files / rb:.1f} "
              f"| {args.files / ob:.1f} | {rb / ob:.2f}× | {agreement[(m, label)]:.6f} |")
    return 0


def _reference_run(model: torch.nn.Module, loader: Callable, modality: str, items: list, batch: int,
                   dtype: torch.dtype | None) -> Callable[[], torch.Tensor]:
    """ImageBind's own pipeline: its loader on each batch of inputs, then its model; unit rows [n, E] (fp32)."""
    def call() -> torch.Tensor:
        out = []
        for start in range(0, len(items), batch):
            x = loader(items[start:start + batch], "cpu")
            with autocast(torch.device("cpu"), dtype):
                out.append(F.normalize(model({modality: x})[modality].float(), dim=-1))
        return torch.cat(out)
    return call


if __name__ == "__main__":
    sys.exit(main())
