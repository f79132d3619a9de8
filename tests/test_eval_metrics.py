"""Evaluation metrics pinned on hand-made embeddings, and the evaluation runner end to end on the tiny model."""

import json

import numpy as np
import pytest

from omniembed.eval import EvalSet, classify, evaluate, is_emergent, recall_at_k, same_label


def unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_zero_shot_metrics_on_a_known_case():
    classifier = np.eye(3, dtype=np.float32)
    emb = unit([[1, 0.1, 0], [0.1, 1, 0], [1, 0, 0.2], [0, 0, 1]])
    labels = np.array([0, 1, 1, 2])  # the third row is a class-1 item that looks like class 0
    result = classify(emb, labels, classifier)
    assert result.top1 == pytest.approx(0.75)
    assert result.top5 == 1.0
    assert result.mean_per_class_recall == pytest.approx((1 + 0.5 + 1) / 3)
    assert result.confusion.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_recall_at_k_counts_any_positive_in_the_top_k():
    queries = unit([[1, 0], [0, 1]])
    targets = unit([[1, 0.1], [0.9, 0.5], [0.1, 1], [0.5, 0.9]])
    positives = np.array([[False, True, False, False], [False, False, False, True]])
    scores = recall_at_k(queries, targets, positives, ks=(1, 2, 4))
    assert scores == {"R@1": 0.0, "R@2": 1.0, "R@4": 1.0}


def test_same_label_positives():
    assert same_label(np.array([0, 1]), np.array([1, 0, 1])).tolist() == [[False, True, False], [True, False, True]]


def test_emergent_means_never_trained_in_either_order():
    trained = [("image", "text"), ("image", "audio")]
    assert not is_emergent("text", "image", trained)
    assert is_emergent("audio", "text", trained)


def test_evaluate_writes_a_report_with_every_ordered_pair(tiny_model, image_files, tmp_path):
    data = EvalSet(items={"image": [str(image_files["jpg"]), str(image_files["png"]), str(image_files["truncated"])],
                          "text": ["zero", "one"]},
                   labels={"image": np.array([0, 1, 1]), "text": np.array([0, 1])}, class_names=["zero", "one"])
    report = evaluate(tiny_model, data, trained_pairs=[("image", "text")], out_dir=tmp_path / "report")
    assert set(report.retrieval) == {"image→text", "text→image"}
    assert report.retrieval["image→text"]["emergent"] == 0.0
    assert 0.0 <= report.zero_shot["image"]["top1"] <= 1.0
    assert len(report.failures) == 1 and "truncated.jpg" in report.failures[0]
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["retrieval"]["text→image"]["R@1"] == report.retrieval["text→image"]["R@1"]
    for name in ("report.md", "confusion.png", "joint_space.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
