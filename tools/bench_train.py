#!/usr/bin/env python
"""Training throughput of one image–text step, OmniEmbed's trainer vs open_clip's, side by side in one run.

Both sides train a ViT-B/16-sized pair from random weights — image ViT-B/16 at 224 px, text 12 layers × 512,
shared dim 512, both towers learning — with a symmetric contrastive loss and AdamW, on the same batch of images and
captions:

* open_clip: ``create_model('ViT-B-16', pretrained=None)``, its ``ClipLoss``, AdamW (no decay on gains/biases, as
  its training script), gradient clipping at 1.0 (its ``--grad-clip-norm 1``), captions tokenised to its fixed
  77 tokens;
* OmniEmbed: :func:`omniembed.pretrain.trainer.train_step` — the trainer's own step (forward, per-pair loss at the
  text tower's logit scale, backward, gradient clipping at 1.0, AdamW) — on the same 77-token ids.

Like for like: the same precision (fp32, or bf16 autocast on both), the same AdamW implementation (open_clip's
optimizer is built with the ``fused`` setting the trainer's has), the same 77-token ids and images, and with
``--compile`` both models compiled (``torch.compile``: the trainer's ``train.compile``, open_clip's
``--torchcompile``). Ratios against open_clip are taken only between rows on those 77-token ids. One more row times
the trainer on its text collate's output, which drops all-padding columns (exact under the causal mask); it runs
fewer tokens, so it gets no ratio.

Each side runs in its own process, as each project's training program would: its own heap, its own threads. The
OmniEmbed side runs under the process settings its trainer's loop makes (``omniembed train``: freed memory kept in
the heap, denormals flushed, :mod:`omniembed.pretrain.heap`); open_clip's under the defaults its ``main`` leaves. A
row of its own runs the trainer's step under glibc's and torch's defaults, so that the settings' share is shown
apart. (In one shared process the sides reuse each other's freed pages: there the trainer's step under glibc's
defaults ran as fast as under its trainer's settings, bf16 5.75 s, against 7.09 s in a process of its own;
2026-12-07, one run each.) The parent alternates the steps between the processes (the CPU is shared; alternation
spreads any interference over all), after one warm-up step each, and times a plain square matmul in the same loop;
the median step time gives samples/s. Each side's FLOPs per step (forward and backward, as
``torch.utils.flop_counter`` counts the matmuls, convolutions and attention it runs; the optimiser's elementwise
update is not counted) over its median step time give its achieved rate, and that over the matmul's its model-FLOP
utilisation against what this machine attains.

    python tools/bench_train.py                 # CPU, fp32, batch 8
    python tools/bench_train.py --precision bf16 --device cuda --batch 64
    python tools/bench_train.py --compile       # both sides compiled (minutes of compilation first)
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import sys
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_imagebind import cpu_model, matmul, matmul_size, timed  # noqa: E402

CAPTIONS = ["a photo of a dog playing in the snow", "a red car parked beside an old brick building at dusk",
            "two people riding bicycles along a beach", "a bowl of soup", "a cat sleeping on a laptop keyboard",
            "an aerial view of a city with many tall buildings and a river", "a plate of pasta with tomato sauce",
            "a child flying a kite in a park on a windy day"]




@dataclass
class Side:
    """One side of the comparison: its training step on (images [B, 3, 224, 224], token ids [B, L]), its tokenizer,
    its trainable parameter count, how it compiles its model in place, the process settings its training program
    runs under, and whether its AdamW is fused."""

    step: Callable[[torch.Tensor, torch.Tensor], float]
    tokenize: Callable[[list[str]], torch.Tensor]
    params: int
    compile: Callable[[], None]
    settings: Callable[[], contextlib.AbstractContextManager]
    fused: bool


def omniembed_side(device: torch.device, precision: str, fused: bool | None, trainer_settings: bool = True) -> Side:
    """A step function of the OmniEmbed trainer on a ViT-B/16 + 12×512 text model (both towers learning); with
    ``trainer_settings`` under the process settings of the trainer's loop, else under glibc's and torch's defaults.
    ``fused`` is unused: the trainer chooses its own AdamW, and the other side follows it."""
    from omniembed.pretrain import trainer
    from omniembed.pretrain.config import ExperimentConfig
    from omniembed.pretrain.heap import freed_memory_kept
    from omniembed.pretrain.pair_plan import PairPlan

    config = ExperimentConfig.from_dict({
        "model": {"init": "omni-tiny", "frozen": []},  # the overrides below give ViT-B/16 + CLIP text sizes
        "data": {"datasets": [{"name": "bench", "shards": ["unused.tar"], "pairs": [["image", "text"]]}],
                 "batch_size": 8, "streams": 1},
        "train": {"precision": precision, "keep_freed_memory": trainer_settings, "flush_denormal": trainer_settings},
    })
    import omniembed

    model = omniembed.create({"embed_dim": 512, "anchor": "image", "modalities": {
        "image": {"image_size": 224, "patch_size": 16,
                  "trunk": {"width": 768, "depth": 12, "heads": 12, "pre_norm": True}},
        "text": {"trunk": {"width": 512, "depth": 12, "heads": 8, "causal": True}}}}, seed=0)
    plan = PairPlan.from_config(config)
    trainer.configure_trainable(model, config, plan)
    module = trainer.TrainingModule(model, config, plan).to(device).train()
    optimizer = trainer.build_optimizer(module, config)
    objective = trainer.PairObjective(config, plan)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(images: torch.Tensor, tokens: torch.Tensor) -> float:
        metrics, _ = trainer.train_step(module, objective, optimizer, [{"image": images, "text": tokens}], 0,
                                        autocast, config.optim.grad_clip)
        return float(metrics["loss"])

    def settings() -> contextlib.ExitStack:  # as trainer.train enters them around its loop
        stack = contextlib.ExitStack()
        stack.enter_context(freed_memory_kept(config.train.keep_freed_memory))
        stack.enter_context(trainer.denormals_flushed(config.train.flush_denormal and device.type == "cpu"))
        return stack

    params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return Side(step, model.processor("text").collate, params, lambda: trainer.compile_towers(model), settings,
                bool(optimizer.defaults.get("fused")))


def open_clip_side(device: torch.device, precision: str, fused: bool | None) -> Side:
    """open_clip's training step (as its train_one_epoch) for ViT-B-16 from random weights, AdamW ``fused`` as
    given (the trainer's setting, so that both sides run the same optimiser kernel), under the process defaults its
    training script leaves."""
    import open_clip

    model = open_clip.create_model("ViT-B-16", pretrained=None).to(device).train()
    loss_fn = open_clip.ClipLoss()
    exclude = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n  # noqa: E731
    named = list(model.named_parameters())
    optimizer = torch.optim.AdamW([
        {"params": [p for n, p in named if exclude(n, p) and p.requires_grad], "weight_decay": 0.0},
        {"params": [p for n, p in named if not exclude(n, p) and p.requires_grad], "weight_decay": 0.2},
    ], lr=5e-4, betas=(0.9, 0.98), eps=1e-6, fused=fused)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(images: torch.Tensor, tokens: torch.Tensor) -> float:
        with autocast:
            image_features, text_features, logit_scale = model(images, tokens)
            loss = loss_fn(image_features, text_features, logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)
        return float(loss.detach())

    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Side(step, open_clip.get_tokenizer("ViT-B-16"), params, model.compile,  # its --torchcompile
                contextlib.nullcontext, bool(fused))


SIDES: dict[str, Callable[[torch.device, str, bool | None], Side]] = {
    "open_clip ViT-B-16 (77 tokens)": open_clip_side,
    "OmniEmbed trainer, same 77-token ids": omniembed_side,
    "OmniEmbed trainer step, process defaults": partial(omniembed_side, trainer_settings=False),
}
"""Each row's side, one process each; the first is the ratios' base. The trainer's process also runs the row on its
own collate's tokens (:data:`COLLATE_ROW`)."""
BASE, OURS, DEFAULTS = SIDES
COLLATE_ROW = "OmniEmbed trainer, its collate"


def step_flops(step, images: torch.Tensor, tokens: torch.Tensor) -> float:
    """FLOPs of one training step as :class:`torch.utils.flop_counter.FlopCounterMode` counts them (forward and
    backward matmuls, convolutions and attention). The counted step is a real step: it trains the model once more."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step(images, tokens)
    return float(counter.get_total_flops())


def serve(name: str, precision: str, device_name: str, threads: int | None, batch: int, fused: bool | None,
          conn: Connection) -> None:
    """One side in its own process: builds it, sends (trainable parameters, fused AdamW), then answers the parent's
    requests until it sends None — ``("tokenize", captions)`` → token ids as lists; ``("inputs", key, ids)`` keeps
    images [batch, 3, 224, 224] (the same seeded draw in every process) and ids [batch, L] under ``key``;
    ``("flops", key)`` → the FLOPs of a step on them; ``("compile",)``; ``("step", key)`` → its seconds."""
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    torch.manual_seed(0)
    side = SIDES[name](device, precision, fused)
    images = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device)
    inputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    handlers: dict[str, Callable] = {
        "tokenize": lambda captions: side.tokenize(captions).tolist(),
        "inputs": lambda key, ids: inputs.__setitem__(key, (images, torch.tensor(ids, device=device))),
        "flops": lambda key: step_flops(side.step, *inputs[key]),
        "compile": side.compile,
        "step": lambda key: timed(lambda: side.step(*inputs[key]), device),
    }
    with side.settings():
        conn.send((side.params, side.fused))
        while (request := conn.recv()) is not None:
            op, *args = request
            conn.send(handlers[op](*args))


class Worker:
    """The parent's handle on a :func:`serve` process."""

    def __init__(self, name: str, args: argparse.Namespace, fused: bool | None):
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no heap or threads shared
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(name, args.precision, args.device, args.threads,
                                                           args.batch, fused, child), daemon=True)
        self.process.start()
        self.params, self.fused = self.conn.recv()

    def __call__(self, *request):
        self.conn.send(request)
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(None)
        self.process.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side (after one warm-up step)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for every side (default: torch's); on a machine shared with other jobs "
                             "1 thread is the least disturbed (no OpenMP barrier waits on a descheduled thread)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile both models (OmniEmbed's train.compile, open_clip's --torchcompile); "
                             "the first step of each side compiles it (minutes on a CPU)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    ours = Worker(OURS, args, None)
    workers = {BASE: Worker(BASE, args, ours.fused), OURS: ours, DEFAULTS: Worker(DEFAULTS, args, None)}
    captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(args.batch)]
    tokens77 = workers[BASE]("tokenize", captions)
    trimmed = ours("tokenize", captions)
    for worker in workers.values():
        worker("inputs", "77", tokens77)
    ours("inputs", "collate", trimmed)
    rows = {name: (worker, "77") for name, worker in workers.items()}
    rows[f"{COLLATE_ROW} ({len(trimmed[0])} tokens)"] = (ours, "collate")
    comparable = set(SIDES)

    ceiling, ceiling_flops = matmul(torch.bfloat16 if args.precision == "bf16" else torch.float32, device)

    work = {name: worker("flops", key) for name, (worker, key) in rows.items()}  # eager: same FLOPs
    if args.compile:
        for worker in workers.values():
            worker("compile")
    for name, (worker, key) in rows.items():  # warm-up: allocator, AdamW state, autotuning, compilation
        seconds = worker("step", key)
        if args.compile:
            print(f"{name}: first compiled step {seconds:.0f} s", file=sys.stderr)
    timed(ceiling, device)
    times: dict[str, list[float]] = {name: [] for name in rows}
    ceiling_times = []
    for _ in range(args.steps):
        for name, (worker, key) in rows.items():
            times[name].append(worker("step", key))
        ceiling_times.append(timed(ceiling, device))
    for worker in workers.values():
        worker.close()
    attainable = ceiling_flops / statistics.median(ceiling_times)

    base = args.batch / statistics.median(times[BASE])
    print(f"one image–text training step, batch {args.batch}, {args.precision}, {device}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU: {cpu_model()}")
    print(f"each side in its own process, steps alternated; AdamW fused={ours.fused} on all; gradient clipping at 1.0 "
          "on all; 77-token ids on the rows with a ratio")
    print(f"process settings: '{OURS}' as omniembed train runs (freed memory kept, denormals flushed); the others "
          "glibc's and torch's defaults")
    print(f"trainable parameters: OmniEmbed {ours.params / 1e6:.1f} M, open_clip {workers[BASE].params / 1e6:.1f} M")
    print("torch.compile (inductor) on every side: the trainer's train.compile, open_clip's --torchcompile"
          if args.compile else "eager on every side")
    print(f"plain {args.precision} matmul {matmul_size(device)}² in the same loop: {attainable / 1e12:.2f} TFLOP/s "
          "(the utilisation column's denominator)")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"| {'side':<44} | {'median step s':>13} | {'min–max s':>13} | {'samples/s':>9} "
          f"| {'ratio vs open_clip':>18} | {'GFLOP/step':>10} | {'TFLOP/s':>7} | {'of matmul rate':>14} |")
    print(f"|{'-' * 46}|{'-' * 15}|{'-' * 15}|{'-' * 11}|{'-' * 20}|{'-' * 12}|{'-' * 9}|{'-' * 16}|")
    for name, ts in times.items():
        rate = args.batch / statistics.median(ts)
        ratio = f"{rate / base:.2f}" if name in comparable else "– (fewer tokens)"
        spread = f"{min(ts):.3f}–{max(ts):.3f}"
        achieved = work[name] / statistics.median(ts)
        print(f"| {name:<44} | {statistics.median(ts):>13.3f} | {spread:>13} | {rate:>9.3f} | {ratio:>18} "
              f"| {work[name] / 1e9:>10.1f} | {achieved / 1e12:>7.3f} | {achieved / attainable:>14.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
