"""Scores grouped by source: zero-shot per (modality, source), retrieval into / from each source, and ``omniembed
eval`` reading each sample's sources from ``STEM.src``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from omniembed.errors import InputError
from omniembed.eval.by_source import UNTAGGED, retrieval_by_source, zero_shot_by_source
from omniembed.eval.folder import eval_set_from_folder

from labelled_folder import CLASS_NAMES as NAMES, eval_report, write_labelled_folder


def test_zero_shot_is_scored_apart_for_each_source():
    classifier = np.eye(3)
    labels = np.array([0, 1, 2, 0, 1, 2])
    predicted = np.array([0, 1, 2, 0, 2, 1])  # source "b" gets two of its three wrong
    embeddings = np.eye(3)[predicted]
    scores = zero_shot_by_source(embeddings, labels, ["a", "a", "a", "b", "b", ""], classifier)
    assert list(scores) == [UNTAGGED, "a", "b"]
    assert scores["a"]["top1"] == 1.0 and scores["a"]["n"] == 3
    assert scores["b"]["top1"] == 0.5 and scores["b"]["n"] == 2
    assert scores[UNTAGGED]["top1"] == 0.0 and scores[UNTAGGED]["n"] == 1


def test_retrieval_into_a_source_ranks_only_that_sources_targets():
    queries = np.eye(2)  # classes 0 and 1
    # source "near" holds exact matches, source "far" holds each class's target on the other class's axis
    targets = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    target_labels = np.array([0, 1, 0, 1])
    scores = retrieval_by_source(queries, np.array([0, 1]), ["q0", "q1"], targets, target_labels,
                                 ["near", "near", "far", "far"])
    assert scores["target"]["near"]["R@1"] == 1.0 and scores["target"]["far"]["R@1"] == 0.0
    assert scores["target"]["far"]["R@5"] == 1.0 and scores["target"]["far"]["n"] == 2
    # from each query source into every target: the exact match outranks the crossed one (ties aside)
    assert set(scores["query"]) == {"q0", "q1"} and scores["query"]["q0"]["n"] == 1
    assert "query" not in retrieval_by_source(queries, np.array([0, 1]), None, targets, target_labels, None)


@pytest.fixture
def tagged(tmp_path):
    """Six labelled samples; the first four images come from the source "scans", the last two from "fonts", and every
    clip from "speakers"."""
    return write_labelled_folder(tmp_path, lambda i, label: {
        ".cls": str(label), ".src": json.dumps({"image": "scans" if i < 4 else "fonts", "audio": "speakers"})})


def test_folder_reads_each_files_source_from_its_samples_src(tiny_model, tagged):
    data = eval_set_from_folder(tagged / "test", tiny_model, NAMES)
    assert data.sources["image"] == ["scans"] * 4 + ["fonts"] * 2
    assert data.sources["audio"] == ["speakers"] * 6


def test_a_src_that_is_not_a_json_object_of_names_is_an_input_error_naming_it(tiny_model, tagged):
    (tagged / "test" / "00003.src").write_text('["scans"]')
    with pytest.raises(InputError, match="00003.src"):
        eval_set_from_folder(tagged / "test", tiny_model, NAMES)


def test_eval_command_reports_scores_by_source_in_json_markdown_and_a_plot(tiny_model, tagged, tmp_path, capsys):
    report, out = eval_report(capsys, tiny_model, tmp_path, str(tagged), "--split", "test")
    image = report["zero_shot_by_source"]["image"]
    assert set(image) == {"fonts", "scans"} and image["scans"]["n"] == 4 and image["fonts"]["n"] == 2
    overall = report["zero_shot"]["image"]["top1"]
    assert overall == pytest.approx((4 * image["scans"]["top1"] + 2 * image["fonts"]["top1"]) / 6)
    into_fonts = report["retrieval_by_source"]["audio→image"]["target"]["fonts"]
    assert into_fonts["n"] == 2 and 0.0 <= into_fonts["R@1"] <= 1.0
    assert report["retrieval_by_source"]["image→audio"]["query"]["fonts"]["n"] == 2
    markdown = (out / "report.md").read_text()
    assert "## Zero-shot by source" in markdown and "| image | fonts | 2 |" in markdown
    assert (out / "by_source.png").stat().st_size > 0
