"""``omniembed recipes``: one line per shipped recipe; ``omniembed recipes show NAME`` prints it to copy and edit."""

from __future__ import annotations

import pytest

from omniembed import cli
from omniembed.pretrain.config import RECIPES, list_recipes, load_config


def test_recipes_lists_every_shipped_recipe_with_its_first_sentence(capsys):
    assert cli.main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0]: line.split(None, 1)[1] for line in lines[:len(list_recipes())]}
    assert sorted(listed) == list_recipes() == sorted(p.stem for p in RECIPES.glob("*.yaml"))
    assert listed["image_text_tiny"] == "Image–text alignment with the tiny model: a smoke-test recipe that runs in " \
                                        "seconds on CPU"
    assert all(summary and "\n" not in summary for summary in listed.values())


def test_recipes_show_prints_the_file_and_a_copy_trains_as_the_name_does(capsys, tmp_path):
    assert cli.main(["recipes", "show", "image_text_tiny"]) == 0
    text = capsys.readouterr().out
    assert text == (RECIPES / "image_text_tiny.yaml").read_text(encoding="utf-8")
    (tmp_path / "mine.yaml").write_text(text)
    assert load_config(tmp_path / "mine.yaml", ["optim.lr=1e-4"]).optim.lr == pytest.approx(1e-4)
    assert load_config(tmp_path / "mine.yaml").to_dict() == load_config("image_text_tiny").to_dict()


def test_recipes_show_names_the_unknown_recipe_and_the_shipped_ones(capsys):
    assert cli.main(["recipes", "show", "imagebind_huge"]) == 2
    err = capsys.readouterr().err
    assert "no shipped recipe named 'imagebind_huge'" in err and "image_text_tiny" in err
