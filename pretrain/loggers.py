"""Where a run's scalars go besides ``OUT/metrics.jsonl``: TensorBoard (``train.tensorboard``) and Weights & Biases
(``train.wandb``, the optional ``wandb`` extra: ``pip install omniembed[wandb]``). Process 0 only.

A W&B run is tied to its output folder: its id is kept in ``OUT/wandb.json``, so ``--resume`` continues the same
W&B run. ``train.wandb.mode: offline`` (or ``WANDB_MODE=offline``) writes it under ``OUT/wandb`` for a later
``wandb sync``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Protocol

from omniembed.extras import require

from .config import ExperimentConfig

WANDB_ID_FILE = "wandb.json"


class ScalarSink(Protocol):
    def log(self, step: int, scalars: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class TensorBoardSink:
    """``OUT/tensorboard``; on resume, events after the checkpoint's step are purged."""

    def __init__(self, out_dir: Path, start_step: int):
        require("tensorboard", "TensorBoard logging (train.tensorboard: true; false turns it off)")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=start_step + 1 if start_step else None)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    """One W&B run per output folder, with the resolved recipe as its config and the run record as its summary."""

    def __init__(self, out_dir: Path, config: ExperimentConfig, run_record: dict[str, Any]):
        wandb = require("wandb", "Weights & Biases logging (train.wandb)")
        settings = config.train.wandb
        id_file = out_dir / WANDB_ID_FILE
        run_id = json.loads(id_file.read_text())["id"] if id_file.is_file() else uuid.uuid4().hex[:8]
        id_file.write_text(json.dumps({"id": run_id}) + "\n")
        self.run = wandb.init(project=settings.project, entity=settings.entity, name=settings.name or out_dir.name,
                              tags=settings.tags or None, mode=settings.mode, dir=str(out_dir), id=run_id,
                              resume="allow", config=config.to_dict())
        self.run.summary.update({"world_size": run_record["world_size"], "versions": run_record["versions"],
                                 "data": run_record["data"]})

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


def build_sinks(out_dir: Path, config: ExperimentConfig, start_step: int,
                run_record: dict[str, Any]) -> list[ScalarSink]:
    sinks: list[ScalarSink] = []
    if config.train.tensorboard:
        sinks.append(TensorBoardSink(out_dir, start_step))
    if config.train.wandb is not None:
        sinks.append(WandbSink(out_dir, config, run_record))
    return sinks
