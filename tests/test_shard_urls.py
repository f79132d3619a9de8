"""Shard lists: a shard index never runs a command, pipe: only with the recipe's opt-in, every refusal lists the
accepted schemes, and missing or empty shards say so in one line (issue 17, items 2 and 9)."""

from __future__ import annotations

import json
import shlex
import tarfile
from pathlib import Path

import pytest
import yaml

from omniembed.pretrain import trainer
from omniembed.pretrain.config import DataConfig, DatasetConfig
from omniembed.pretrain.data import DataError, PairLoader
from omniembed.pretrain.shard_urls import ShardListError, expand_shards

from test_shards import make_pair_shards, processors  # noqa: F401  (a fixture)
from test_trainer import tiny_experiment

ACCEPTED = "accepted: local paths, file://, http://, https://, gs://"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_pair_shards(tmp_path_factory.mktemp("shapes"), n=12)


def write_index(path: Path, urls: list[str]) -> Path:
    path.write_text(json.dumps({"shardlist": [{"url": u, "nsamples": 6} for u in urls]}))
    return path


def config_for(shards: list[str], workers: int = 0, **data) -> DataConfig:
    return DataConfig(datasets=[DatasetConfig(name="shapes", shards=shards, pairs=[["image", "text"]])], batch_size=4,
                      streams=2, shuffle_buffer=2, num_workers=workers, **data)


# ---- item 2: pipe: URLs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("allow_pipe", [False, True])
def test_shard_index_with_a_pipe_url_is_refused_and_nothing_runs(shapes, tmp_path, processors, allow_pipe):
    marker = tmp_path / "ran"
    index = write_index(tmp_path / "shards.json", [str(shapes.parent / "shard-000000.tar"),
                                                   f"pipe:touch {shlex.quote(str(marker))}; cat /dev/null"])
    with pytest.raises(ShardListError) as caught:
        PairLoader(config_for([str(index)], allow_pipe_urls=allow_pipe), processors, seed=0)
    assert str(caught.value).startswith(f"{index}: refused shard URL 'pipe:touch")
    assert "a shard index never runs commands" in str(caught.value) and ACCEPTED in str(caught.value)
    assert not marker.exists()


def test_pipe_url_in_a_recipe_needs_allow_pipe_urls_and_then_reads_the_shard(shapes, processors):
    url = f"pipe:cat {shlex.quote(str(shapes.parent / 'shard-000000.tar'))}"
    with pytest.raises(ShardListError, match=r"data\.datasets\.0\.shards: refused shard URL 'pipe:cat .*set "
                                             r"data\.allow_pipe_urls: true in the recipe"):
        PairLoader(config_for([url]), processors, seed=0)
    batch = next(PairLoader(config_for([url], allow_pipe_urls=True), processors, seed=0))
    assert batch.size == 4 and tuple(batch.inputs["image"].shape) == (4, 3, 32, 32)


def test_recipe_key_allow_pipe_urls_is_off_by_default_and_read_from_yaml(shapes, tmp_path):
    from omniembed.pretrain.config import load_config

    exp = tiny_experiment(shapes, tmp_path / "out")
    assert load_config(_write(tmp_path / "a.yaml", exp)).data.allow_pipe_urls is False
    exp["data"]["allow_pipe_urls"] = True
    assert load_config(_write(tmp_path / "b.yaml", exp)).data.allow_pipe_urls is True


@pytest.mark.parametrize("url, scheme", [("ftp://host/s-000.tar", "ftp"), ("s3://bucket/s-000.tar", "s3"),
                                         ("sftp://host/s.tar", "sftp")])
def test_unsupported_scheme_names_the_url_and_lists_the_accepted_ones(tmp_path, url, scheme):
    with pytest.raises(ShardListError) as caught:
        expand_shards([url], where="data.datasets.0.shards")
    assert str(caught.value) == (f"data.datasets.0.shards: unsupported URL scheme '{scheme}:' in shard URL '{url}' "
                                 f"({ACCEPTED} (and pipe: in a recipe with data.allow_pipe_urls: true))")
    index = write_index(tmp_path / "remote.json", [url])
    with pytest.raises(ShardListError, match=f"^{index}: unsupported URL scheme '{scheme}:'"):
        expand_shards([str(index)])


