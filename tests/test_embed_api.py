"""The embedding API contract: shapes, order, unit norm, determinism, batch independence, error handling."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import omniembed
from omniembed.errors import (
    ConfigError,
    EmptyInputError,
    InputError,
    MissingInputError,
    MissingModalityError,
    UnknownSuffixError,
    UnreadableInputError,
)

TEXTS = ["a photo of a dog", "the number seven", "an orange cat sleeping on a red sofa", "x"]


def test_list_models_names_omni_tiny():
    assert "omni-tiny" in omniembed.list_models()


def test_omni_tiny_has_every_registered_modality(tiny_model):
    assert sorted(tiny_model.modalities) == omniembed.list_modalities()
    assert tiny_model.anchor == "image"


def test_embeddings_are_float32_unit_rows_in_input_order(tiny_model, image_files):
    mixed = [str(image_files["jpg"]), TEXTS[0], image_files["png"], TEXTS[1]]
    out = tiny_model.embed(mixed)
    assert out.dtype == np.float32 and out.shape == (4, tiny_model.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out[0], tiny_model.embed([image_files["jpg"]])[0], atol=1e-6)
    np.testing.assert_allclose(out[3], tiny_model.embed(TEXTS[1])[0], atol=1e-6)


def test_embeddings_are_deterministic(tiny_model, image_files):
    a = tiny_model.embed([image_files["jpg"], *TEXTS])
    b = tiny_model.embed([image_files["jpg"], *TEXTS])
    assert np.array_equal(a, b)


def test_embeddings_do_not_depend_on_batch_size(tiny_model, image_files):
    inputs = [image_files["jpg"], image_files["png"], image_files["bmp"], *TEXTS]
    reference = tiny_model.embed(inputs, batch_size=64)
    for batch_size in (1, 2, 3):
        np.testing.assert_allclose(tiny_model.embed(inputs, batch_size=batch_size), reference, atol=1e-5, rtol=0)


def test_raw_arrays_need_and_use_the_modality_argument(tiny_model, image_files):
    pixels = np.asarray(Image.open(image_files["png"]).convert("RGB"))
    from_array = tiny_model.embed([pixels], modality="image")
    from_file = tiny_model.embed([image_files["png"]])
    np.testing.assert_allclose(from_array, from_file, atol=1e-6)
    with pytest.raises(InputError, match="pass modality="):
        tiny_model.embed([pixels])


def test_output_kinds(tiny_model):
    as_torch = tiny_model.embed(TEXTS, to="torch")
    as_list = tiny_model.embed(TEXTS, to="list")
    assert isinstance(as_torch, torch.Tensor) and as_torch.dtype == torch.float32
    assert np.allclose(np.array(as_list, dtype=np.float32), as_torch.numpy())


def test_unnormalised_output_points_the_same_way(tiny_model):
    raw = tiny_model.embed(TEXTS, normalize=False)
    unit = tiny_model.embed(TEXTS)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), unit, atol=1e-5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_similarity_is_cosine(tiny_model):
    a = tiny_model.embed(TEXTS)
    sim = tiny_model.similarity(a, a)
    assert sim.shape == (4, 4)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-5)
    torch_sim = tiny_model.similarity(torch.from_numpy(a), torch.from_numpy(a))
    np.testing.assert_allclose(torch_sim.numpy(), sim, atol=1e-6)


def test_bf16_precision_stays_close_to_fp32(tiny_model, image_files):
    inputs = [image_files["jpg"], *TEXTS]
    fp32 = tiny_model.embed(inputs)
    bf16 = tiny_model.embed(inputs, precision="bf16")
    assert bf16.dtype == np.float32
    assert (fp32 * bf16).sum(axis=1).min() > 0.99


def test_truncated_jpeg_raises_unreadable_naming_the_file(tiny_model, image_files):
    with pytest.raises(UnreadableInputError, match=r"truncated\.jpg: cannot decode image"):
        tiny_model.embed([image_files["truncated"]])


def test_non_image_with_jpg_suffix_raises_unreadable(tiny_model, image_files):
    with pytest.raises(UnreadableInputError, match="garbage.jpg"):
        tiny_model.embed([image_files["garbage"]])


def test_missing_path_raises_naming_it(tiny_model, tmp_path):
    with pytest.raises(MissingInputError, match=r"nowhere\.png: file not found"):
        tiny_model.embed([tmp_path / "nowhere.png"])


def test_unknown_suffix_raises(tiny_model, tmp_path):
    odd = tmp_path / "data.xyzzy"
    odd.write_text("?")
    with pytest.raises(UnknownSuffixError, match=r"data\.xyzzy: unknown file suffix '\.xyzzy'"):
        tiny_model.embed([odd])


def test_empty_input_list_raises(tiny_model):
    with pytest.raises(EmptyInputError, match="empty list"):
        tiny_model.embed([])


def test_empty_string_raises(tiny_model):
    with pytest.raises(EmptyInputError, match="empty text"):
        tiny_model.embed(["   "])


def test_missing_modality_raises_listing_the_available_ones(image_files):
    image_only = omniembed.create({"embed_dim": 16, "anchor": "image",
                                   "modalities": {"image": {"image_size": 32, "patch_size": 16,
                                                            "trunk": {"width": 32, "depth": 1, "heads": 2}}}}, seed=0)
    with pytest.raises(MissingModalityError, match=r"no 'text' encoder \(it has: image\)"):
        image_only.embed(["hello"], modality="text")
    with pytest.raises(InputError, match="cannot tell its modality"):
        image_only.embed(["hello"])


def test_skip_returns_good_rows_and_failures_in_order(tiny_model, image_files, tmp_path):
    inputs = [image_files["jpg"], image_files["truncated"], TEXTS[0], tmp_path / "gone.png", "", image_files["png"]]
    rows, failures = tiny_model.embed(inputs, on_error="skip", batch_size=2)
    assert [f.index for f in failures] == [1, 3, 4]
    assert "truncated.jpg" in failures[0].source and "truncated" in failures[0].reason
    assert "gone.png" in failures[1].source
    good = tiny_model.embed([inputs[0], inputs[2], inputs[5]])
    np.testing.assert_allclose(rows, good, atol=1e-5)


def test_bad_arguments_raise_config_errors(tiny_model):
    with pytest.raises(ConfigError, match="on_error"):
        tiny_model.embed(TEXTS, on_error="ignore")
    with pytest.raises(ConfigError, match="precision"):
        tiny_model.embed(TEXTS, precision="int3")
    with pytest.raises(ConfigError, match="batch_size"):
        tiny_model.embed(TEXTS, batch_size=0)


def test_open_clip_style_encoders_match_embed(tiny_model, image_files):
    image = tiny_model.processor("image").prepare(image_files["jpg"]).unsqueeze(0)
    tokens = tiny_model.processor("text").collate([TEXTS[0]])
    with torch.inference_mode():
        img = tiny_model.encode_image(image)
        txt = tiny_model.encode_text(tokens)
    np.testing.assert_allclose(img.numpy(), tiny_model.embed([image_files["jpg"]]), atol=1e-6)
    np.testing.assert_allclose(txt.numpy(), tiny_model.embed([TEXTS[0]]), atol=1e-6)
