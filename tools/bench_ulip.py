"""Converted ULIP Point-BERT tower against ULIP's own forward, side by side: clouds per second at full size.

Full-size ULIP-1 point branch (width 384, 12 blocks, 6 heads, 512 groups of 32, 8,192 xyz points, projection to
512) with random weights in ULIP's key layout, converted by :func:`omniembed.convert.from_ulip`. The reference is
a **reimplementation of ULIP's forward written for this benchmark**, following its code structure module for
module (``models/pointbert/point_encoder.py`` at f194ddb: ``Group`` = ``misc.fps`` + ``knn_point`` with
``square_distance`` and ``topk``, ``Encoder`` with its Conv1d/BatchNorm stacks, ``reduce_dim``, ``cls_token``
/ ``cls_pos``, ``pos_embed``, ``TransformerEncoder`` adding ``pos`` before every block with its hand-written
softmax attention, ``norm``, ``[CLS, max]``, ``@ pc_projection``), loading the same state dict by ULIP's key
names. Its CUDA ops are CPU stand-ins: by default the fixture's ``pointnet2_ops`` stand-in
(``../shared/fixtures/ulip-pointbert-tiny/generator/shims``: one cloud at a time, a transcription of the
kernel), else a batched emulation of the same kernel written here. Outputs are checked to agree before
anything is timed. Each figure is the best of ``--repeats`` runs, the paths interleaved.

    .venv/bin/python tools/bench_ulip.py [--batch 32] [--points 8192] [--repeats 1] [--threads 2]

What the ratio is not: ULIP's own code runs its FPS and kNN as CUDA kernels, and nothing here runs them; the
reference's FPS is a CPU transcription of that kernel, one cloud at a time. The printed throughput ratio is
therefore converted tower vs this reimplementation on the same threads, not a speed claim against ULIP; the
agreement of the outputs is the result this tool pins.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from omniembed.convert import from_ulip
from omniembed.convert.ulip import PointShapes, expected_shapes
from omniembed.modalities.pointnet2_order import near_origin, tie_ranks

STAND_INS = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "ulip-pointbert-tiny" / "generator" \
    / "shims"
FULL = PointShapes(width=384, depth=12, in_channels=3, hidden=128, encoder_dims=256, pos_hidden=128, mlp_hidden=1536,
                   embed_dim=512)


# ---- the reference forward, in ULIP's structure ----------------------------------------------------------------
def emulated_fps(xyz: torch.Tensor, n: int) -> torch.Tensor:
    """Batched stand-in for ``pointnet2_utils.furthest_point_sample``: full update of every point per pick,
    start at 0, near-origin points skipped, the kernel's tie order. [B, N, 3] → int32 [B, n]."""
    b, count, _ = xyz.shape
    rank = tie_ranks(count).expand(b, -1)
    temp = torch.full((b, count), 1e10).masked_fill(near_origin(xyz), -math.inf)
    picks = torch.zeros(b, n, dtype=torch.long)
    rows = torch.arange(b)
    for i in range(1, n):
        diff = (xyz - xyz[rows, picks[:, i - 1]][:, None]).square()
        temp = torch.minimum(temp, (diff[..., 0] + diff[..., 1]) + diff[..., 2])
        best = temp.amax(dim=1, keepdim=True)
        picks[:, i] = torch.where(temp == best, rank, torch.iinfo(torch.long).max).argmin(dim=1)
    return picks.int()


def load_fps(stand_ins: Path) -> tuple[Callable[[torch.Tensor, int], torch.Tensor], str]:
    if (stand_ins / "pointnet2_ops").is_dir():
        sys.path.insert(0, str(stand_ins))
        utils = importlib.import_module("pointnet2_ops.pointnet2_utils")
        return utils.furthest_point_sample, f"fixture stand-in ({stand_ins})"
    return emulated_fps, "batched emulation in this file"


def square_distance(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """ULIP's expanded form −2·s·dᵀ + |s|² + |d|²: [B, N, C], [B, M, C] → [B, N, M]."""
    dist = -2 * torch.matmul(src, dst.permute(0, 2, 1))
    dist += torch.sum(src ** 2, -1)[..., None]
    return dist + torch.sum(dst ** 2, -1)[:, None]


class Group(nn.Module):
    def __init__(self, num_group: int, group_size: int, fps: Callable[[torch.Tensor, int], torch.Tensor]):
        super().__init__()
        self.num_group, self.group_size, self.fps = num_group, group_size, fps

    def forward(self, xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = xyz.shape
        idx = self.fps(xyz.contiguous(), self.num_group).long()
        center = xyz.gather(1, idx[..., None].expand(-1, -1, 3))  # gather_operation
        knn = torch.topk(square_distance(center, xyz), self.group_size, dim=-1, largest=False, sorted=False)[1]
        flat = (knn + torch.arange(b)[:, None, None] * n).view(-1)
        neighborhood = xyz.reshape(b * n, -1)[flat].view(b, self.num_group, self.group_size, 3)
        return neighborhood - center[:, :, None], center


class Encoder(nn.Module):
    def __init__(self, encoder_channel: int):
        super().__init__()
        self.first_conv = nn.Sequential(nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(inplace=True),
                                        nn.Conv1d(128, 256, 1))
        self.second_conv = nn.Sequential(nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                                         nn.Conv1d(512, encoder_channel, 1))

    def forward(self, point_groups: torch.Tensor) -> torch.Tensor:
        bs, g, n, _ = point_groups.shape
        feature = self.first_conv(point_groups.reshape(bs * g, n, 3).transpose(2, 1))
        feature_global = torch.max(feature, dim=2, keepdim=True)[0]
        feature = torch.cat([feature_global.expand(-1, -1, n), feature], dim=1)
        feature = self.second_conv(feature)
        return torch.max(feature, dim=2, keepdim=False)[0].reshape(bs, g, -1)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, dim * 3, bias=False), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, hidden: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, num_heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerEncoder(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, hidden: int):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim, num_heads, hidden) for _ in range(depth)])

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x + pos)
        return x


