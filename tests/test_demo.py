"""``omniembed demo --quick`` end to end: data, training, evaluation, index, searches — and emergent transfer."""

from __future__ import annotations

import json

import pytest

from omniembed.cli import main

from conftest import SHARED

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    # the real MNIST + FSDD when ../shared/data is there (as `make demo`), else the offline sources
    assert main(["demo", "--quick", "--out", str(out), "--shared-root", str(SHARED / "data")]) == 0
    return out


def test_quick_demo_leaves_a_model_an_index_and_a_report(demo):
    assert (demo / "run" / "model" / "config.json").is_file()
    assert (demo / "report" / "report.md").is_file() and (demo / "report" / "joint_space.png").is_file()
    summary = json.loads((demo / "demo.json").read_text())
    assert set(summary["seconds"]) == {"data", "anchor", "bind", "eval", "index", "search"}
    assert (demo / "anchor" / "model" / "config.json").is_file()


def test_quick_demo_transfers_zero_shot_to_modalities_never_trained_with_text(demo):
    report = json.loads((demo / "report" / "report.json").read_text())
    emergent = {m: r["top1"] for m, r in report["zero_shot"].items() if r["emergent"]}
    assert {"audio", "video"} <= set(emergent)
    assert report["zero_shot"]["image"]["emergent"] == 0.0  # image–text was trained, in the anchor stage
    # chance is 0.1 with ten classes; 60 test samples put its standard error at 0.04
    assert max(emergent.values()) >= 0.25
    assert sum(emergent.values()) / len(emergent) > 0.17


def test_rerunning_the_demo_reuses_every_finished_stage(demo, capsys):
    assert main(["demo", "--quick", "--out", str(demo), "--shared-root", str(SHARED / "data")]) == 0
    assert "reusing" in capsys.readouterr().out
    summary = json.loads((demo / "demo.json").read_text())
    assert summary["seconds"]["anchor"] < 5 and summary["seconds"]["bind"] < 5
