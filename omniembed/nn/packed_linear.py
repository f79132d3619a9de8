"""Linear layers with their weights pre-packed for oneDNN, for CPU inference copies.

``F.linear`` on CPU hands oneDNN/MKL a plain row-major weight on every call: the library reorders it into its
blocked layout each time, and ``addmm`` first copies the bias into every output row. For a frozen inference copy
both can be done once: :class:`PackedLinear` keeps the weight in oneDNN's blocked layout (the reorder PyTorch's
inductor makes when it freezes a CPU model) and runs ``mkldnn::_linear_pointwise``, which adds the bias and, when
asked, applies the exact (erf) GELU in the matmul's epilogue instead of a separate pass over ``[B, L, hidden]``.

The packed weight is not a parameter or buffer: it has no gradient, no ``state_dict`` entry and stays on the CPU —
a copy made for inference (:func:`~omniembed.nn.precision.cast_for_inference`) and remade when the original
changes, never trained or saved.
"""

from __future__ import annotations

import torch
from torch import nn

from .native_dtypes import runs_natively

PACKED_DTYPES = (torch.float32, torch.bfloat16)
"""Dtypes oneDNN's packed linear can run in: fp32 on any x86 CPU, bf16 only where :func:`packing_available` says."""


def packing_available(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether :class:`PackedLinear` can run on ``device`` in ``dtype``: a CPU, a PyTorch built with oneDNN, and for
    bf16 a CPU that runs bf16 natively (:func:`~.native_dtypes.runs_natively`; an AVX2-only CPU such as many AMD
    EPYCs does not, and packing a bf16 weight there raises — its cast copies keep plain bf16 ``nn.Linear`` layers)."""
    return (device.type == "cpu" and dtype in PACKED_DTYPES and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and (dtype == torch.float32 or runs_natively(device, dtype)))


class PackedLinear(nn.Module):
    """``act(x @ Wᵀ + b)`` with ``W`` packed once for oneDNN. x ``[..., in]`` → ``[..., out]``, in ``W``'s dtype.

    ``activation`` is ``"none"`` or ``"gelu"`` (exact, erf-based: ``nn.GELU()``'s default), fused into the matmul.
    """

    ACTIVATIONS = {"none": ("none", ""), "gelu": ("gelu", "none")}
    """activation → (oneDNN post-op, its algorithm argument)."""

    def __init__(self, linear: nn.Linear, activation: str = "none", rows_hint: int | None = None):
        super().__init__()
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}' (choose from {', '.join(self.ACTIVATIONS)})")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.activation = activation
        weight = linear.weight.detach()
        # rows_hint (the expected number of input rows) only steers oneDNN's choice of blocking; any count runs.
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), rows_hint)
        self.bias = None if linear.bias is None else linear.bias.detach().to(weight.dtype).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attr, algorithm = self.ACTIVATIONS[self.activation]
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), self.packed, self.bias, attr, [], algorithm)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, dtype={self.packed.dtype}, "
                f"activation={self.activation}")
