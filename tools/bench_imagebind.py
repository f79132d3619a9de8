"""Forward time of ImageBind-architecture encoders in OmniEmbed vs ImageBind's own code, side by side.

    .venv/bin/python tools/bench_imagebind.py --imagebind-src PATH/TO/ImageBind [--device cpu] [--batch 8]

Builds one random ViT-B-sized ImageBind (vision 768-d × 12 blocks, kernel (2, 14, 14); audio 768-d × 12 with
3 clips per input; text 512-d × 12 over 77 tokens) from ImageBind's code at ``--imagebind-src`` (a checkout of
facebookresearch/ImageBind: only ``imagebind/models`` is imported, ``einops``/``iopath`` are stood in for when
absent), converts its state dict with :func:`omniembed.convert.from_imagebind`, and times, interleaved on the
same inputs: the reference and OmniEmbed each in fp32 and in bf16 autocast — OmniEmbed as
``embed(..., precision="bf16")`` runs it, with its weights cast to bf16 once and its transformer blocks wholly
in bf16 (:func:`omniembed.nn.precision.cast_for_inference`), and again under autocast alone on the fp32 weights —
and a plain square matmul (2048² on a CPU, 8192² on a GPU) in each precision in the same loop. It prints
best and median seconds (ratios are between bests: on a shared machine the least-disturbed run), the achieved
FLOP rate (of the work each side does: OmniEmbed's last block computes only the token its head reads) against
that matmul's, the speed ratio against the reference **at the same precision** (bf16 against the
reference's bf16, never its fp32), the max |Δ| between the two fp32 implementations and the bf16-vs-fp32 cosine.
Without ``--imagebind-src`` there is nothing to compare against: the tool says so and exits with status 2 (it never
divides by reference times quoted from elsewhere). ImageBind's code is not vendored: fetch
facebookresearch/ImageBind (commit 53680b0) and point at the checkout.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ARCH = dict(vision_embed_dim=768, vision_num_blocks=12, vision_num_heads=12, kernel_size=(2, 14, 14),
            audio_embed_dim=768, audio_num_blocks=12, audio_num_heads=12,
            text_embed_dim=512, text_num_blocks=12, text_num_heads=8, out_embed_dim=512,
            depth_embed_dim=384, depth_num_blocks=1, depth_num_heads=8, thermal_embed_dim=384,
            thermal_num_blocks=1, thermal_num_heads=8, imu_embed_dim=512, imu_num_blocks=1, imu_num_heads=8)
"""ViT-B-sized encoders for the three timed modalities; the untimed ones are kept one block deep."""
OMNI_NAMES = {"vision": "image", "audio": "audio", "text": "text"}


# ---- the reference ---------------------------------------------------------------------------------------------
def load_reference(src: Path) -> types.ModuleType:
    """ImageBind's ``imagebind.models.imagebind_model`` from a checkout, without its package ``__init__`` (which
    imports the data pipeline and pytorchvideo). ``einops`` and ``iopath`` get minimal stand-ins if absent."""
    try:
        importlib.import_module("einops")
    except ImportError:
        stub = types.ModuleType("einops")

        def rearrange(x: torch.Tensor, pattern: str, **_: int) -> torch.Tensor:
            if pattern.replace(" ", "") in ("bld->lbd", "lbd->bld"):
                return x.transpose(0, 1)
            raise NotImplementedError(f"einops stand-in: {pattern}")

        stub.rearrange = rearrange
        sys.modules["einops"] = stub
    try:
        importlib.import_module("iopath.common.file_io")
    except ImportError:
        for name in ("iopath", "iopath.common", "iopath.common.file_io"):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["iopath.common.file_io"].g_pathmgr = types.SimpleNamespace(open=open)
    for name, path in (("imagebind", src / "imagebind"), ("imagebind.models", src / "imagebind" / "models")):
        package = types.ModuleType(name)
        package.__path__ = [str(path)]
        sys.modules[name] = package
    return importlib.import_module("imagebind.models.imagebind_model")


# ---- inputs, FLOPs, timing -------------------------------------------------------------------------------------
def inputs(batch: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(8, 24, (batch,), generator=g)  # caption-like token counts
    ids = torch.zeros(batch, 77, dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        ids[row, 0], ids[row, 1:n - 1], ids[row, n - 1] = 49406, torch.randint(1, 49000, (n - 2,), generator=g), 49407
    return {"vision": torch.randn(batch, 3, 224, 224, generator=g).to(device),
            "audio": torch.randn(batch, 3, 1, 128, 204, generator=g).to(device),
            "text": ids.to(device)}


def encoder_flops(width: int, blocks: int, tokens: int, sequences: int) -> float:
    """Multiply-adds × 2 of the trunk's matmuls (qkv, proj, MLP: 12·D² per token) and attention (2·L·D)."""
    per_token = 24 * width ** 2 + 4 * tokens * width
    return float(per_token * tokens * blocks * sequences)


