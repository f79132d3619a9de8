"""Whether a device runs low-precision matmuls in hardware or PyTorch emulates them (far slower than fp32)."""

from __future__ import annotations

import torch

CPU_NATIVE_CHECKS = {torch.bfloat16: "_is_mkldnn_bf16_supported", torch.float16: "_is_mkldnn_fp16_supported"}
"""Low dtype → the oneDNN query that says whether this CPU runs its matmuls natively (not emulated)."""


def runs_natively(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``device`` runs ``dtype`` matmuls in hardware. A GPU does (autocast's dtypes); a CPU only with the
    instructions oneDNN asks for (bf16: AVX512 BW/VL/DQ, AVX-NE-CONVERT or AMX; fp16: AVX512-FP16 or AMX-FP16).
    Elsewhere PyTorch emulates them: a bf16 ViT-B-width block ran 7.2× slower than fp32 on an AVX2-only EPYC."""
    if device.type != "cpu":
        return True
    check = getattr(torch.ops.mkldnn, CPU_NATIVE_CHECKS.get(dtype, ""), None)
    return bool(check is not None and check())
