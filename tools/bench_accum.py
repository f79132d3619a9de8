#!/usr/bin/env python
"""Peak memory and time of one training step at a fixed global batch, whole and in k micro-batches
(``train.accum_steps``), side by side; loss and gradient agreement with the whole batch beside them.

Each k runs in a fresh process (peak RSS only grows): a ViT image tower (160 px, 6 × 384) and a causal text tower
(4 × 256), both learning, built from omni-tiny with overrides; one warm-up-free step of ``--batch`` pairs through
:func:`omniembed.pretrain.accumulation.backward_step`; reported: peak RSS above the RSS before the step (CPU) or
peak allocated CUDA memory, the step's seconds, the loss and the largest gradient difference to k = 1.

    python tools/bench_accum.py                  # CPU, batch 32, k = 1, 2, 4, 8
    python tools/bench_accum.py --device cuda --batch 256
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def child(k: int, batch: int, device: str, grads_out: str) -> dict:
    import contextlib

    import torch

    import omniembed
    from omniembed.pretrain import trainer
    from omniembed.pretrain.accumulation import backward_step
    from omniembed.pretrain.config import ExperimentConfig
    from omniembed.pretrain.pair_plan import PairPlan

    config = ExperimentConfig.from_dict({
        "model": {"init": "omni-tiny", "frozen": []},
        "data": {"datasets": [{"name": "bench", "shards": ["unused.tar"], "pairs": [["image", "text"]]}],
                 "batch_size": batch, "streams": 1}})
    model = omniembed.create({"embed_dim": 256, "anchor": "image", "modalities": {
        "image": {"image_size": 160, "trunk": {"width": 384, "depth": 6, "heads": 6, "pre_norm": True}},
        "text": {"trunk": {"width": 256, "depth": 4, "heads": 4, "causal": True}}}}, seed=0)
    plan = PairPlan.from_config(config)
    trainer.configure_trainable(model, config, plan)
    dev = torch.device(device)
    module = trainer.TrainingModule(model, config, plan).to(dev).train()
    objective = trainer.PairObjective(config, plan)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, 160, 160, generator=g).to(dev)
    tokens = model.processor("text").collate([f"a photo of thing number {i}" for i in range(batch)]).to(dev)
    n = batch // k
    micro = [{"image": images[i * n:(i + 1) * n], "text": tokens[i * n:(i + 1) * n]} for i in range(k)]
    rss_before = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
    start = time.perf_counter()
    metrics = backward_step(module, objective, micro, 0, contextlib.nullcontext())
    seconds = time.perf_counter() - start
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    torch.save({name: p.grad.cpu() for name, p in module.named_parameters() if p.grad is not None}, grads_out)
    return {"k": k, "peak_mib": peak / 2**20, "seconds": seconds, "loss": float(metrics["loss"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--ks", default="1,2,4,8")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--grads", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.batch, args.device, args.grads)))
        return 0
    import tempfile

    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in map(int, args.ks.split(",")):
            grads = os.path.join(tmp, f"grads{k}.pt")
            out = subprocess.run([sys.executable, __file__, "--child", str(k), "--batch", str(args.batch),
                                  "--device", args.device, "--grads", grads], capture_output=True, text=True,
                                 check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            whole, this = torch.load(os.path.join(tmp, f"grads{rows[0]['k'] if rows else k}.pt")), torch.load(grads)
            row["max_grad_diff"] = max((whole[n] - this[n]).abs().max().item() for n in whole)
            rows.append(row)
    print(f"command: python tools/bench_accum.py {' '.join(argv or sys.argv[1:])}")
    print("| accum_steps k | micro-batch | peak memory MiB | vs k=1 | step s | loss | max grad diff vs k=1 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['k']} | {args.batch // r['k']} | {r['peak_mib']:.0f} | {r['peak_mib'] / rows[0]['peak_mib']:.2f} "
              f"| {r['seconds']:.2f} | {r['loss']:.6f} | {r['max_grad_diff']:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