def test_remote_urls_are_kept_as_given_and_relative_index_urls_resolve_next_to_the_index(tmp_path):
    (tmp_path / "a.tar").write_bytes(b"")
    index = write_index(tmp_path / "mixed.json", ["a.tar", "https://example.invalid/b.tar", "gs://bucket/c.tar"])
    assert expand_shards([str(index)]) == [str(tmp_path / "a.tar"), "https://example.invalid/b.tar",
                                           "gs://bucket/c.tar"]
    assert expand_shards(["https://example.invalid/s-{000..002}.tar"]) == [
        f"https://example.invalid/s-00{i}.tar" for i in range(3)]


# ---- item 9: missing and empty shards ----------------------------------------------------------------------------
def test_missing_or_empty_shard_folder_says_no_shards_found_at_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for entry, message in [(tmp_path / "nowhere", f"no shards found at {tmp_path / 'nowhere'}"),
                           (empty, f"no shards found at {empty} (no shards.json and no .tar files)"),
                           (tmp_path / "s-{000..003}.tar", f"no shards found at {tmp_path / 's-{000..003}.tar'}"),
                           (tmp_path / "gone.json",
                            f"no shards found at {tmp_path / 'gone.json'} (no such shard index)")]:
        with pytest.raises(ShardListError) as caught:
            expand_shards([str(entry)])
        assert str(caught.value) == message


def test_some_shards_of_a_pattern_missing_is_an_error_naming_the_first(tmp_path):
    for i in (0, 2):
        (tmp_path / f"s-00{i}.tar").write_bytes(b"")
    with pytest.raises(ShardListError, match=r"1 of the 3 shards of .*s-\{000\.\.002\}\.tar are missing \(first: "
                                             r".*s-001\.tar\)"):
        expand_shards([str(tmp_path / "s-{000..002}.tar")])


def test_a_folder_of_shards_reads_its_index_else_its_tar_files(shapes, tmp_path):
    assert expand_shards([str(shapes.parent)]) == expand_shards([str(shapes)])
    for name in ("b.tar", "a.tar"):
        (tmp_path / name).write_bytes(b"")
    assert expand_shards([str(tmp_path)]) == [str(tmp_path / "a.tar"), str(tmp_path / "b.tar")]


@pytest.mark.parametrize("content", ["[1, 2]", "{\"shardlist\": [{\"path\": \"a.tar\"}]}", "not json",
                                     "{\"shardlist\": []}"])
def test_damaged_shard_index_is_a_named_error(tmp_path, content):
    index = tmp_path / "shards.json"
    index.write_text(content)
    with pytest.raises(ShardListError, match=f"^(no shards found at )?{index}"):
        expand_shards([str(index)])


def test_shards_without_samples_stop_with_one_line_not_a_worker_traceback(tmp_path, processors):
    for i in range(2):
        tarfile.open(tmp_path / f"empty-{i}.tar", "w").close()
    loader = PairLoader(config_for([str(tmp_path / "empty-{0..1}.tar")], workers=2), processors, seed=0)
    with pytest.raises(DataError) as caught:
        next(loader)
    assert str(caught.value).startswith("no samples in the shards: 64 shard visits in a row gave none (last: ")
    assert "Traceback" not in str(caught.value) and "\n" not in str(caught.value)


def test_train_command_on_a_missing_shard_folder_exits_2_with_the_path(shapes, tmp_path, capsys):
    exp = tiny_experiment(shapes, tmp_path / "out")
    exp["data"]["datasets"][0]["shards"] = [str(tmp_path / "no-such-folder")]
    assert trainer.main([str(_write(tmp_path / "exp.yaml", exp))]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"omniembed train: error: no shards found at {tmp_path / 'no-such-folder'}"


def _write(path: Path, experiment: dict) -> Path:
    path.write_text(yaml.safe_dump(experiment))
    return path
