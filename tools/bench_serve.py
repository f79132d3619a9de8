"""The search server under load: ~50 concurrent clients on loopback for ~30 s, beside the CLI's single query.

    .venv/bin/python tools/bench_serve.py [--index IDX] [--clients 50] [--seconds 30] [--mix text=5,item=3,upload=2]

Without ``--index`` it builds a small mixed index (tiny model ``omni-tiny`` seed 0; 120 pictures, 40 tones,
8 point clouds, 4 captions) in a temporary folder. The server runs as its own process (``omniembed serve IDX``,
uvicorn, one worker), so the clients (asyncio + httpx in this process) do not share its interpreter. Each client
sends requests back to back, drawn from the mix — a text search, "more like this" on an indexed item, an upload of
a 0.5 s WAV — each asking for 24 results, until the time is up; the run then stops by itself (a hard limit of
``seconds + 60`` s ends it whatever happens). It reports latency p50/p99 and throughput per request kind and in
all, and any error (there should be none), beside:

* **CLI single query** — ``omniembed search IDX --text … --k 24`` as a fresh process: what a user waits for
  without the server (Python start, model load, one query); median of 3.
* **in-process single query** — ``Index.search`` on a loaded index, one at a time: the floor the server adds its
  HTTP, JSON and queueing to (p50 of 50).
* **server, one client** — text searches sent one at a time to the idle server before the load: what one user of
  the page waits for (p50 of 30).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

K = 24
TEXTS = ["a red square", "a picture of the number seven", "a low hum", "a blob of points", "grey noise",
         "the number three spoken", "a bright patch", "something round"]


def build_index(root: Path) -> Path:
    """A mixed index of generated files (the test suite's media writers) under ``root``."""
    import omniembed
    from omniembed.index import Index
    from test_index_build import write_image, write_ply, write_tone

    for sub in ("pictures", "tones", "shapes", "notes"):
        (root / "files" / sub).mkdir(parents=True, exist_ok=True)
    for i in range(120):
        write_image(root / "files" / "pictures" / f"pic{i}.png", i)
    for i in range(40):
        write_tone(root / "files" / "tones" / f"tone{i}.wav", 200 + 37 * i)
    for i in range(8):
        write_ply(root / "files" / "shapes" / f"cloud{i}.ply", i)
    for i, text in enumerate(TEXTS[:4]):
        (root / "files" / "notes" / f"note{i}.txt").write_text(text)
    model_dir = omniembed.create("omni-tiny", seed=0).save(root / "model")
    Index.build(model_dir, root / "index", [root / "files"], progress=False).close()
    return root / "index"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: Path, port: int) -> subprocess.Popen:
    exe = [sys.executable, "-m", "omniembed.cli", "serve", str(index), "--port", str(port)]
    return subprocess.Popen(exe, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_ready(url: str, server: subprocess.Popen, timeout: float = 120.0) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {server.stderr.read()}")
        try:
            return httpx.get(f"{url}/api/info", timeout=5).json()
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"the server at {url} did not answer within {timeout:.0f} s")


def cli_single_query(index: Path, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "omniembed.cli", "search", str(index), "--text", TEXTS[0], "--k",
                        str(K)], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def in_process_single_query(index_dir: Path, n: int = 50) -> float:
    from omniembed.index import Index

    index = Index.open(index_dir)
    index.search(TEXTS[0], k=K)  # loads the model
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        index.search(TEXTS[i % len(TEXTS)], k=K)
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 50))


def one_client(url: str, n: int) -> list[float]:
    import httpx

    times = []
    with httpx.Client(base_url=url, timeout=60.0) as http:
        for i in range(n):
            t0 = time.perf_counter()
            http.get("/api/search", params={"q": TEXTS[i % len(TEXTS)], "k": K}).raise_for_status()
            times.append(time.perf_counter() - t0)
    return times


