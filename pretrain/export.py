"""The end of a run: the trained weights as a plain OmniEmbed model folder, with the record of what trained them.

``omniembed.load`` reads the folder like any other model; LoRA adapters are merged into the weights, and
``training.json`` lists the modality pairs the weights were trained on (the eval report's "emergent" flags).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from omniembed.io import write_json
from omniembed.model import TRAINING_FILE, OmniEmbedModel
from omniembed.model_card import write_model_card

from . import distributed
from .config import ExperimentConfig
from .lora import merge_lora_state
from .nonfinite import nonfinite_tensors, refuse_nonfinite
from .pair_plan import PairPlan


def export_model(module: nn.Module, model: OmniEmbedModel, config: ExperimentConfig, plan: PairPlan,
                 directory: Path, info: distributed.DistInfo) -> Path:
    """Save the trained weights as a plain OmniEmbed checkpoint (LoRA merged) that ``omniembed.load`` reads."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if info.is_main:
        lora = config.model.anchor_lora
        state = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
        if lora is not None:
            state = merge_lora_state(state, lora.alpha / lora.rank)
    # every process raises alike: a lone raise on process 0 would leave the others waiting at the barrier
    refuse_nonfinite(distributed.all_gather_objects(nonfinite_tensors(state) if info.is_main else [])[0],
                     str(directory))
    if info.is_main:
        plain = OmniEmbedModel(model.config)
        plain.load_state_dict(state, strict=True)
        plain.source = model.source  # the initial weights' licence travels with the trained ones
        plain.save(directory, overwrite=True)  # the run's own export folder: a resumed run re-exports
        write_json(directory / TRAINING_FILE, training_provenance(config, plan))
        write_model_card(directory)  # again, now with the training record
    distributed.barrier()
    return directory


def training_provenance(config: ExperimentConfig, plan: PairPlan) -> dict[str, Any]:
    """{"pairs": sorted modality pairs the weights were trained on, "datasets": names, "steps": n} of a run. A run
    that starts from an exported model inherits its pairs (a staged recipe: image–text first, then the others
    bound to the frozen anchor) and keeps that model's record under "init"."""
    pairs = plan.unordered_pairs()
    earlier = Path(config.model.init) / TRAINING_FILE
    before = json.loads(earlier.read_text()) if earlier.is_file() else None
    if before is not None:
        pairs |= {tuple(sorted(p)) for p in before.get("pairs", [])}
    record: dict[str, Any] = {"pairs": [list(p) for p in sorted(pairs)],
                              "datasets": [ds.name for ds in plan.datasets], "steps": config.train.steps}
    if before is not None:
        record["init"] = {"from": config.model.init, **before}
    return record
