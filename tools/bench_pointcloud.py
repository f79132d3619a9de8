"""Point-cloud tokenisation throughput: OmniEmbed's FPS + kNN against open3d, on the same number of cores.

Each cloud has 8,192 points sampled on a mesh surface (as ULIP's data are) and is tokenised into 512
farthest-point centres with their 32 nearest neighbours. The peer is open3d's ``farthest_point_down_sample``
plus a ``KDTreeFlann`` query per centre; the project's path is :func:`omniembed.modalities.point_groups.fps_knn`
on batches, with each of its backends (``--backends``): ``quick`` (the CPU default: fpsample's QuickFPS and
scipy's cKDTree, a cloud per thread) and ``torch`` (the batched torch sampler, the exact path kept for converter
parity). All start from the point farthest from the centroid, and on the first cloud each backend's centres and
neighbour distances are checked to agree with open3d's before anything is timed. Each figure is the best of
``--repeats`` runs, the paths interleaved so that all see the same machine load. Beside the throughput, each
path's CPU milliseconds per cloud (OmniEmbed's process, all threads; open3d's worker processes): on a machine
shared with other jobs the wall-clock ratio swings with their load, the CPU-time ratio much less.

Equal cores: OmniEmbed runs on ``--threads`` threads (default: torch's own count; the quick backend's thread
pool has as many) and open3d, whose calls here are single-threaded, gets a process pool of the same size
(started and warmed before timing), each worker taking an equal share of the clouds. ``--threads 1`` compares
one core against one core.

    .venv/bin/python tools/bench_pointcloud.py [--clouds 64] [--batch 32 64] [--threads 2] [--backends quick torch]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import multiprocessing.pool
import os
import resource
import shlex
import sys
import time
from typing import Callable

import numpy as np
import open3d as o3d
import torch

from omniembed.modalities.point_groups import farthest_point_sample, fps_knn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_imagebind import cpu_model  # noqa: E402


def surface_clouds(count: int, n_points: int, seed: int = 0) -> np.ndarray:
    """``count`` clouds [count, n_points, 3] sampled on open3d's primitive meshes, each in the unit sphere."""
    meshes = [o3d.geometry.TriangleMesh.create_torus(), o3d.geometry.TriangleMesh.create_box(1, 2, 0.3),
              o3d.geometry.TriangleMesh.create_sphere(), o3d.geometry.TriangleMesh.create_cylinder(0.3, 2),
              o3d.geometry.TriangleMesh.create_cone(), o3d.geometry.TriangleMesh.create_mobius(),
              o3d.geometry.TriangleMesh.create_arrow(), o3d.geometry.TriangleMesh.create_octahedron()]
    clouds = []
    for i in range(count):
        o3d.utility.random.seed(seed + i)
        xyz = np.asarray(meshes[i % len(meshes)].sample_points_uniformly(n_points).points)
        xyz = xyz - xyz.mean(axis=0)
        clouds.append(xyz / np.sqrt((xyz ** 2).sum(axis=1).max()))
    return np.stack(clouds)


def open3d_tokenise(clouds: np.ndarray, n_groups: int, group_size: int, knn: bool) -> list[np.ndarray]:
    """Per cloud: FPS from the point farthest from the centroid, then a KD-tree query per centre."""
    out = []
    for xyz in clouds:
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
        start = int(((xyz - xyz.mean(axis=0)) ** 2).sum(axis=1).argmax())
        centres = np.asarray(cloud.farthest_point_down_sample(n_groups, start_index=start).points)
        if knn:
            tree = o3d.geometry.KDTreeFlann(cloud)
            out.append(np.stack([np.asarray(tree.search_knn_vector_3d(c, group_size)[1]) for c in centres]))
        else:
            out.append(centres)
    return out


_POOL_CLOUDS: np.ndarray | None = None
"""The clouds the pool's workers tokenise, set before the pool forks so that no cloud is pickled per call."""


def _open3d_chunk(start: int, stop: int, n_groups: int, group_size: int, knn: bool) -> float:
    """Tokenise pool clouds ``start:stop`` → the CPU seconds this worker spent."""
    assert _POOL_CLOUDS is not None, "set _POOL_CLOUDS before forking the pool"
    cpu = time.process_time()
    open3d_tokenise(_POOL_CLOUDS[start:stop], n_groups, group_size, knn)
    return time.process_time() - cpu


def open3d_pool_tokenise(pool: multiprocessing.pool.Pool, count: int, n_groups: int, group_size: int, knn: bool,
                         workers: int) -> float:
    """:func:`open3d_tokenise` over the first ``count`` pool clouds, split into ``workers`` equal chunks, one per
    pool process: open3d on as many cores as OmniEmbed gets. Like :func:`omniembed_tokenise`, results are dropped
    where they are made; only the workers' CPU seconds come back."""
    bounds = np.linspace(0, count, workers + 1).astype(int)
    return sum(pool.starmap(_open3d_chunk, [(int(a), int(b), n_groups, group_size, knn)
                                            for a, b in zip(bounds, bounds[1:])]))


def omniembed_tokenise(clouds: torch.Tensor, n_groups: int, group_size: int, knn: bool, batch: int,
                       backend: str) -> None:
    for start in range(0, len(clouds), batch):
        if knn:
            fps_knn(clouds[start:start + batch], n_groups, group_size, backend=backend)
        else:
            farthest_point_sample(clouds[start:start + batch], n_groups, backend=backend)


