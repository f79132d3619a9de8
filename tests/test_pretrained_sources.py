"""Named pretrained sources end to end: the tiny ImageBind fixture served from 127.0.0.1 is downloaded, verified,
converted once (licence notice, source.json, model card) and read back from the cache without the network."""

import argparse
import json
import math
import shutil
import warnings

import numpy as np
import pytest
from safetensors.torch import load_file

import omniembed
from omniembed.commands import models as models_command
from omniembed.convert import from_imagebind
from omniembed.convert.imagebind import OMNIEMBED_NAMES
from omniembed.convert.imagebind_arch import ImageBindArch
from omniembed.pretrained import (PretrainedSource, cache_root, get_source, register_source, unregister_source)
from omniembed.pretrained.converters import CONVERTERS
from omniembed.io import file_sha256
from omniembed.pretrained.errors import IntegrityError, OfflineError
from omniembed.provenance import LicenceNotice

from conftest import shared_path
from local_server import LocalFileServer, closed_port_url

NAME = "imagebind_tiny_test"


@pytest.fixture(scope="module")
def fixture_dir():
    return shared_path("fixtures", "imagebind-tiny")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIEMBED_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def server(fixture_dir, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(fixture_dir / "model.safetensors", root / "imagebind_tiny.safetensors")
    with LocalFileServer(root) as s:
        yield s


def tiny_source(fixture_dir, url, **changes) -> PretrainedSource:
    """The imagebind_huge entry, pointed at the tiny fixture: same converter, licence and notice; the fixture's
    sha256 as the published digest unless ``changes`` say otherwise."""
    huge = get_source("imagebind_huge")
    fields = dict(name=NAME, url=url, filename="imagebind_tiny.safetensors", converter="imagebind",
                  licence=huge.licence, licence_url=huge.licence_url, modalities=huge.modalities, embed_dim=32,
                  sha256=file_sha256(fixture_dir / "model.safetensors"),
                  arguments=json.loads((fixture_dir / "config.json").read_text()), notice=huge.notice)
    fields.update(changes)
    return register_source(PretrainedSource(**fields), replace=True)


@pytest.fixture
def registered(fixture_dir, server):
    source = tiny_source(fixture_dir, server.url("imagebind_tiny.safetensors"))
    yield source
    unregister_source(NAME)


def test_cache_directory_follows_omniembed_cache_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("OMNIEMBED_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.delenv("OMNIEMBED_CACHE")
    assert cache_root() == tmp_path / "xdg" / "omniembed"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "omniembed"


def test_first_load_downloads_verifies_and_converts_with_a_licence_notice(registered, server, cache, fixture_dir):
    with pytest.warns(LicenceNotice, match="CC BY-NC-SA 4.0: non-commercial"):
        model = omniembed.load(NAME, progress=False)
    assert server.requests == [("imagebind_tiny.safetensors", None)]
    converted = cache / "models" / NAME
    assert sorted(p.name for p in converted.iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                            "source.json"]
    assert list((cache / "downloads").iterdir()) == []  # the original is not kept beside its conversion
    record = json.loads((converted / "source.json").read_text())
    assert record["licence"] == "CC-BY-NC-SA-4.0" and record["url"] == registered.url
    assert record["sha256"] == registered.sha256 and record["sha256_published"] is True
    card = (converted / "README.md").read_text()
    assert "license: cc-by-nc-sa-4.0" in card and registered.sha256 in card
    reference = from_imagebind(load_file(str(fixture_dir / "model.safetensors")), registered.arguments)
    assert model.fingerprint() == reference.fingerprint()
    assert model.source == record


def test_second_load_reads_the_converted_safetensors_only(registered, server, cache, monkeypatch):
    with pytest.warns(LicenceNotice):
        first = omniembed.load(NAME, progress=False)
    monkeypatch.setitem(CONVERTERS, "imagebind", None)  # a second conversion would fail on this
    server.httpd.shutdown()  # and so would a second download
    with pytest.warns(LicenceNotice, match=f"loading {NAME}: ImageBind's weights"):
        again = omniembed.load(NAME)
    assert again.fingerprint() == first.fingerprint()
    assert len(server.requests) == 1
    texts = ["a dog barking", "rain on a window"]
    assert np.array_equal(first.embed(texts, modality="text"), again.embed(texts, modality="text"))


def test_a_wrong_digest_in_the_table_leaves_nothing_in_the_cache(fixture_dir, server, cache):
    tiny_source(fixture_dir, server.url("imagebind_tiny.safetensors"), sha256="0" * 64)
    try:
        with pytest.raises(IntegrityError, match=f"sha256 {file_sha256(fixture_dir / 'model.safetensors')} does "
                                                 f"not match the expected {'0' * 64}"):
            omniembed.load(NAME, progress=False)
    finally:
        unregister_source(NAME)
    assert [p for p in cache.rglob("*") if p.is_file() and p.parent.name != "locks"] == []


def test_unpublished_digest_is_recorded_and_a_file_that_does_not_convert_is_deleted(fixture_dir, server, cache,
                                                                                    tmp_path):
    tiny_source(fixture_dir, server.url("imagebind_tiny.safetensors"), sha256=None)
    try:
        with pytest.warns(LicenceNotice):
            omniembed.load(NAME, progress=False)
        record = json.loads((cache / "models" / NAME / "source.json").read_text())
        assert record["sha256"] == file_sha256(fixture_dir / "model.safetensors")
        assert record["sha256_published"] is False
        # a file of another model (no ImageBind keys) behind the same kind of entry: refused, and not kept
        other = tmp_path / "www" / "other.safetensors"
        omniembed.create("omni-tiny", seed=0).save(tmp_path / "omni")
        shutil.copy(tmp_path / "omni" / "model.safetensors", other)
        tiny_source(fixture_dir, server.url("other.safetensors"), sha256=None, name="not_imagebind",
                    filename="other.safetensors")
        with pytest.warns(LicenceNotice), pytest.raises(omniembed.CheckpointError,
                                                        match="does not convert.*not an ImageBind state dict"):
            omniembed.load("not_imagebind", progress=False)
        assert not (cache / "downloads" / "other.safetensors").exists()
        assert not (cache / "models" / "not_imagebind").exists()
    finally:
        unregister_source(NAME)
        unregister_source("not_imagebind")


def test_offline_first_load_says_where_to_put_the_file(fixture_dir, cache):
    source = tiny_source(fixture_dir, closed_port_url("imagebind_tiny.safetensors"))
    try:
        with pytest.raises(OfflineError, match=f"cannot reach {source.url}.*put it at "
                                               f"{cache / 'downloads' / 'imagebind_tiny.safetensors'}"):
            omniembed.load(NAME)
        # ... and a file put there by hand is verified, converted and used
        (cache / "downloads").mkdir(parents=True, exist_ok=True)
        shutil.copy(fixture_dir / "model.safetensors", cache / "downloads" / "imagebind_tiny.safetensors")
        with pytest.warns(LicenceNotice):
            assert omniembed.load(NAME).embed_dim == 32
    finally:
        unregister_source(NAME)


def test_every_cli_model_option_accepts_a_source_name(registered, cache, tmp_path, capsys):
    from omniembed.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LicenceNotice)
        assert main(["embed", "--model", NAME, "--text", "a dog", "--out", str(tmp_path / "e.npy")]) == 0
    vectors = np.load(tmp_path / "e.npy")
    assert vectors.shape == (1, 32) and math.isclose(float(np.linalg.norm(vectors[0])), 1.0, rel_tol=1e-5)
    capsys.readouterr()
    with pytest.warns(LicenceNotice):
        assert main(["info", NAME]) == 0
    assert f"source: {registered.url}; licence: CC-BY-NC-SA-4.0" in capsys.readouterr().out


def test_models_lists_every_pretrained_name_with_size_modalities_and_licence(registered, cache, capsys):
    assert models_command.run(argparse.Namespace(json=True, open_clip=False)) == 0
    listed = {s["name"]: s for s in json.loads(capsys.readouterr().out)["pretrained"]}
    huge = listed["imagebind_huge"]
    assert huge["licence"] == "CC-BY-NC-SA-4.0" and huge["embed_dim"] == 1024 and huge["sha256"] is None
    assert huge["parameters"] == 1_200_781_061
    assert listed[NAME]["cached"] is False
    assert models_command.run(argparse.Namespace(json=False, open_clip=False)) == 0
    table = capsys.readouterr().out
    assert "imagebind_huge   1.20 B params  ≈4.8 GB" in table and "licence=CC-BY-NC-SA-4.0" in table


def test_imagebind_huge_entry_agrees_with_the_converter(registered, cache):
    huge = get_source("imagebind_huge")
    assert huge.sha256 is None  # Meta publishes none: explicit, and recorded at first download instead
    assert huge.embed_dim == ImageBindArch().out_embed_dim
    assert set(huge.modalities) == set(OMNIEMBED_NAMES.values()) | {"video"}
    # the listed parameter count comes from the same layout the converter checks every tensor against
    with pytest.warns(LicenceNotice):
        tiny = omniembed.load(NAME, progress=False)
    vision_scale = 1  # OmniEmbed keeps a (fixed) logit scale for the image tower, which ImageBind has not
    stored = sum(t.numel() for t in tiny.state_dict().values())
    assert stored == CONVERTERS["imagebind"].parameters(registered.arguments) + vision_scale
    assert tuple(tiny.modalities) == registered.modalities and tiny.embed_dim == registered.embed_dim


def test_convert_command_records_imagebind_licence_and_file_digest(fixture_dir, tmp_path):
    from omniembed.cli import main

    args = ["convert", "imagebind", str(fixture_dir / "model.safetensors"), str(tmp_path / "out"),
            "--config", str(fixture_dir / "config.json")]
    with pytest.warns(LicenceNotice, match="converting imagebind:model.safetensors"):
        assert main(args) == 0
    record = json.loads((tmp_path / "out" / "source.json").read_text())
    assert record["licence"] == "CC-BY-NC-SA-4.0" and record["sha256_published"] is False
    assert record["sha256"] == file_sha256(fixture_dir / "model.safetensors")
    assert record["url"] == "local file model.safetensors"  # no local path in what may be pushed
    assert "**CC-BY-NC-SA-4.0**" in (tmp_path / "out" / "README.md").read_text()


def test_a_model_saved_from_licensed_weights_keeps_their_record_and_notice(registered, cache, tmp_path):
    with pytest.warns(LicenceNotice):
        model = omniembed.load(NAME, progress=False)
    model.save(tmp_path / "derived")
    assert json.loads((tmp_path / "derived" / "source.json").read_text()) == model.source
    with pytest.warns(LicenceNotice, match=f"loading {NAME}: .*CC BY-NC-SA 4.0"):
        again = omniembed.load(tmp_path / "derived")
    assert again.source["licence"] == "CC-BY-NC-SA-4.0"
