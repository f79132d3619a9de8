"""Patch stems: an image or a clip of frames → [CLS] + patch tokens with learned positions."""

from __future__ import annotations

import torch
from torch import nn

from .tokens import Tokens


class PatchStem(nn.Module):
    """Conv patch embedding + CLS token + learned positional embedding.

    With ``temporal_kernel`` 1 the input is ``[B, C, H, W]`` and the conv is 2-D. With ``temporal_kernel`` t > 1
    the conv is 3-D with kernel (t, p, p) over ``[B, C, T, H, W]``; a still image ``[B, C, H, W]`` is then a
    t-frame clip by repetition, so images and videos share one trunk (ImageBind). Output: Tokens [B, 1 + N, D]
    with N = (T / t) · (H / p) · (W / p).
    """

    def __init__(self, in_chans: int, width: int, patch_size: int, image_size: int, temporal_kernel: int = 1,
                 frames: int | None = None, bias: bool = False):
        super().__init__()
        self.temporal_kernel = temporal_kernel
        grid = (image_size // patch_size) ** 2
        if temporal_kernel == 1:
            self.proj: nn.Module = nn.Conv2d(in_chans, width, patch_size, stride=patch_size, bias=bias)
            n_patches = grid
        else:
            k = (temporal_kernel, patch_size, patch_size)
            self.proj = nn.Conv3d(in_chans, width, k, stride=k, bias=bias)
            n_patches = grid * ((frames or temporal_kernel) // temporal_kernel)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + n_patches, width))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> Tokens:
        if self.temporal_kernel > 1 and x.ndim == 4:
            x = x.unsqueeze(2).expand(-1, -1, self.temporal_kernel, -1, -1)
        patches = self.proj(x).flatten(2).transpose(1, 2)  # [B, N, D]
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return Tokens(torch.cat([cls, patches], dim=1) + self.pos_embed)
