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
``--torchcompile``). The ratio is taken only between those two rows. A third row times the trainer on its text
collate's output, which drops all-padding columns (exact under the causal mask); it runs fewer tokens, so it gets no
ratio against open_clip.

Steps alternate between the sides (the CPU is shared; alternation spreads any interference over both), after one
warm-up step each; the median step time gives samples/s. Each side's FLOPs per step (forward and backward, as
``torch.utils.flop_counter`` counts the matmuls, convolutions and attention it runs; the optimiser's elementwise
update is not counted) over its median step time give its achieved rate, and that over a plain square matmul's in
the step's precision (timed in the same loop) its model-FLOP utilisation against what this machine attains.

    python tools/bench_train.py                 # CPU, fp32, batch 8
    python tools/bench_train.py --precision bf16 --device cuda --batch 64
    python tools/bench_train.py --compile       # both sides compiled (minutes of compilation first)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_imagebind import matmul, matmul_size  # noqa: E402

CAPTIONS = ["a photo of a dog playing in the snow", "a red car parked beside an old brick building at dusk",
            "two people riding bicycles along a beach", "a bowl of soup", "a cat sleeping on a laptop keyboard",
            "an aerial view of a city with many tall buildings and a river", "a plate of pasta with tomato sauce",
            "a child flying a kite in a park on a windy day"]


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass
class Side:
    """One side of the comparison: its training step on (images [B, 3, 224, 224], token ids [B, L]), its tokenizer,
    its trainable parameter count, and how it compiles its model in place."""

    step: Callable[[torch.Tensor, torch.Tensor], float]
    tokenize: Callable[[list[str]], torch.Tensor]
    params: int
    compile: Callable[[], None]


def omniembed_side(device: torch.device, precision: str) -> tuple[Side, bool]:
    """A step function of the OmniEmbed trainer on a ViT-B/16 + 12×512 text model (both towers learning)."""
    from omniembed.pretrain import trainer
    from omniembed.pretrain.config import ExperimentConfig
    from omniembed.pretrain.pair_plan import PairPlan

    config = ExperimentConfig.from_dict({
        "model": {"init": "omni-tiny", "frozen": []},  # the overrides below give ViT-B/16 + CLIP text sizes
        "data": {"datasets": [{"name": "bench", "shards": ["unused.tar"], "pairs": [["image", "text"]]}],
                 "batch_size": 8, "streams": 1},
        "train": {"precision": precision},
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

    params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return Side(step, model.processor("text").collate, params, lambda: trainer.compile_towers(model)), \
        bool(optimizer.defaults.get("fused"))


def open_clip_side(device: torch.device, precision: str, fused: bool) -> Side:
    """open_clip's training step (as its train_one_epoch) for ViT-B-16 from random weights, AdamW ``fused`` as
    given (the trainer's setting, so that both sides run the same optimiser kernel)."""
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
    return Side(step, open_clip.get_tokenizer("ViT-B-16"), params, model.compile)  # its --torchcompile


def step_flops(step, images: torch.Tensor, tokens: torch.Tensor) -> float:
    """FLOPs of one training step as :class:`torch.utils.flop_counter.FlopCounterMode` counts them (forward and
    backward matmuls, convolutions and attention). The counted step is a real step: it trains the model once more."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step(images, tokens)
    return float(counter.get_total_flops())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side (after one warm-up step)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both sides (default: torch's); on a machine shared with other jobs "
                             "1 thread is the least disturbed (no OpenMP barrier waits on a descheduled thread)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile both models (OmniEmbed's train.compile, open_clip's --torchcompile); "
                             "the first step of each side compiles it (minutes on a CPU)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    ours, fused = omniembed_side(device, args.precision)
    theirs = open_clip_side(device, args.precision, fused)
    captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(args.batch)]
    images = torch.randn(args.batch, 3, 224, 224, device=device)
    tokens77 = theirs.tokenize(captions).to(device)
    trimmed = ours.tokenize(captions).to(device)
    comparable = ("open_clip ViT-B-16 (77 tokens)", "OmniEmbed trainer, same 77-token ids")
    sides = {comparable[0]: (theirs.step, tokens77),
             comparable[1]: (ours.step, tokens77),
             f"OmniEmbed trainer, its collate ({trimmed.shape[1]} tokens)": (ours.step, trimmed)}

    ceiling, ceiling_flops = matmul(torch.bfloat16 if args.precision == "bf16" else torch.float32, device)
    runs = {name: (lambda step=step, tokens=tokens: step(images, tokens)) for name, (step, tokens) in sides.items()}
    runs["matmul"] = ceiling
    times: dict[str, list[float]] = {name: [] for name in runs}
    work = {name: step_flops(step, images, tokens) for name, (step, tokens) in sides.items()}  # eager: same FLOPs
    if args.compile:
        ours.compile()
        theirs.compile()
    for name, run in runs.items():  # warm-up: allocator, AdamW state, autotuning, compilation
        t0 = time.perf_counter()
        run()
        if args.compile and name != "matmul":
            print(f"{name}: first compiled step {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    for _ in range(args.steps):
        for name, run in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    attainable = ceiling_flops / statistics.median(times.pop("matmul"))

    base = args.batch / statistics.median(times["open_clip ViT-B-16 (77 tokens)"])
    print(f"one image–text training step, batch {args.batch}, {args.precision}, {device}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU: {cpu_model()}")
    print(f"AdamW fused={fused} on both sides; gradient clipping at 1.0 on both; 77-token ids on both compared rows")
    print(f"trainable parameters: OmniEmbed {ours.params / 1e6:.1f} M, open_clip {theirs.params / 1e6:.1f} M")
    print("torch.compile (inductor) on both sides: the trainer's train.compile, open_clip's --torchcompile"
          if args.compile else "eager on both sides")
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
