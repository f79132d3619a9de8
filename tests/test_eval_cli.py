"""``omniembed eval`` on a labelled folder: labels from .cls files, class names from the manifest, emergent flags."""

from __future__ import annotations

import numpy as np
import pytest

from omniembed.errors import InputError
from omniembed.eval.folder import eval_set_from_folder

from labelled_folder import CLASS_NAMES as NAMES, eval_report, write_labelled_folder


@pytest.fixture
def labelled(tmp_path):
    """Six captioned samples, labelled by class index (odd samples) or class name (even ones), and one unlabelled
    image beside the split."""
    data = write_labelled_folder(tmp_path, lambda i, label: {
        ".txt": f"the number {label}", ".cls": str(label) if i % 2 else NAMES[label]})
    (data / "unlabelled.png").write_bytes((data / "test" / "00000.png").read_bytes())
    return data


def test_folder_gives_each_modality_its_files_and_labels_by_index_or_name(tiny_model, labelled):
    data = eval_set_from_folder(labelled / "test", tiny_model, NAMES)
    assert set(data.items) == {"image", "audio"}  # captions are not a scored modality
    assert [p.split("/")[-1] for p in data.items["audio"]][:2] == ["00000.wav", "00001.wav"]
    np.testing.assert_array_equal(data.labels["image"], [0, 1, 2, 0, 1, 2])


def test_a_label_naming_no_class_is_an_input_error_naming_the_file(tiny_model, labelled):
    (labelled / "test" / "00002.cls").write_text("eleven")
    with pytest.raises(InputError, match="00002.cls"):
        eval_set_from_folder(labelled / "test", tiny_model, NAMES)


def test_eval_command_reports_every_pair_and_flags_untrained_ones(tiny_model, labelled, tmp_path, capsys):
    report, out = eval_report(capsys, tiny_model, tmp_path, str(labelled), "--split", "test",
                              training={"pairs": [["audio", "image"]]})
    assert report["retrieval"]["audio→image"]["emergent"] == 0.0
    assert report["zero_shot"]["audio"]["emergent"] == 1.0
    assert {"report.md", "report.json", "confusion.png", "joint_space.png"} <= {p.name for p in out.iterdir()}


def test_trained_pairs_flag_overrides_the_models_record(tiny_model, labelled, tmp_path, capsys):
    report, _ = eval_report(capsys, tiny_model, tmp_path, str(labelled / "test"), "--trained-pairs", "image-text")
    assert report["zero_shot"]["image"]["emergent"] == 0.0 and report["zero_shot"]["audio"]["emergent"] == 1.0
