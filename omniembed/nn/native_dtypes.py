"""Whether a device runs low-precision matmuls in hardware or PyTorch emulates them (far slower than fp32)."""

from __future__ import annotations

import warnings

import torch

CPU_NATIVE_CHECKS = {torch.bfloat16: "_is_mkldnn_bf16_supported", torch.float16: "_is_mkldnn_fp16_supported"}
"""Low dtype → the oneDNN query that says whether this CPU runs its matmuls natively (not emulated)."""
SHORT_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


CUDA_BF16_CAPABILITY = (8, 0)
"""The first NVIDIA compute capability with bf16 tensor-core matmuls (Ampere); older GPUs (V100, T4) emulate bf16."""


def runs_natively(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``device`` runs ``dtype`` matmuls in hardware. An NVIDIA GPU runs fp16, and bf16 from compute
    capability 8.0 (:data:`CUDA_BF16_CAPABILITY`); a ROCm or other GPU, autocast's dtypes; a CPU only with the
    instructions oneDNN asks for (bf16: AVX512 BW/VL/DQ, AVX-NE-CONVERT or AMX; fp16: AVX512-FP16 or AMX-FP16).
    Elsewhere PyTorch emulates them: a bf16 ViT-B-width block ran 7.2× slower than fp32 on an AVX2-only EPYC."""
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.version.hip:
        return torch.cuda.get_device_capability(device) >= CUDA_BF16_CAPABILITY
    if device.type != "cpu":
        return True
    check = getattr(torch.ops.mkldnn, CPU_NATIVE_CHECKS.get(dtype, ""), None)
    return bool(check is not None and check())


def warn_if_emulated(device: torch.device, dtype: torch.dtype, setting: str, work: str, fallback: str,
                     stacklevel: int = 2) -> None:
    """A RuntimeWarning, at the caller's caller (``stacklevel`` as :func:`warnings.warn` counts from the caller),
    where ``setting`` asks ``device`` for ``dtype`` matmuls it only emulates: ``work`` then runs slower than with
    ``fallback``."""
    if not runs_natively(device, dtype):
        warnings.warn(f"{setting}: {device} has no {SHORT_NAMES[dtype]} matmul instructions, so PyTorch emulates them "
                      f"and {work} runs slower than with {fallback}", RuntimeWarning, stacklevel=stacklevel + 1)