def flops(batch: int, modality: str, text_tokens: int = 77, pooled_last_block: bool = False) -> float:
    """FLOPs of one forward of the ViT-B-sized encoder (the stems' convs included). ``pooled_last_block``: as
    OmniEmbed runs it, its last block computing only the token the head reads (keys and values of all tokens:
    4·D² per token; the rest, 20·D² + 4·L·D, for that token alone)."""
    width, tokens, sequences, stem = {
        "vision": (768, 257, batch, 2 * 3 * 2 * 14 * 14 * 768 * 256 * batch),
        "audio": (768, 229, 3 * batch, 2 * 16 * 16 * 768 * 228 * 3 * batch),
        "text": (512, text_tokens, batch, 0)}[modality]
    skipped = (tokens - 1) * (20 * width ** 2 + 4 * tokens * width) * sequences if pooled_last_block else 0
    return encoder_flops(width, 12, tokens, sequences) + stem - skipped


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_size(device: torch.device) -> int:
    """The side of the ceiling matmul: 2048 on a CPU; 8192 on a GPU, where a 2048² product is too small to fill the
    chip and would understate its attainable rate."""
    return 8192 if device.type == "cuda" else 2048


def matmul(dtype: torch.dtype, device: torch.device) -> tuple[Callable[[], torch.Tensor], float]:
    """A plain square matmul in ``dtype`` and its FLOPs: the machine's attainable rate, timed beside the models."""
    n = matmul_size(device)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return (lambda: a @ b), 2.0 * n ** 3


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else torch.autocast(device.type,
                                                                                           enabled=False)