async def load(url: str, clients: int, seconds: float, mix: dict[str, int], ids: list[int], wav: bytes,
               seed: int) -> dict[str, list]:
    """Run the clients; returns {kind: [latency s, ...]} and the errors under "errors"."""
    import httpx

    kinds = [k for k, w in mix.items() for _ in range(w)]
    results: dict[str, list] = {k: [] for k in mix} | {"errors": []}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(rng: random.Random, http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            kind = rng.choice(kinds)
            t0 = time.perf_counter()
            try:
                if kind == "text":
                    r = await http.get("/api/search", params={"q": rng.choice(TEXTS), "k": K})
                elif kind == "item":
                    r = await http.get(f"/api/search/item/{rng.choice(ids)}", params={"k": K})
                else:
                    r = await http.post("/api/search/upload", params={"k": K}, files={"file": ("q.wav", wav)})
                ok = r.status_code == 200 and len(r.json()["hits"]) == K
                detail = f"{kind}: HTTP {r.status_code} {r.text[:200]}"
            except httpx.HTTPError as exc:
                ok, detail = False, f"{kind}: {type(exc).__name__}: {exc}"
            (results[kind] if ok else results["errors"]).append(time.perf_counter() - t0 if ok else detail)

    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as http:
        await asyncio.gather(*(client(random.Random(seed + i), http) for i in range(clients)))
    return results


def parse_mix(text: str) -> dict[str, int]:
    mix = {k: int(v) for k, v in (part.split("=") for part in text.split(","))}
    unknown = set(mix) - {"text", "item", "upload"}
    if unknown:
        raise SystemExit(f"--mix: unknown request kinds {', '.join(sorted(unknown))} (text, item, upload)")
    return mix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=None, help="an index (default: build a small one)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--mix", default="text=5,item=3,upload=2", help="request kinds and weights")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    mix = parse_mix(args.mix)

    import torch

    from test_index_build import write_tone

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        t0 = time.perf_counter()
        index = args.index or build_index(Path(tmp))
        built = time.perf_counter() - t0
        wav = write_tone(Path(tmp) / "query.wav", 523.0).read_bytes()
        cli_s = cli_single_query(index)
        direct_s = in_process_single_query(index)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(index, port)
        try:
            info = wait_ready(url, server)
            import httpx

            hits = httpx.get(f"{url}/api/search", params={"q": "x", "k": min(200, info["count"])}).json()["hits"]
            ids = [h["id"] for h in hits]
            single = one_client(url, 30)
            t0 = time.perf_counter()
            results = asyncio.run(asyncio.wait_for(
                load(url, args.clients, args.seconds, mix, ids, wav, args.seed), timeout=args.seconds + 60))
            wall = time.perf_counter() - t0
        finally:
            server.terminate()
            server.wait(timeout=30)

    every = [t for k in mix for t in results[k]]
    print(f"\nbench_serve: {args.clients} clients × {args.seconds:.0f} s on loopback, mix {args.mix}, k={K}; index "
          f"{info['count']} items {info['by_modality']} ({'given' if args.index else f'built in {built:.0f} s'}), "
          f"model {info['model_name']}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, load average "
          f"{os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}, uvicorn 1 worker\n")
    print(f"| {'requests':<22} | {'n':>6} | {'req/s':>7} | {'p50 ms':>8} | {'p99 ms':>8} | {'p50 / CLI query':>15} |")
    print(f"|{'-' * 24}|{'-' * 8}|{'-' * 9}|{'-' * 10}|{'-' * 10}|{'-' * 17}|")
    for name, times in [*((k, results[k]) for k in mix), ("all", every)]:
        if not times:
            print(f"| {name:<22} | {0:>6} | {'–':>7} | {'–':>8} | {'–':>8} | {'–':>15} |")
            continue
        p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
        print(f"| {name:<22} | {len(times):>6} | {len(times) / wall:>7.1f} | {1000 * p50:>8.1f} | {1000 * p99:>8.1f} "
              f"| {p50 / cli_s:>15.3f} |")
    print(f"| {'server, one client':<22} | {len(single):>6} | {'':>7} | {1000 * np.percentile(single, 50):>8.1f} "
          f"| {1000 * np.percentile(single, 99):>8.1f} | {np.percentile(single, 50) / cli_s:>15.3f} |")
    print(f"| {'CLI single query':<22} | {3:>6} | {'':>7} | {1000 * cli_s:>8.0f} | {'':>8} | {1.0:>15.3f} |")
    print(f"| {'in-process query':<22} | {50:>6} | {'':>7} | {1000 * direct_s:>8.1f} | {'':>8} "
          f"| {direct_s / cli_s:>15.3f} |")
    print(f"\nerrors: {len(results['errors'])}")
    for line in results["errors"][:10]:
        print(f"  {line}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
