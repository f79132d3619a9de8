"""Observability: a tqdm progress line, and per-pair losses, temperatures and data counters to JSONL, TensorBoard
and Weights & Biases.

Every ``train.log_every`` steps the losses and data counters are averaged (summed) over processes — a collective,
so every process calls :meth:`MetricsLogger.step` — and process 0 appends one JSON line to ``OUT/metrics.jsonl``
and sends the same scalars to the sinks of :mod:`.loggers` (TensorBoard under ``OUT/tensorboard``, W&B). On
resume, records after the checkpoint's step are dropped from the JSONL and purged from TensorBoard, so both read
as one uninterrupted run.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm


from .config import ExperimentConfig
from .data import Batch
from .distributed import DistInfo, mean_over_ranks
from .loggers import build_sinks

METRICS_FILE = "metrics.jsonl"
DATA_COUNTERS = ("read", "corrupt", "incomplete", "shard_errors")


class MetricsLogger:
    def __init__(self, out_dir: Path, config: ExperimentConfig, info: DistInfo, start_step: int,
                 trainable: dict[str, int], run_record: dict[str, Any] | None = None):
        """``run_record``: this launch's :mod:`.run_info` record (process 0), shown by the sinks that can."""
        self.config, self.info = config, info
        self.path = Path(out_dir) / METRICS_FILE
        self.names = [ds.name for ds in config.data.datasets]
        self._rate: float | None = None
        self.bar = self.file = None
        self.sinks = []
        if not info.is_main:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_after(self.path, start_step)
        self.file = open(self.path, "a", encoding="utf-8")
        self.sinks = build_sinks(Path(out_dir), config, start_step, run_record or {})
        self.bar = tqdm(total=config.train.steps, initial=start_step, disable=not config.train.progress,
                        dynamic_ncols=True, desc="train", unit="step")
        learning = ", ".join(f"{m} {n / 1e6:.2f}M" for m, n in trainable.items() if n)
        self.bar.write(f"training {learning} parameters on {info.world} process(es), {info.device.type}")

    def step(self, step: int, batch: Batch, metrics: dict[str, torch.Tensor], grad_norm: torch.Tensor, lr: float,
             seconds: float, counts: Counter) -> None:
        """``metrics``: detached scalars ("loss", "loss/a-b", "top1/a-b/a_to_b", "temperature/a-b", …)."""
        samples = batch.size * self.info.world
        rate = samples / max(seconds, 1e-9)
        self._rate = rate if self._rate is None else 0.9 * self._rate + 0.1 * rate
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{metrics['loss'].item():.4f}", samples_s=f"{self._rate:.1f}", refresh=False)
        if step % self.config.train.log_every and step != self.config.train.steps:
            return
        keys = sorted(metrics)
        values = mean_over_ranks(torch.stack([metrics[k].detach().float().cpu() for k in keys]))
        data = mean_over_ranks(torch.tensor([float(counts.get(k, 0)) for k in DATA_COUNTERS])) * self.info.world
        if not self.info.is_main:
            return
        record: dict[str, Any] = {"step": step, "time": round(time.time(), 3), "dataset": self.names[batch.dataset]}
        record.update({k: float(v) for k, v in zip(keys, values)})
        record.update({"lr": lr, "grad_norm": float(grad_norm), "samples_per_s": round(rate, 3)})
        record.update({f"data/{k}": int(round(float(v))) for k, v in zip(DATA_COUNTERS, data)})
        self._write(step, record)

    def eval(self, step: int, results: dict[str, float] | None) -> None:
        if not self.info.is_main or not results:
            return
        record = {"step": step, "time": round(time.time(), 3), **{f"eval/{k}": float(v) for k, v in results.items()}}
        self._write(step, record)
        if self.bar is not None:
            self.bar.write(f"step {step} eval: " + ", ".join(f"{k} {v:.4f}" for k, v in results.items()))

    def _write(self, step: int, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        scalars = {k: v for k, v in record.items() if k not in ("step", "time", "dataset")}
        for sink in self.sinks:
            sink.log(step, scalars)

    def close(self) -> None:
        for handle in (self.bar, *self.sinks, self.file):
            if handle is not None:
                handle.close()


def _truncate_after(path: Path, step: int) -> None:
    if not path.is_file():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