def time_interleaved(runs: dict[str, Callable[[], torch.Tensor]], repeats: int,
                     device: torch.device) -> dict[str, tuple[float, float]]:
    """(best, median) seconds of each run. Runs alternate so that load from elsewhere hits them alike; on a shared
    machine the best of the repeats is the least-disturbed run, so ratios are taken between bests."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in runs.items():
            times[name].append(timed(fn, device))
    return {k: (min(v), statistics.median(v)) for k, v in times.items()}


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call of ``fn``, the device's queued work finished before and after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


# ---- main ------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imagebind-src", type=Path, required=True,
                        help="a checkout of facebookresearch/ImageBind (required: the reference runs in this process)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modalities", default="vision,audio,text")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both sides (default: torch's); on a machine shared with other jobs "
                             "1 thread is the least disturbed (no OpenMP barrier waits on a descheduled thread)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    chosen = [m for m in args.modalities.split(",") if m]

    from omniembed.convert import from_imagebind
    from omniembed.nn.precision import cast_for_inference

    if not (args.imagebind_src / "imagebind" / "models" / "imagebind_model.py").is_file():
        parser.error(f"--imagebind-src {args.imagebind_src}: no imagebind/models/imagebind_model.py there; "
                     "without ImageBind's own code there is no comparison to make")
    torch.manual_seed(0)
    reference = load_reference(args.imagebind_src).ImageBindModel(**ARCH).eval().to(device)
    state = reference.state_dict()
    ours = from_imagebind(state, ARCH, modalities=sorted(set(chosen) | {"vision"})).to(device).eval()
    data = inputs(args.batch, device)
    low = torch.bfloat16

    rows, checks, rates = [], [], []
    with torch.inference_mode():
        for m in chosen:
            enc = ours.encoder(OMNI_NAMES[m])
            x = data[m]
            runs: dict[str, Callable[[], torch.Tensor]] = {}
            work = {}
            cast = cast_for_inference(enc, low)  # what embed(..., precision="bf16") runs
            for label, dtype in (("fp32", None), ("bf16", low)):
                runs[f"ref {label}"] = _run(lambda x=x, m=m: reference({m: x})[m], device, dtype)
                runs[f"omni {label}"] = _run(lambda x=x, enc=cast if dtype else enc: enc(x), device, dtype)
                work[f"ref {label}"] = flops(args.batch, m)
                work[f"omni {label}"] = flops(args.batch, m, pooled_last_block=True)
                if dtype is not None:  # the same model under autocast alone, re-casting its weights every call
                    runs["omni bf16 autocast only"] = _run(lambda x=x, enc=enc: enc(x), device, dtype)
                    work["omni bf16 autocast only"] = flops(args.batch, m, pooled_last_block=True)
                if m == "text":  # what embed() runs: the batch cut after its longest caption (the mask is causal)
                    used = int((x != 0).any(dim=0).nonzero().max()) + 1
                    trimmed = f"omni {label} trimmed to {used} tokens"
                    runs[trimmed] = _run(lambda x=x[:, :used], enc=cast if dtype else enc: enc(x), device, dtype)
                    work[trimmed] = flops(args.batch, m, text_tokens=used, pooled_last_block=True)
                runs[f"matmul {label}"], work[f"matmul {label}"] = matmul(dtype or torch.float32, device)
            times = time_interleaved(runs, args.repeats, device)
            rate = {p: work[f"matmul {p}"] / times.pop(f"matmul {p}")[0] for p in ("fp32", "bf16")}
            rates.append((m, rate))
            for label, (best, median) in times.items():
                precision = label.split()[1]
                achieved = work[label] / best
                # Fewer tokens than the reference's 77 is not like for like: no ratio for the trimmed rows.
                ratio = times[f"ref {precision}"][0] / best if "trimmed" not in label else float("nan")
                rows.append((m, label, best, median, achieved / 1e9, achieved / rate[precision], ratio))
            a = runs["omni fp32"]()
            b = runs["omni bf16"]().float()
            cosine = F.cosine_similarity(F.normalize(a, dim=-1), F.normalize(b, dim=-1)).min().item()
            delta = (F.normalize(runs["ref fp32"](), dim=-1) - a).abs().max().item()
            checks.append((m, cosine, delta))

    _print_report(args, device, rates, rows, checks)
    return 0


def _run(fn: Callable[[], torch.Tensor], device: torch.device, dtype: torch.dtype | None) -> Callable[[], torch.Tensor]:
    def call() -> torch.Tensor:
        with autocast(device, dtype):
            return fn()
    return call


def _print_report(args: argparse.Namespace, device: torch.device, rates: list, rows: list, checks: list) -> None:
    cpu = cpu_model()
    print(f"command: {' '.join(sys.argv)}")
    print(f"device: {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else cpu}); "
          f"torch {torch.__version__}; torch.get_num_threads() = {torch.get_num_threads()}; batch {args.batch}; "
          f"best and median of {args.repeats} interleaved repeats")
    for m, rate in rates:
        print(f"plain matmul {matmul_size(device)}², timed among the {m} runs: fp32 {rate['fp32'] / 1e9:.0f} GFLOP/s, "
              f"bf16 {rate['bf16'] / 1e9:.0f} GFLOP/s (bf16/fp32 {rate['bf16'] / rate['fp32']:.2f}×)")
    print()
    print("| modality | implementation | best s | median s | GFLOP/s | of matmul rate (same precision) "
          "| speed vs ImageBind's code, same precision |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for m, label, best, median, gflops, share, vs_same in rows:
        same = f"{vs_same:.2f}×" if vs_same == vs_same else "– (fewer tokens than the reference's 77)"
        print(f"| {m} | {label} | {best:.3f} | {median:.3f} | {gflops:.0f} | {share:.0%} | {same} |")
    print()
    print("| modality | bf16 vs fp32 min cosine (OmniEmbed) | max abs Δ, OmniEmbed vs ImageBind fp32 unit vectors |")
    print("|---|---:|---:|")
    for m, cosine, delta in checks:
        print(f"| {m} | {cosine:.6f} | {delta:.2e} |")


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
