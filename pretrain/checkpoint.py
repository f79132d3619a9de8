"""Training checkpoints: everything a killed run needs to continue exactly where it stood.

Layout (one directory per checkpoint, swapped in atomically, then named in ``latest.json``)::

    OUT/checkpoints/step_00001000/
        model.safetensors       the training module's full state (LoRA adapters unmerged, frozen towers included)
        optimizer.safetensors   AdamW moments and step counts, keyed ``state/<param fqn>/<name>``
        rng.safetensors         each process's torch (and CUDA) generator state
        trainer.json            step, scheduler, optimizer param groups, data stream positions, python RNGs
    OUT/checkpoints/latest.json {"step": 1000, "path": "step_00001000"}

Nothing is pickled. Model and optimizer state go through ``torch.distributed.checkpoint.state_dict`` with full,
CPU-offloaded state dicts, so the same files serve DDP, FSDP2 and single-process runs, and a run may resume on a
different number of processes (its RNG streams are then re-seeded; data positions are per stream, not per rank).
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from omniembed.errors import CheckpointError
from omniembed.io import atomic_dir, load_tensors, save_tensors, write_json

from .distributed import DistInfo, all_gather_objects

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
FORMAT = "omniembed-train/1"


class DamagedCheckpointError(CheckpointError):
    """A checkpoint's files cannot be read back (truncated, corrupt, missing); nothing was restored from it."""


def checkpoint_dir(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / CHECKPOINTS / f"step_{step:08d}"


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    candidates = checkpoint_candidates(out_dir)
    return candidates[0] if candidates else None


def checkpoint_candidates(out_dir: str | Path, say: Callable[[str], None] = lambda message: None) -> list[Path]:
    """The run's complete checkpoints (those with a trainer.json), newest first: the one ``latest.json`` names,
    then every ``step_*`` directory by step. A ``latest.json`` that cannot be read is reported through ``say`` and
    passed over — it is only a pointer, and the directories are the truth."""
    root = Path(out_dir) / CHECKPOINTS
    done = sorted((p for p in root.glob("step_*") if (p / "trainer.json").is_file()), reverse=True)
    latest = root / LATEST
    named = None
    if latest.is_file():
        try:
            named = root / json.loads(latest.read_text(encoding="utf-8"))["path"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            say(f"{latest} is unreadable ({type(exc).__name__}: {exc}); looking for the newest complete "
                f"checkpoint directory instead")
    # latest.json is written after the directory: a kill between the two leaves a complete, unnamed checkpoint
    return ([named] if named in done else []) + [p for p in done if p != named]


def resume_checkpoint(out_dir: str | Path, module: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                      info: DistInfo) -> dict[str, Any] | None:
    """Restore the newest checkpoint that reads back whole (see :func:`load_checkpoint`), saying on stderr which
    damaged ones were passed over; trainer.json's content, or None when the run has no checkpoint."""
    def say(message: str) -> None:
        if info.is_main:
            print(f"resume: {message}", file=sys.stderr)

    candidates = checkpoint_candidates(out_dir, say)
    for i, path in enumerate(candidates):
        try:
            meta = load_checkpoint(path, module, optimizer, scheduler, info)
        except DamagedCheckpointError as exc:
            following = candidates[i + 1] if i + 1 < len(candidates) else None
            say(f"checkpoint {path.name} is damaged ({exc}); "
                + (f"falling back to the previous complete one, {following.name}" if following else "none is left"))
            continue
        if i:
            say(f"resumed from {path.name} (step {meta['step']})")
        return meta
    if candidates:
        raise CheckpointError(f"{Path(out_dir) / CHECKPOINTS}: no checkpoint reads back whole "
                              f"({', '.join(p.name for p in candidates)} are damaged)")
    return None



def save_checkpoint(out_dir: str | Path, step: int, module: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, data_state: dict[str, dict], info: DistInfo, keep: int = 2,
                    extra: dict[str, Any] | None = None) -> Path | None:
    """Collective: every process calls it; process 0 writes. Returns the directory on process 0."""
    model_state, optim_state = get_state_dict(module, optimizer,
                                              options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    rngs = all_gather_objects(_rng_state())
    streams: dict[str, dict] = {}
    for part in all_gather_objects(data_state):
        streams.update(part)
    if not info.is_main:
        return None
    tensors = {f"state/{fqn}/{name}": value for fqn, entry in optim_state["state"].items()
               for name, value in entry.items()}
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in optim_state["param_groups"]]
    rng_tensors = {f"{kind}.{rank}": t for rank, r in enumerate(rngs) for kind, t in r["tensors"].items()}
    directory = checkpoint_dir(out_dir, step)
    with atomic_dir(directory) as tmp:
        save_tensors(tmp / "model.safetensors", model_state)
        save_tensors(tmp / "optimizer.safetensors", tensors)
        save_tensors(tmp / "rng.safetensors", rng_tensors)
        write_json(tmp / "trainer.json", {
            "format": FORMAT, "step": step, "world": info.world, "scheduler": scheduler.state_dict(),
            "param_groups": groups, "data": streams, "python_rng": [r["python"] for r in rngs], **(extra or {}),
        })
    write_json(directory.parent / LATEST, {"step": step, "path": directory.name})
    for old in sorted(directory.parent.glob("step_*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return directory


def load_checkpoint(path: str | Path, module: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    info: DistInfo) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and (same process count) RNG states; returns trainer.json's content."""
    path = Path(path)
    meta_path = path / "trainer.json"
    if not meta_path.is_file():
        raise DamagedCheckpointError(f"{path}: not a training checkpoint (trainer.json missing)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DamagedCheckpointError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DamagedCheckpointError(f"{path}: unknown checkpoint format "
                                     f"{meta.get('format') if isinstance(meta, dict) else meta!r}")
    # every file is read before anything is restored: a damaged one must leave the module untouched for the next
    try:
        model_state = load_tensors(path / "model.safetensors")
        optimizer_tensors = load_tensors(path / "optimizer.safetensors")
        rng = load_tensors(path / "rng.safetensors") if meta["world"] == info.world else {}
    except CheckpointError as exc:
        raise DamagedCheckpointError(str(exc)) from None
    state: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in optimizer_tensors.items():
        _, fqn, name = key.split("/")
        state.setdefault(fqn, {})[name] = value
    set_state_dict(module, optimizer, model_state_dict=model_state,
                   optim_state_dict={"state": state, "param_groups": meta["param_groups"]},
                   options=StateDictOptions(full_state_dict=True))
    scheduler.load_state_dict(meta["scheduler"])
    if meta["world"] == info.world:
        _set_rng_state({k.split(".")[0]: v for k, v in rng.items() if k.endswith(f".{info.rank}")},
                       meta["python_rng"][info.rank])
    return meta


def _rng_state() -> dict[str, Any]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state()
    version, state, gauss = random.getstate()
    return {"tensors": tensors, "python": [version, list(state), gauss]}


def _set_rng_state(tensors: dict[str, torch.Tensor], python: list) -> None:
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
    random.setstate((python[0], tuple(python[1]), python[2]))