class PointTransformer(nn.Module):
    def __init__(self, s: PointShapes, heads: int, fps: Callable[[torch.Tensor, int], torch.Tensor]):
        super().__init__()
        self.group_divider = Group(512, 32, fps)
        self.encoder = Encoder(s.encoder_dims)
        self.reduce_dim = nn.Linear(s.encoder_dims, s.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, s.width))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, s.width))
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, s.width))
        self.blocks = TransformerEncoder(s.width, s.depth, heads, s.mlp_hidden)
        self.norm = nn.LayerNorm(s.width)

    def forward(self, pts: torch.Tensor) -> torch.Tensor:
        neighborhood, center = self.group_divider(pts)
        group_input_tokens = self.reduce_dim(self.encoder(neighborhood))
        b = group_input_tokens.shape[0]
        x = torch.cat((self.cls_token.expand(b, -1, -1), group_input_tokens), dim=1)
        pos = torch.cat((self.cls_pos.expand(b, -1, -1), self.pos_embed(center)), dim=1)
        x = self.norm(self.blocks(x, pos))
        return torch.cat([x[:, 0], x[:, 1:].max(1)[0]], dim=-1)


class UlipPointBranch(nn.Module):
    """``encode_pc``: ``point_encoder(pc) @ pc_projection``."""

    def __init__(self, s: PointShapes, heads: int, fps: Callable[[torch.Tensor, int], torch.Tensor]):
        super().__init__()
        self.point_encoder = PointTransformer(s, heads, fps)
        self.pc_projection = nn.Parameter(torch.empty(2 * s.width, s.embed_dim))

    def forward(self, pc: torch.Tensor) -> torch.Tensor:
        return self.point_encoder(pc) @ self.pc_projection


# ---- the benchmark ---------------------------------------------------------------------------------------------
def random_state(s: PointShapes, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors in ULIP's layout (BatchNorm running variances positive)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in expected_shapes(s).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        else:
            fan_in = shape[1] if len(shape) > 1 and key != "pc_projection" else shape[0]
            state[key] = torch.randn(shape, generator=g) / math.sqrt(max(fan_in, 1))
    return state


def chair_like_clouds(batch: int, n: int, seed: int = 0) -> torch.Tensor:
    """Points on the faces of a few boxes per cloud, pc_normalize'd: [batch, n, 3]."""
    g = torch.Generator().manual_seed(seed)
    boxes = torch.rand(batch, 6, 2, 3, generator=g) * 2 - 1
    lo, hi = boxes.min(dim=2).values, boxes.max(dim=2).values
    which = torch.randint(0, 6, (batch, n), generator=g)
    rows = torch.arange(batch)[:, None]
    u = torch.rand(batch, n, 3, generator=g)
    axis = torch.randint(0, 3, (batch, n), generator=g)
    u.scatter_(2, axis[..., None], torch.randint(0, 2, (batch, n, 1), generator=g).float())  # onto a face
    pts = lo[rows, which] + u * (hi - lo)[rows, which]
    pts = pts - pts.mean(dim=1, keepdim=True)
    return pts / pts.norm(dim=-1).amax(dim=1)[:, None, None]


def best_time(fn: Callable[[], object], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--points", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--stand-ins", type=Path, default=STAND_INS,
                        help="folder holding the fixture's pointnet2_ops stand-in (else a batched emulation)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fps, fps_name = load_fps(args.stand_ins)
    state = random_state(FULL)
    reference = UlipPointBranch(FULL, 6, fps).eval()
    reference.load_state_dict(state, strict=True)
    converted = from_ulip({f"module.{k}": v for k, v in state.items()}, {"npoints": args.points}, towers=False)
    encoder = converted.encoder("pointcloud")
    clouds = chair_like_clouds(args.batch, args.points)

    with torch.inference_mode():
        ours, theirs = encoder.features(clouds)[:, 0], reference(clouds)
        diff = float((ours - theirs).abs().max())
        times = {"reference": math.inf, "converted": math.inf}
        for _ in range(args.repeats):  # interleaved: both paths see the same load
            times["reference"] = min(times["reference"], best_time(lambda: reference(clouds), 1))
            times["converted"] = min(times["converted"], best_time(lambda: encoder.features(clouds), 1))
    rate = {k: args.batch / v for k, v in times.items()}
    print(f"ULIP-1 Point-BERT, {args.batch} clouds × {args.points} points, torch {torch.__version__}, "
          f"{args.threads} threads, {platform.processor() or platform.machine()}")
    print(f"reference FPS: {fps_name}; max |converted − reference| over pc_embed: {diff:.2e}")
    print("| path | seconds / batch | clouds / s |\n|---|---|---|")
    for name in ("reference", "converted"):
        print(f"| {name} | {times[name]:.2f} | {rate[name]:.3f} |")
    print(f"converted / reference throughput: {rate['converted'] / rate['reference']:.2f}×")


if __name__ == "__main__":
    main()
