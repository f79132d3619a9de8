"""``ModelConfig.prompt``: the modality zero-shot prompts and text queries go to is named by the config, not by
the string "text" — a model whose prompt tower is registered under another name works end to end (embed, save /
load, zero-shot eval, index search from Python and the command line, the server's text batching)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

import omniembed
from omniembed import registry
from omniembed.cli import main
from omniembed.model_config import ModelConfig
from omniembed.errors import MissingModalityError
from omniembed.eval import EvalSet, evaluate
from omniembed.eval.folder import eval_set_from_folder
from omniembed.eval.zeroshot import text_classifier
from omniembed.index import Index
from omniembed.inputs import Text
from omniembed.modalities.image import ImageModality
from omniembed.modalities.text import TextModality
from omniembed.serve.batching import TextBatcher


class CaptionModality(TextModality):
    """The text tower under another name (as an out-of-tree caption or query encoder would be)."""

    name = "caption"
    suffixes = ()


@pytest.fixture
def caption_model(monkeypatch):
    monkeypatch.setitem(registry._MODALITIES, "caption", CaptionModality)  # undone after the test
    config = ModelConfig(embed_dim=32, anchor="image", prompt="caption", name="caption-tiny",
                         modalities={"image": ImageModality.tiny_config(), "caption": CaptionModality.tiny_config()})
    return omniembed.create(config, seed=0)


def write_images(folder, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"{i:05d}.png"
        Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def test_prompt_is_saved_only_when_not_text_and_old_configs_load_as_text(caption_model, tiny_model):
    assert caption_model.config.to_dict()["prompt"] == "caption"
    assert ModelConfig.from_dict(caption_model.config.to_dict()).prompt == "caption"
    # the default is not written: configs (and fingerprints) of models saved before the key existed are unchanged
    old = tiny_model.config.to_dict()
    assert "prompt" not in old and ModelConfig.from_dict(old).prompt == "text"


def test_texts_and_strings_go_to_the_prompt_modality_and_survive_save_and_load(caption_model, tmp_path):
    direct = caption_model.embed(["a red square", "cat.jpg"], modality="caption")
    routed = caption_model.embed([Text("a red square"), Text("cat.jpg")])
    np.testing.assert_allclose(routed, direct, atol=1e-6)
    np.testing.assert_allclose(caption_model.embed("a red square"), direct[:1], atol=1e-6)

    loaded = omniembed.load(caption_model.save(tmp_path / "m"))
    assert loaded.prompt == "caption"
    assert json.loads((tmp_path / "m" / "config.json").read_text())["prompt"] == "caption"
    np.testing.assert_allclose(loaded.embed([Text("a red square")]), direct[:1], atol=1e-6)


def test_zero_shot_eval_scores_against_prompt_embeddings(caption_model, tmp_path):
    names = ["zero", "one"]
    classifier = text_classifier(caption_model, names, ["a photo of {}."])
    expected = caption_model.embed(["a photo of zero.", "a photo of one."], modality="caption")
    np.testing.assert_allclose(classifier, expected, atol=1e-6)

    split = tmp_path / "test"
    images = write_images(split)
    for i, path in enumerate(images):
        path.with_suffix(".cls").write_text(names[i % 2])
        path.with_suffix(".txt").write_text(f"a photo of {names[i % 2]}")  # a caption file: not a test item
    data = eval_set_from_folder(split, caption_model, names)
    assert set(data.items) == {"image"}
    report = evaluate(caption_model, data, trained_pairs=[("image", "caption")], templates=["a photo of {}."])
    scores = caption_model.embed([str(p) for p in images]) @ classifier.T
    assert report.zero_shot["image"]["top1"] == pytest.approx(float((scores.argmax(1) == [0, 1, 0, 1]).mean()))
    assert report.zero_shot["image"]["emergent"] == 0.0


def test_index_search_by_text_embeds_the_query_with_the_prompt_modality(caption_model, tmp_path, capsys):
    write_images(tmp_path / "photos")
    model_dir = caption_model.save(tmp_path / "model")
    idx = tmp_path / "idx"
    assert main(["index", "build", "--model", str(model_dir), "--out", str(idx), str(tmp_path / "photos")]) == 0
    capsys.readouterr()
    index = Index.open(idx)
    np.testing.assert_allclose(index.query_vector("a red square"),
                               caption_model.embed(["a red square"], modality="caption")[0], atol=1e-6)
    assert main(["search", str(idx), "--text", "a red square", "--k", "2", "--json"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [h["path"] for h in hits] == [h.path for h in index.search("a red square", k=2)]


def test_embed_command_writes_texts_as_rows_of_the_prompt_modality(caption_model, tmp_path):
    model_dir = caption_model.save(tmp_path / "model")
    out = tmp_path / "vectors.npy"
    assert main(["embed", "--model", str(model_dir), "--text", "cat.jpg", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert rows == [{"text": "cat.jpg", "modality": "caption"}]  # words, although they look like a file name
    np.testing.assert_allclose(np.load(out)[0], caption_model.embed(["cat.jpg"], modality="caption")[0], atol=1e-6)


def test_server_text_batching_uses_the_prompt_modality(caption_model):
    batcher = TextBatcher(caption_model, threading.Lock(), modality=caption_model.prompt)
    np.testing.assert_allclose(batcher.embed("a red square"),
                               caption_model.embed(["a red square"], modality="caption")[0], atol=1e-6)


def test_a_model_without_its_prompt_modality_refuses_text_queries_naming_it(tmp_path):
    config = ModelConfig(embed_dim=32, anchor="image", modalities={"image": ImageModality.tiny_config()})
    model = omniembed.create(config, seed=0)
    with pytest.raises(MissingModalityError, match="'text'"):
        text_classifier(model, ["zero"], ["{}"])
    report = evaluate(model, EvalSet(items={"image": [str(p) for p in write_images(tmp_path)]},
                                     labels={"image": np.array([0, 1, 0, 1])}, class_names=["zero", "one"]))
    assert report.zero_shot == {} and report.retrieval == {}
