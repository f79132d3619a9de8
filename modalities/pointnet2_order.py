"""The choices of Point-BERT's CUDA farthest-point sampling kernel, for exact parity with ULIP / Point-BERT.

ULIP and Point-BERT sample group centres with Pointnet2_PyTorch's ``furthest_point_sampling_kernel``. Its
choices differ from OmniEmbed's order-free sampling in three ways that change which centres come out:

- the first centre is the point at **index 0** (so the result depends on point order);
- a point with ``x² + y² + z² ≤ 1e-3`` (float32, compared in double) is **never** a centre after the first:
  the kernel skips it without updating its distance;
- **ties** go neither to the lowest index nor to the first in Morton order. The kernel runs S = 2^⌊log2 N⌋
  threads (at most 512); thread t scans k = t, t + S, … keeping its lowest k on ties, and a tree reduction
  over the threads keeps the left slot on ties. Two tied threads meet at the level of their lowest differing
  bit, where the one with a 0 there wins: the thread with the smaller bit-reversed id wins.

:class:`Pointnet2Order` turns these into data the batched sampler (:mod:`.point_groups`) uses: a per-point
exclusion mask and a per-point tie rank (lower wins), both indexed like the sampler's Morton positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_THREADS = 512
"""Pointnet2_PyTorch's ``TOTAL_THREADS``: the kernel's block size cap."""
NEAR_ORIGIN = 1e-3
"""Squared norm at or below which the kernel skips a point (``if (mag <= 1e-3) continue;``)."""
PAD_RANK = torch.iinfo(torch.int64).max
"""The rank of the repeats that pad a cloud's last chunk: they lose every tie against the real point."""


def kernel_threads(n: int) -> int:
    """``opt_n_threads(n)``: the largest power of two ≤ n, capped at :data:`MAX_THREADS`."""
    return max(min(1 << (max(n, 1).bit_length() - 1), MAX_THREADS), 1)


def tie_ranks(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The kernel's preference among equally far points: int64 [n], lower wins.

    Point k belongs to thread t = k mod S and is that thread's (k div S)-th point; threads are preferred by
    their bit-reversed id, then a thread's points by index.
    """
    s = kernel_threads(n)
    bits = s.bit_length() - 1
    k = torch.arange(n, device=device)
    thread = k % s
    reversed_id = torch.zeros_like(thread)
    for b in range(bits):
        reversed_id |= ((thread >> b) & 1) << (bits - 1 - b)
    per_thread = -(-n // s)
    return reversed_id * per_thread + k // s


def near_origin(points: torch.Tensor) -> torch.Tensor:
    """The points the kernel never picks: ``points`` [B, N, 3] → bool [B, N]. The squared norm is summed in
    float32 left to right, as the kernel does, then compared in double."""
    p = points.float()
    mag = (p[..., 0] * p[..., 0] + p[..., 1] * p[..., 1]) + p[..., 2] * p[..., 2]
    return mag.double() <= NEAR_ORIGIN


def kernel_sum(squares: torch.Tensor) -> torch.Tensor:
    """(x² + y²) + z² in that order, each step rounded, as the kernel adds: [..., 3] → [...]."""
    return (squares[..., 0] + squares[..., 1]) + squares[..., 2]


@dataclass
class Pointnet2Order:
    """The kernel's rules for one batch, by Morton position (``[B, P]``, P = chunks · chunk size, positions
    ≥ N being the padding repeats): ``rank`` (lower wins a tie) and ``excluded`` (never a centre)."""

    rank: torch.Tensor
    excluded: torch.Tensor

    @classmethod
    def for_positions(cls, points: torch.Tensor, order: torch.Tensor) -> "Pointnet2Order":
        """``points`` [B, N, 3] in their own order; ``order`` [B, P] the original index at each Morton position."""
        n = points.shape[1]
        rank = tie_ranks(n, points.device)[order]
        rank[:, n:] = PAD_RANK
        excluded = near_origin(points).gather(1, order)
        return cls(rank, excluded)

    def pick(self, dist: torch.Tensor) -> torch.Tensor:
        """The kernel's next centre from each point's distance to the centres so far: ``dist`` [B, N] (−inf for
        excluded points) → Morton positions [B]. When every point is excluded the kernel returns index 0, which
        has rank 0: the same rule covers it."""
        best = dist.amax(dim=1, keepdim=True)
        return torch.where(dist == best, self.rank[:, : dist.shape[1]], PAD_RANK).argmin(dim=1)

    def pick_chunked(self, chunk_max: torch.Tensor, dist: torch.Tensor,
                     offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`pick` for the pruned sampler's chunked table: among the chunks holding the maximum distance
        (``chunk_max`` [B, M]; nearly always one), the point at that distance with the lowest rank. ``dist``
        [B · M, C] by chunk row; ``offsets`` [B] each cloud's first row. → (row [B], lane [B])."""
        b, c = chunk_max.shape[0], dist.shape[1]
        best = chunk_max.amax(dim=1, keepdim=True)
        tied = chunk_max == best
        width = int(tied.sum(dim=1).max())
        rows = tied.to(torch.uint8).topk(width, dim=1).indices + offsets[:, None]  # [B, W]: tied chunks first
        rank = self.rank.view(dist.shape)
        keys = torch.where(dist[rows] == best[:, :, None], rank[rows], PAD_RANK).view(b, -1)
        j = keys.argmin(dim=1)
        return rows.gather(1, (j // c)[:, None])[:, 0], j % c