def check_agreement(xyz: np.ndarray, n_groups: int, group_size: int, backend: str) -> str:
    """Same centres (as a set) and the same neighbour distances on one cloud, or a line saying where not. The
    cloud is float32, as the model gives it; open3d measures it in float64."""
    xyz = xyz.astype(np.float32).astype(np.float64)
    centres, neighbours = fps_knn(torch.from_numpy(xyz).float()[None], n_groups, group_size, backend=backend)
    theirs = open3d_tokenise(xyz[None], n_groups, group_size, knn=False)[0]
    if not np.array_equal(np.sort(xyz[centres[0].numpy()], axis=0), np.sort(theirs, axis=0)):
        return f"{backend}: centres DIFFER from open3d's"
    tree = o3d.geometry.KDTreeFlann(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz)))
    for c, row in zip(centres[0].tolist(), neighbours[0].numpy()):
        _, _, d2 = tree.search_knn_vector_3d(xyz[c], group_size)
        if not np.allclose(np.sort(((xyz[row] - xyz[c]) ** 2).sum(axis=1)), np.asarray(d2), atol=1e-12):
            return f"{backend}: neighbours DIFFER from open3d's"
    return f"{backend}: same centres and neighbour distances as open3d"


def process_cpu_seconds() -> float:
    """CPU seconds of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def best_rate(runs: dict[str, Callable[[], float | None]], count: int, repeats: int
              ) -> tuple[dict[str, float], dict[str, float]]:
    """clouds/s of each run and its CPU milliseconds per cloud (this process's plus what the run reports from
    its worker processes): each the best of ``repeats``, the runs interleaved. On a shared machine the CPU
    time is the steadier measure of work: it does not count the time other jobs hold the cores."""
    best = {name: 0.0 for name in runs}
    cpu_ms = {name: math.inf for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            cpu, start = process_cpu_seconds(), time.perf_counter()
            elsewhere = run() or 0.0
            best[name] = max(best[name], count / (time.perf_counter() - start))
            cpu_ms[name] = min(cpu_ms[name], (process_cpu_seconds() - cpu + elsewhere) / count * 1e3)
    return best, cpu_ms




def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clouds", type=int, default=64)
    parser.add_argument("--points", type=int, default=8192)
    parser.add_argument("--groups", type=int, default=512)
    parser.add_argument("--group-size", type=int, default=32)
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads and open3d worker processes (default: torch's own thread count)")
    parser.add_argument("--backends", nargs="+", default=["quick", "torch"], choices=["quick", "torch"])
    args = parser.parse_args(argv)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)

    clouds = surface_clouds(args.clouds, args.points)
    tensor = torch.from_numpy(clouds).float()
    agreement = "; ".join(check_agreement(clouds[0], args.groups, args.group_size, b) for b in args.backends)
    # fork: the workers inherit open3d and the clouds; the warm-up call starts them all before timing.
    global _POOL_CLOUDS
    _POOL_CLOUDS = clouds
    pool = multiprocessing.get_context("fork").Pool(threads)
    open3d_pool_tokenise(pool, threads, args.groups, args.group_size, True, threads)
    runs: dict[str, Callable[[], float | None]] = {}
    for knn in (False, True):
        runs[f"open3d/{knn}"] = lambda knn=knn: open3d_pool_tokenise(pool, args.clouds, args.groups,
                                                                     args.group_size, knn, threads)
        for backend in args.backends:
            for batch in args.batch:
                runs[f"{backend}{batch}/{knn}"] = lambda knn=knn, batch=batch, backend=backend: omniembed_tokenise(
                    tensor, args.groups, args.group_size, knn, batch, backend)
    for backend in args.backends:  # warm up
        omniembed_tokenise(tensor[: max(args.batch)], args.groups, args.group_size, True, max(args.batch), backend)
    rate, cpu_ms = best_rate(runs, args.clouds, args.repeats)
    pool.close()
    pool.join()

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}, "
          f"torch.get_num_threads() = {torch.get_num_threads()}; open3d {o3d.__version__}, a pool of {threads} "
          f"single-threaded processes")
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"task: {args.clouds} clouds × {args.points} points → {args.groups} centres × {args.group_size} "
          f"neighbours; best of {args.repeats}")
    print(f"on the first cloud: {agreement}")
    print()
    print("| path | FPS clouds/s | FPS + kNN clouds/s | vs open3d (FPS / FPS + kNN) | CPU ms per cloud (FPS / "
          "FPS + kNN) | vs open3d by CPU time |")
    print("|---|---|---|---|---|---|")
    print(f"| open3d, {threads} processes, one cloud at a time each | {rate['open3d/False']:.1f} | "
          f"{rate['open3d/True']:.1f} | 1.00× / 1.00× | {cpu_ms['open3d/False']:.2f} / {cpu_ms['open3d/True']:.2f} "
          f"| 1.00× / 1.00× |")
    for backend in args.backends:
        for batch in args.batch:
            key = f"{backend}{batch}"
            fps, both = rate[f"{key}/False"], rate[f"{key}/True"]
            print(f"| OmniEmbed {backend}, batches of {batch} | {fps:.1f} | {both:.1f} | "
                  f"{fps / rate['open3d/False']:.2f}× / {both / rate['open3d/True']:.2f}× | "
                  f"{cpu_ms[f'{key}/False']:.2f} / {cpu_ms[f'{key}/True']:.2f} | "
                  f"{cpu_ms['open3d/False'] / cpu_ms[f'{key}/False']:.2f}× / "
                  f"{cpu_ms['open3d/True'] / cpu_ms[f'{key}/True']:.2f}× |")


if __name__ == "__main__":
    main()
