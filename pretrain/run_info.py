"""What a run was: ``OUT/run.json`` beside the checkpoints — one record per launch (start and resume) with the
package versions, the world size and device, and a fingerprint of the data; ``OUT/config.yaml`` holds the
resolved recipe.

The data fingerprint is a SHA-256 over each dataset's shard list in order: every local shard's name and size, and
its bytes too when a dataset's shards total at most :data:`CONTENT_HASH_LIMIT` (hashing terabytes at every launch
would cost hours; names and sizes still catch a rebuilt or swapped shard set). Remote shards (``http…``,
``pipe:``) count by their url.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from omniembed.io import write_json

from .config import ExperimentConfig
from .data import expand_shards
from .distributed import DistInfo

RUN_FILE = "run.json"
CONTENT_HASH_LIMIT = 256 * 2**20
PACKAGES = ("omniembed", "torch", "numpy", "webdataset", "timm", "open_clip_torch", "transformers", "tokenizers",
            "safetensors", "wandb", "tensorboard")


def write_run_info(out_dir: Path, config: ExperimentConfig, info: DistInfo, start_step: int) -> dict[str, Any]:
    """Append this launch's record to ``OUT/run.json`` (written atomically); returns the record."""
    record = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "start_step": start_step,
              "world_size": info.world, "device": device_name(info.device), "python": sys.version.split()[0],
              "platform": platform.platform(), "versions": package_versions(),
              "data": {ds.name: data_fingerprint(ds.shards) for ds in config.data.datasets}}
    path = Path(out_dir) / RUN_FILE
    launches = json.loads(path.read_text())["launches"] if path.is_file() else []
    write_json(path, {"launches": [*launches, record]})
    return record


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a run's results depend on (those installed)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"{device.type} ({platform.processor() or platform.machine()})"


def data_fingerprint(patterns: list[str]) -> dict[str, Any]:
    """{"shards": count, "bytes": local total, "content": whether bytes were hashed, "sha256": the fingerprint}."""
    urls = expand_shards(patterns)
    local = [Path(u) for u in urls if Path(u).is_file()]
    total = sum(p.stat().st_size for p in local)
    content = total <= CONTENT_HASH_LIMIT
    digest = hashlib.sha256()
    for url in urls:
        path = Path(url)
        if not path.is_file():
            digest.update(f"{url}\n".encode())
            continue
        digest.update(f"{path.name}\t{path.stat().st_size}\n".encode())
        if content:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(2**20), b""):
                    digest.update(block)
    return {"shards": len(urls), "bytes": total, "content": content, "sha256": digest.hexdigest()}
