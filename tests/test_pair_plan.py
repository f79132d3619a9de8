"""The pair plan: one reading of the experiment's datasets that says which pairs each step scores, with which
weight and logit scale, and which towers learn — what the trainer hands to the model builder, the freezer, the
loss, DDP's unused-parameter check and the training record."""

from __future__ import annotations

from omniembed.pretrain.config import ExperimentConfig
from omniembed.pretrain.pair_plan import PairPlan, PlannedPair


def experiment(frozen=None) -> ExperimentConfig:
    return ExperimentConfig.from_dict({
        "model": {"init": "omni-tiny", "frozen": frozen},
        "data": {"batch_size": 8, "streams": 1, "datasets": [
            {"name": "triplets", "shards": ["t.tar"], "pairs": [["image", "pointcloud"], ["text", "pointcloud"]],
             "loss_weights": [1.0, 0.5]},
            {"name": "sounds", "shards": ["s.tar"], "pairs": [["image", "audio"], ["image", "pointcloud"]]}]}})


def test_each_dataset_keeps_its_pairs_weights_and_scales_in_config_order():
    plan = PairPlan.from_config(experiment())
    assert plan.pairs_of(0) == (PlannedPair("image", "pointcloud", 1.0), PlannedPair("text", "pointcloud", 0.5))
    assert [p.name for p in plan.pairs_of(1)] == ["image-audio", "image-pointcloud"]
    assert plan.pairs_of(1)[0].weight == 1.0 and plan.pairs_of(1)[0].scale == "audio"
    assert plan.datasets[0].modalities == ("image", "pointcloud", "text")
    assert plan.datasets[0].scales == {"pointcloud"} and plan.datasets[1].scales == {"audio", "pointcloud"}


def test_the_run_wide_view_lists_each_modality_pair_and_scale_once():
    plan = PairPlan.from_config(experiment())
    assert plan.modalities == ("image", "pointcloud", "text", "audio")
    assert plan.pair_names == ("image-pointcloud", "text-pointcloud", "image-audio")
    assert plan.scales == {"pointcloud", "audio"}
    assert plan.unordered_pairs() == {("image", "pointcloud"), ("pointcloud", "text"), ("audio", "image")}


def test_towers_learn_when_paired_and_not_frozen_with_the_anchor_frozen_by_default():
    assert PairPlan.from_config(experiment()).learning_towers("image") == {"pointcloud", "text", "audio"}
    assert PairPlan.from_config(experiment()).learning_towers("text") == {"image", "pointcloud", "audio"}
    plan = PairPlan.from_config(experiment(frozen=["image", "text"]))
    assert plan.frozen_towers("image") == {"image", "text"}
    assert plan.learning_towers("image") == {"pointcloud", "audio"}
    assert PairPlan.from_config(experiment(frozen=[])).learning_towers("image") == set(plan.modalities)
