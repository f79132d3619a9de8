"""Point-BERT groups: batched farthest-point sampling with each centre's k nearest points (the stem that embeds
them is :mod:`.point_stem`).

Everything works on a batch of equal-sized clouds ``[B, N, 3]`` with torch ops on CPU and GPU; the only Python
loop is over the ``S`` sampling iterations, each vectorised over the batch and the points.

**Chunks.** Each cloud is put in Morton (z-curve) order — one flat integer sort for the whole batch — and cut
into chunks of ``CHUNK`` consecutive points (:class:`ChunkedClouds`). Points near each other on a z-curve are
near each other in space, so each chunk has a small bounding box, and the squared distance from a point to a
chunk's box is a lower bound for its distance to every point in the chunk.

**Farthest-point sampling.** Iteration ``i`` takes as centre ``i`` the point farthest from the centres so far,
then lowers every point's squared distance to its nearest centre. A chunk whose box is no nearer to the new
centre than the chunk's largest such distance cannot change, so on CPU only the other chunks are gathered and
updated — after the first few iterations a handful per cloud instead of all N points (:func:`_fps_pruned`).
On GPU every point is updated in one pass, without the gathers and host syncs (:func:`_fps_dense`); both give
the same centres. The first centre is the point farthest from the cloud's centroid and ties go to the first
point in Morton order, so the chosen points do not depend on the order the cloud's points come in (up to
exactly equal distances). ``start`` picks another first centre by index, e.g. to compare with open3d's
``farthest_point_down_sample(n, start_index)``, which picks the same points.

**k nearest neighbours.** Iteration ``i`` also updates the chunks within ``KNN_RADIUS_MARGIN`` times the
previous centre's squared k-th distance (the k-th distance changes little from one centre to the next), and
takes centre ``i``'s k nearest among all the points it has just measured. They are the true k nearest when the
k-th is no farther than the box of every chunk left out; the rare centres where that does not hold are
finished by a search over every chunk whose box is nearer than that k-th distance (:func:`_knn_within`). The
neighbours are exact, nearest first (up to float rounding of equal distances).

**Backends** (:data:`FPS_BACKENDS`). On CPU, ``order_free`` float32 clouds go by default to
:mod:`.point_groups_quick` — fpsample's QuickFPS and scipy's KD-tree, a cloud per thread, several times less
work per cloud than this module's sampler, and the same centres up to float rounding of nearly equal
distances. This module's sampler is the exact path: the ``pointnet2`` rule (bit for bit the kernel's picks,
for converter parity), a given ``start`` or ``pruned``, GPUs, and the fallback where fpsample or scipy is not
installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .point_groups_quick import quick_fps_available, quick_fps_knn, require_quick_fps
from .pointnet2_order import Pointnet2Order, kernel_sum

CHUNK = 32
"""Points per chunk: the unit of work skipped or done by the pruned search."""
MORTON_BITS = 10
"""Bits per axis of the z-curve grid (1024³ cells over each cloud's bounding box)."""
KNN_RADIUS_MARGIN = 1.5
"""A centre's k nearest are first looked for among the chunks within this many times the previous centre's
squared k-th distance (the k-th distance changes little from centre to centre)."""
ROW_BLOCK_ELEMENTS = 1 << 22
"""About the most floats :func:`_knn_within` holds at once per intermediate (16 MiB)."""


@dataclass
class ChunkedClouds:
    """A batch of clouds in Morton order, cut into ``M`` chunks of ``C`` points.

    ``axes`` [3, B · M, C]: x, y and z apart, so the arithmetic on gathered chunks runs along long rows (the
    tail of a cloud's last chunk repeats its last point); ``order`` [B, M · C] the original index of each
    position; ``mid``/``half`` [B, 3, M] each chunk's box centre and half extent; ``n_points`` N (positions ≥ N
    are the repeats).
    """

    axes: torch.Tensor
    order: torch.Tensor
    mid: torch.Tensor
    half: torch.Tensor
    n_points: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """(B, M, C)."""
        b, m = self.mid.shape[0], self.mid.shape[2]
        return b, m, self.axes.shape[2]

    def flat(self) -> torch.Tensor:
        """The real points in Morton order, [B, N, 3]."""
        b, m, c = self.shape
        return self.axes.view(3, b, m * c).permute(1, 2, 0)[:, : self.n_points]

    def point(self, cloud: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """Coordinates [R, 3] of Morton ``position`` [R] in clouds ``cloud`` [R]."""
        m, c = self.shape[1:]
        return self.axes[:, cloud * m + position // c, position % c].T

    def distance2(self, query: torch.Tensor, flat_chunk: torch.Tensor) -> torch.Tensor:
        """Squared distances from ``query`` [R, 3] to the points of W chunks each, ``flat_chunk`` [R · W] rows of
        ``axes`` (cloud · M + chunk) → [R, W · C]."""
        r = query.shape[0]
        # one axis at a time: each gather is a block copy and each subtraction runs along rows of W · C
        d = None
        for axis in range(3):
            diff = self.axes[axis].index_select(0, flat_chunk).view(r, -1).sub_(query[:, axis, None])
            d = diff.square_() if d is None else d.addcmul_(diff, diff)
        return d

    def box_distance2(self, query: torch.Tensor, cloud: torch.Tensor | None = None) -> torch.Tensor:
        """Squared distance from ``query`` [R, 3] to every chunk box of its cloud → [R, M]. ``cloud`` [R] names
        the clouds; None means one query per cloud (R = B)."""
        mid, half = (self.mid, self.half) if cloud is None else (self.mid[cloud], self.half[cloud])
        return (query[:, :, None] - mid).abs_().sub_(half).clamp_(min=0).square_().sum(1)


def morton_codes(points: torch.Tensor) -> torch.Tensor:
    """Z-curve codes of ``points`` [B, N, 3] on a 2^10 grid over each cloud's bounding box → int64 [B, N]."""
    lo = points.amin(dim=1, keepdim=True)
    span = (points.amax(dim=1, keepdim=True) - lo).clamp(min=torch.finfo(points.dtype).tiny)
    cells = ((points - lo) / span * ((1 << MORTON_BITS) - 1)).round().long()
    code = torch.zeros(points.shape[:2], dtype=torch.long, device=points.device)
    for axis in range(3):
        code |= _spread_bits(cells[..., axis]) << axis
    return code


def _spread_bits(x: torch.Tensor) -> torch.Tensor:
    """Put the 10 low bits of ``x`` three bits apart (bit b → bit 3b)."""
    x = (x | (x << 16)) & 0x030000FF
    x = (x | (x << 8)) & 0x0300F00F
    x = (x | (x << 4)) & 0x030C30C3
    return (x | (x << 2)) & 0x09249249


def chunk_clouds(points: torch.Tensor, chunk: int = CHUNK) -> ChunkedClouds:
    """Sort each cloud of ``points`` [B, N, 3] along the z-curve and cut it into chunks of ``chunk`` points."""
    b, n, _ = points.shape
    if n == 0:
        raise ValueError("cannot chunk empty clouds")
    cloud = torch.arange(b, device=points.device)[:, None]
    # one flat sort of (cloud, code) keys: several times faster on CPU than a sort per row
    keys = (cloud << (3 * MORTON_BITS)) | morton_codes(points)
    order = keys.flatten().argsort().view(b, n) - cloud * n
    m = -(-n // chunk)
    if m * chunk > n:
        order = torch.cat([order, order[:, -1:].expand(b, m * chunk - n)], dim=1)
    axes = points.gather(1, order[..., None].expand(-1, -1, 3)).permute(2, 0, 1).reshape(3, b, m, chunk)
    lo, hi = axes.amin(dim=3).transpose(0, 1), axes.amax(dim=3).transpose(0, 1)  # [B, 3, M]
    return ChunkedClouds(axes.reshape(3, b * m, chunk), order, (lo + hi) / 2, (hi - lo) / 2, n)


# ---- farthest-point sampling and k nearest neighbours -------------------------------------------------------


FPS_RULES = ("order_free", "pointnet2")
"""``order_free``: start at the point farthest from the centroid, ties to the first in Morton order.
``pointnet2``: Point-BERT's CUDA kernel (ULIP) — start at index 0, skip near-origin points, its tie order
(:mod:`.pointnet2_order`)."""
FPS_BACKENDS = ("auto", "quick", "torch")
"""``torch``: this module's batched sampler, exact to the rule (the only one for ``pointnet2``, a given
``start`` or ``pruned``). ``quick``: fpsample's QuickFPS and scipy's KD-tree, a cloud per thread
(:mod:`.point_groups_quick`; ``order_free`` on float32 CPU clouds): the same centres up to float rounding of
nearly equal distances, neighbours ties in any order. ``auto``: ``quick`` where it applies and is installed,
else ``torch``."""


def farthest_point_sample(points: torch.Tensor, n_samples: int, start: torch.Tensor | None = None,
                          pruned: bool | None = None, rule: str = "order_free", backend: str = "auto"
                          ) -> torch.Tensor:
    """Farthest-point sampling of ``points`` [B, N, 3] → indices [B, n_samples] into N, in selection order.

    ``start`` [B]: the first index per cloud; default the point farthest from the cloud's centroid
    (``rule="order_free"``) or index 0 (``rule="pointnet2"``). ``pruned``: update only the chunks the new
    centre can reach (default on CPU) or every point (default elsewhere); both give the same indices.
    ``rule``: one of :data:`FPS_RULES`; ``backend``: one of :data:`FPS_BACKENDS`.
    """
    return fps_knn(points, n_samples, 0, start, pruned, rule, backend)[0]


def fps_knn(points: torch.Tensor, n_samples: int, k: int, start: torch.Tensor | None = None,
            pruned: bool | None = None, rule: str = "order_free", backend: str = "auto"
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`farthest_point_sample` plus each centre's ``k`` nearest points (with the torch backend, from the
    same distance updates).

    ``points`` [B, N, 3] → (centre indices [B, S], neighbour indices [B, S, k], nearest first) into N.
    """
    if rule not in FPS_RULES:
        raise ValueError(f"unknown farthest-point sampling rule '{rule}' (choose from {', '.join(FPS_RULES)})")
    if backend not in FPS_BACKENDS:
        raise ValueError(f"unknown farthest-point sampling backend '{backend}' (choose from "
                         f"{', '.join(FPS_BACKENDS)})")
    b, n, _ = points.shape
    if not 0 < n_samples <= n:
        raise ValueError(f"cannot pick {n_samples} of {n} points")
    if not 0 <= k <= n:
        raise ValueError(f"cannot find {k} neighbours among {n} points")
    quick_applies = (rule == "order_free" and start is None and pruned is None and points.device.type == "cpu"
                     and points.dtype == torch.float32)
    if backend == "quick":
        if not quick_applies:
            raise ValueError("the quick backend needs float32 CPU clouds sampled by the order_free rule from its own "
                             "start, without pruned")
        require_quick_fps()
    if backend != "torch" and quick_applies and quick_fps_available():
        with torch.no_grad():
            centres, neighbours, ok = quick_fps_knn(points.detach().contiguous(), n_samples, k)
        if not bool(ok.all()):  # the clouds QuickFPS cannot start right: the torch sampler's, same rule
            rest = (~ok).nonzero().flatten()
            centres[rest], neighbours[rest] = fps_knn(points[rest], n_samples, k, backend="torch")
        return centres, neighbours
    with torch.no_grad():
        chunks = chunk_clouds(points)
        order = None
        if rule == "pointnet2":
            order = Pointnet2Order.for_positions(points, chunks.order)
            if start is None:
                start = torch.zeros(b, dtype=torch.long, device=points.device)
        position = _first_positions(points, chunks, start)
        prune = points.device.type == "cpu" if pruned is None else pruned
        centres, neighbours = (_fps_pruned if prune else _fps_dense)(chunks, n_samples, k, position, order)
        rows = torch.arange(b, device=points.device)[:, None]
        return chunks.order[rows, centres], chunks.order[rows[..., None], neighbours]


def _first_positions(points: torch.Tensor, chunks: ChunkedClouds, start: torch.Tensor | None) -> torch.Tensor:
    """Morton positions [B] of the first centres: ``start`` (original indices) or the farthest from the centroid."""
    if start is None:
        return (chunks.flat() - points.mean(dim=1, keepdim=True)).square().sum(-1).argmax(dim=1)
    start = start.to(device=points.device, dtype=torch.long)
    if start.shape != (points.shape[0],) or bool(((start < 0) | (start >= points.shape[1])).any()):
        raise ValueError(f"start must hold one index in [0, {points.shape[1]}) per cloud, got {start.tolist()}")
    # the first Morton position holding that original index (later ones are the padding repeats)
    return (chunks.order == start[:, None]).int().argmax(dim=1)


def _fps_dense(chunks: ChunkedClouds, n_samples: int, k: int, position: torch.Tensor,
               order: Pointnet2Order | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every point's distance updated each iteration. [B] first positions → Morton positions of the centres
    [B, S] and of their k nearest [B, S, k]. ``order``: the pointnet2 kernel's exclusions and ties."""
    flat = chunks.flat()
    b, n = flat.shape[:2]
    rows = torch.arange(b, device=flat.device)
    dist = torch.full(flat.shape[:2], torch.inf, dtype=flat.dtype, device=flat.device)
    if order is not None:  # never a centre: −inf stays below every distance
        dist.masked_fill_(order.excluded[:, :n], -torch.inf)
    centres = torch.empty(n_samples, b, dtype=torch.long, device=flat.device)
    neighbours = torch.empty(n_samples, b, k, dtype=torch.long, device=flat.device)
    for i in range(n_samples):
        centres[i] = position
        diff = flat - flat[rows, position][:, None]
        d = diff.square().sum(-1) if order is None else kernel_sum(diff.square())  # [B, N]
        if k:
            neighbours[i] = d.topk(k, dim=1, largest=False).indices
        torch.minimum(dist, d, out=dist)
        # the first of equal maxima, as in the pruned path, or the kernel's tie order
        position = dist.argmax(dim=1) if order is None else order.pick(dist)
    return centres.T, neighbours.transpose(0, 1)


def _fps_pruned(chunks: ChunkedClouds, n_samples: int, k: int, position: torch.Tensor,
                order: Pointnet2Order | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Only chunks whose box is nearer the new centre than their largest distance are updated; the same
    result as :func:`_fps_dense`.

    The next centre comes from per-chunk maxima: the chunk with the largest (first of equals), then its first
    point with that distance. With ``k``, the chunks within ``KNN_RADIUS_MARGIN`` × the previous centre's
    squared k-th distance are updated too, and the centre's k nearest are taken among all the points updated;
    where a chunk left out may hold a nearer point, :func:`_knn_within` finishes the search. With ``order``
    (the pointnet2 kernel's rules) excluded points hold −inf and ties among the chunks holding the maximum go
    by the kernel's rank.
    """
    b, m, c = chunks.shape
    device, dtype = chunks.axes.device, chunks.axes.dtype
    offsets = torch.arange(b, device=device) * m
    # x, y, z and the distance to the nearest centre of each chunk, side by side: one gather per iteration
    table = torch.cat([chunks.axes.transpose(0, 1), torch.full((b * m, 1, c), torch.inf, dtype=dtype,
                                                               device=device)], dim=1)  # [B · M, 4, C]
    dist = table[:, 3]
    if order is not None:  # never a centre: −inf stays below every distance and no chunk box beats it
        dist.masked_fill_(order.excluded.view(b * m, c), -torch.inf)
    chunk_max = torch.full((b, m), torch.inf, dtype=dtype, device=device)
    flat_chunk, lane = position // c + offsets, position % c  # the centre's row in ``table`` and its lane
    radius2 = torch.full((b, 1), torch.inf, dtype=dtype, device=device)
    min_width = max(1, -(-k // c))
    rows, lanes, neighbours, kth, exact = [], [], [], [], []
    for _ in range(n_samples):
        rows.append(flat_chunk)
        lanes.append(lane)
        centre = table[flat_chunk, :3, lane]  # [B, 3]
        bound = chunks.box_distance2(centre)  # [B, M]
        take = bound < chunk_max  # the chunks this centre can change
        if k:
            take |= bound <= radius2
        width = max(int(take.sum(dim=1).max()), min_width)
        # each cloud's chunks to take, then the nearest others (updating those changes nothing); one more
        # gives the nearest chunk left out
        priority, sel = torch.where(take, torch.inf, -bound).topk(min(width + 1, m), dim=1)
        sel = sel[:, :width]  # [B, W]
        flat_sel = (sel + offsets[:, None]).flatten()
        g = table.index_select(0, flat_sel).view(b, width, 4, c)
        d = None
        for axis in range(3):
            diff = g[:, :, axis] - centre[:, axis, None, None]
            if d is None:
                d = diff.square_()  # [B, W, C]
            else:  # the kernel rounds each product (no fused multiply-add): exact ties must stay ties
                d = d.addcmul_(diff, diff) if order is None else d.add_(diff.square_())
        nearest = torch.minimum(g[:, :, 3], d)
        dist.index_copy_(0, flat_sel, nearest.view(-1, c))
        chunk_max.view(-1).index_copy_(0, flat_sel, nearest.amax(dim=2).flatten())
        if k:
            d = d.view(b, -1)
            if m * c > chunks.n_points:  # the repeats that pad the last chunk
                d = d.masked_fill((sel[..., None] * c + torch.arange(c, device=device)).view(b, -1)
                                  >= chunks.n_points, torch.inf)
            near, j = d.topk(k, dim=1, largest=False)
            neighbours.append((sel.gather(1, j // c), j % c))  # chunk and lane
            kth.append(near[:, -1])
            exact.append(near[:, -1] <= -priority[:, width] if width < m else torch.ones_like(take[:, 0]))
            radius2 = near[:, -1:] * KNN_RADIUS_MARGIN
        if order is None:
            flat_chunk = chunk_max.argmax(dim=1) + offsets
            lane = dist.index_select(0, flat_chunk).argmax(dim=1)
        else:
            flat_chunk, lane = order.pick_chunked(chunk_max, dist, offsets)
    centres = (torch.stack(rows, dim=1) - offsets[:, None]) * c + torch.stack(lanes, dim=1)  # [B, S]
    if not k:
        return centres, torch.empty(b, n_samples, 0, dtype=torch.long, device=device)
    chunk_of, lane_of = zip(*neighbours)
    neighbours = torch.stack(chunk_of, dim=1) * c + torch.stack(lane_of, dim=1)  # [B, S, k]
    kth, exact = torch.stack(kth, dim=1), torch.stack(exact, dim=1)
    if not bool(exact.all()):
        cloud, index = (~exact).nonzero(as_tuple=True)
        neighbours[cloud, index] = _knn_within(chunks, cloud, centres[cloud, index], kth[cloud, index], k)
    return centres, neighbours


def _knn_within(chunks: ChunkedClouds, cloud: torch.Tensor, position: torch.Tensor, radius2: torch.Tensor,
                k: int) -> torch.Tensor:
    """Exact k nearest of the points at Morton ``position`` [R] of clouds ``cloud`` [R], given that at least k
    points lie within squared distance ``radius2`` [R] of each: only chunks with a box that near are searched.
    → Morton positions [R, k], nearest first."""
    m, c = chunks.shape[1:]
    lane = torch.arange(c, device=cloud.device)
    out = torch.empty(len(cloud), k, dtype=torch.long, device=cloud.device)
    block = max(1, ROW_BLOCK_ELEMENTS // (3 * m))
    for start in range(0, len(cloud), block):
        rows = slice(start, start + block)
        q = chunks.point(cloud[rows], position[rows])  # [r, 3]
        slack = radius2[rows, None] - chunks.box_distance2(q, cloud[rows])  # [r, M]
        width = max(int((slack >= 0).sum(dim=1).max()), -(-k // c))
        sel = slack.topk(width, dim=1).indices  # [r, W]
        d = chunks.distance2(q, (sel + cloud[rows, None] * m).flatten())  # [r, W · C]
        pos = (sel[..., None] * c + lane).view(len(q), -1)
        d = d.masked_fill(pos >= chunks.n_points, torch.inf)
        out[rows] = pos.gather(1, d.topk(k, dim=1, largest=False).indices)
    return out


# ---- grouping --------------------------------------------------------------------------------------------------


def group_points(clouds: torch.Tensor, n_groups: int, group_size: int,
                 rule: str = "order_free") -> tuple[torch.Tensor, torch.Tensor]:
    """Point-BERT grouping: ``clouds`` [B, N, 3 + E] → (groups [B, G, K, 3 + E], centres [B, G, 3]).

    Centres are farthest-point samples (``rule``: one of :data:`FPS_RULES`); each group holds the K nearest
    points of its centre (nearest first), coordinates relative to the centre, extra channels (colour, normal)
    as they are. Indices are found in
    float32 without gradients; the gathered values keep their dtype and gradient.
    """
    b = clouds.shape[0]
    with torch.no_grad(), torch.autocast(clouds.device.type, enabled=False):
        xyz = clouds[..., :3].float()
        centre_idx, neighbours = fps_knn(xyz, n_groups, group_size, rule=rule)  # [B, G], [B, G, K]
    rows = torch.arange(b, device=clouds.device)[:, None, None]
    groups = clouds[rows, neighbours]  # [B, G, K, 3 + E]
    centres = clouds[rows[:, :, 0], centre_idx][..., :3]
    groups = torch.cat([groups[..., :3] - centres[:, :, None], groups[..., 3:]], dim=-1)
    return groups, centres
