"""Leave-one-source-out: a fold's figures come from the held-out source's rows of the reports, the table holds one
row per held-out source and the mean per kind, and a bad source name fails before any work."""

from __future__ import annotations

import pytest

from omniembed.demo import DemoConfig
from omniembed.errors import ConfigError
from omniembed.loso import fold_figures, markdown, run_loso, summarise


def report(image: dict[str, float], audio: dict[str, float], into_image: dict[str, dict[str, float]]) -> dict:
    """An eval report (as EvalReport.as_dict) holding only what the protocol reads."""
    return {"zero_shot_by_source": {"image": {s: {"top1": v} for s, v in image.items()},
                                    "audio": {s: {"top1": v} for s, v in audio.items()}},
            "retrieval_by_source": {pair: {"target": {s: {"R@1": v} for s, v in by.items()}}
                                    for pair, by in into_image.items()}}


def test_a_folds_figures_are_the_held_out_sources_rows():
    fold = report({"fonts": 0.4, "mnist": 0.96}, {"fsdd": 0.7, "espeak-ng": 0.9},
                  {"audio→image": {"fonts": 0.5, "mnist": 0.9}, "pointcloud→image": {"fonts": 0.3}})
    figures = fold_figures("fonts", "image", fold)
    assert (figures.out_of_source, figures.in_source) == (0.4, 0.96)  # in-source: the sources it was trained on
    assert figures.retrieval_into == {"audio→image": 0.5, "pointcloud→image": 0.3}
    audio = fold_figures("fsdd", "audio", fold)
    assert (audio.out_of_source, audio.in_source, audio.retrieval_into) == (0.7, 0.9, {})
    with pytest.raises(ConfigError, match="no pointcloud input from lift-deep"):
        fold_figures("lift-deep", "pointcloud", fold)


def test_the_table_averages_out_of_source_figures_per_kind():
    fonts = report({"fonts": 0.4, "mnist": 0.9}, {}, {"audio→image": {"fonts": 0.5}})
    mnist = report({"mnist": 0.8, "fonts": 0.95}, {}, {"audio→image": {"mnist": 0.7}})
    folds = [fold_figures("fonts", "image", fonts), fold_figures("mnist", "image", mnist),
             fold_figures("fsdd", "audio", report({}, {"fsdd": 0.6}, {}))]
    summary = summarise(folds, DemoConfig())
    means = summary["mean_out_of_source"]
    assert means["image zero-shot"] == pytest.approx(0.6)
    assert means["image zero-shot, in-source"] == pytest.approx(0.925)
    assert means["audio zero-shot"] == pytest.approx(0.6)
    assert means["audio→image into held-out images, top-1 class match"] == pytest.approx(0.6)
    assert "pointcloud zero-shot" not in means
    table = markdown(summary)
    assert "| fonts | image | 40.0% | 90.0% | 50.0% | – |" in table
    assert folds[2].in_source is None and "audio zero-shot, in-source" not in means
    assert "| image zero-shot | 60.0% |" in table and "n_train 10000" in table


def test_an_unknown_source_fails_before_any_data_is_built(tmp_path):
    with pytest.raises(ConfigError, match="fontz is not a source"):
        run_loso(DemoConfig(out=tmp_path / "demo"), ["fontz"])
    assert not (tmp_path / "demo").exists()


BUILD = {"image": ["mnist", "sklearn-digits", "fonts"], "audio": ["fsdd", "espeak-ng"],
         "pointcloud": ["lift-slab", "lift-deep", "lift-sparse", "lift-outline"]}


def test_grouped_folds_hold_out_one_source_of_each_kind_and_every_source_once():
    from omniembed.loso import plan_folds

    folds = plan_folds(BUILD, grouped=True)
    assert folds == [("mnist", "fsdd", "lift-slab"), ("sklearn-digits", "espeak-ng", "lift-deep"),
                     ("fonts", "lift-sparse"), ("lift-outline",)]
    assert plan_folds(BUILD)[:2] == [("mnist",), ("sklearn-digits",)] and len(plan_folds(BUILD)) == 9
    assert plan_folds(BUILD, ["fonts+fsdd", "lift-deep"]) == [("fonts", "fsdd"), ("lift-deep",)]
    with pytest.raises(ConfigError, match="fsdd given twice"):
        plan_folds(BUILD, ["fonts+fsdd", "fsdd"])
    with pytest.raises(ConfigError, match="lift-stretched is not a source of this build"):
        plan_folds(BUILD, ["lift-stretched"])


def test_a_source_held_out_with_others_scores_in_source_on_the_sources_the_fold_trained_on():
    fold = report({"fonts": 0.4, "mnist": 0.9, "sklearn-digits": 0.5}, {"fsdd": 0.6, "espeak-ng": 0.95}, {})
    figures = fold_figures("fonts", "image", fold, fold=("fonts", "sklearn-digits", "fsdd"))
    assert (figures.out_of_source, figures.in_source) == (0.4, 0.9)   # sklearn-digits was held out too
    assert figures.held_with == ["sklearn-digits", "fsdd"]
    table = markdown(summarise([figures], DemoConfig()))
    assert "| fonts (with sklearn-digits, fsdd) | image | 40.0% | 90.0% |" in table
