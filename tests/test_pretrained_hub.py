"""``hf:ORG/REPO[@rev]`` through huggingface_hub itself, from a Hub cache laid out as huggingface_hub lays it
out (offline), and ``push_to_hub`` / ``omniembed push`` with the upload captured instead of sent."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import omniembed
from omniembed.cli import main
from omniembed.pretrained.errors import OfflineError

huggingface_hub = pytest.importorskip("huggingface_hub")
hub_constants = pytest.importorskip("huggingface_hub.constants")


def put_in_hub_cache(cache: Path, repo_id: str, folder: Path, revision: str = "main") -> str:
    """Store ``folder``'s files as one commit of model repo ``repo_id`` in a Hub cache (blobs named by content,
    snapshot files as relative symlinks to them, ``refs/<revision>`` holding the commit); returns the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    commit = hashlib.sha1(b"".join(p.read_bytes() for p in files) + revision.encode()).hexdigest()
    for path in files:
        blob = repo / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, blob)
        link = repo / "snapshots" / commit / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return commit


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture
def uploads(hub_cache, monkeypatch):
    """HfApi's network calls replaced: an upload lands in the Hub cache as the new commit of its branch."""
    calls = []

    def create_repo(self, repo_id, **options):
        calls.append(("create_repo", repo_id, options))

    def create_branch(self, repo_id, branch, **options):
        calls.append(("create_branch", repo_id, branch))

    def upload_folder(self, *, repo_id, folder_path, revision=None, commit_message=None, **options):
        calls.append(("upload_folder", repo_id, sorted(p.name for p in Path(folder_path).iterdir()), commit_message))
        commit = put_in_hub_cache(hub_cache, repo_id, Path(folder_path), revision or "main")
        return huggingface_hub.CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/{commit}",
                                          commit_message=commit_message, commit_description="", oid=commit)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_branch", create_branch)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return calls


def test_hf_spec_loads_a_saved_model_from_the_hub_cache_offline(tiny_model, hub_cache, tmp_path):
    tiny_model.save(tmp_path / "saved")
    commit = put_in_hub_cache(hub_cache, "someone/omni-tiny", tmp_path / "saved")
    loaded = omniembed.load("hf:someone/omni-tiny")
    assert loaded.fingerprint() == tiny_model.fingerprint()
    assert omniembed.load(f"hf:someone/omni-tiny@{commit}").fingerprint() == tiny_model.fingerprint()
    texts = ["a dog", "a cat on a sofa"]
    assert np.array_equal(loaded.embed(texts), tiny_model.embed(texts))


def test_hf_revision_selects_a_branch(tiny_model, hub_cache, tmp_path):
    other = omniembed.create("omni-tiny", seed=1)
    tiny_model.save(tmp_path / "v0")
    other.save(tmp_path / "v1")
    put_in_hub_cache(hub_cache, "someone/omni", tmp_path / "v0")
    put_in_hub_cache(hub_cache, "someone/omni", tmp_path / "v1", revision="v1")
    assert omniembed.load("hf:someone/omni").fingerprint() == tiny_model.fingerprint()
    assert omniembed.load("hf:someone/omni@v1").fingerprint() == other.fingerprint()


def test_hf_repo_missing_from_the_cache_offline_names_the_repo_and_the_fix(hub_cache):
    with pytest.raises(OfflineError, match=r"hf:nobody/nothing@v2: not in the Hub cache .*HF_HUB_OFFLINE is set.*"
                                           r"hf download nobody/nothing --revision v2"):
        omniembed.load("hf:nobody/nothing@v2")


def test_hf_repo_without_an_omniembed_checkpoint_is_refused(hub_cache, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("not a model")
    put_in_hub_cache(hub_cache, "someone/notes", tmp_path / "notes")
    with pytest.raises(omniembed.CheckpointError, match="hf:someone/notes: the repository holds no OmniEmbed "
                                                        "checkpoint \\(config.json missing"):
        omniembed.load("hf:someone/notes")


def test_malformed_hf_spec_is_a_config_error():
    with pytest.raises(omniembed.ConfigError, match="expected hf:ORG/REPO"):
        omniembed.load("hf:just-a-name")


def test_push_to_hub_uploads_the_saved_directory_with_its_card_and_loads_back(tiny_model, uploads):
    url = tiny_model.push_to_hub("me/omni-tiny", private=True)
    assert uploads[0] == ("create_repo", "me/omni-tiny", {"private": True, "exist_ok": True})
    assert uploads[1][:3] == ("upload_folder", "me/omni-tiny", ["README.md", "config.json", "model.safetensors"])
    assert url.startswith("https://huggingface.co/me/omni-tiny/commit/")
    loaded = omniembed.load("hf:me/omni-tiny")
    assert loaded.fingerprint() == tiny_model.fingerprint()
    card = Path(huggingface_hub.snapshot_download("me/omni-tiny")) / "README.md"
    assert 'omniembed.load("hf:me/omni-tiny")' in card.read_text()


def test_push_command_refreshes_the_card_with_the_eval_report_but_keeps_a_hand_written_one(tiny_model, uploads,
                                                                                           tmp_path, capsys):
    directory = tmp_path / "model"
    tiny_model.save(directory)
    (directory / "eval").mkdir()
    (directory / "eval" / "report.md").write_text("## Zero-shot classification by text prompts\n\n| image | 91.0% |\n")
    assert main(["push", str(directory), "me/omni", "--revision", "exp1", "--message", "first"]) == 0
    assert ("create_branch", "me/omni", "exp1") in uploads
    assert uploads[-1][3] == "first"
    card = (directory / "README.md").read_text()
    assert "## Evaluation" in card and "### Zero-shot classification" in card and "| image | 91.0% |" in card
    assert 'omniembed.load("hf:me/omni")' in card
    assert 'omniembed.load("hf:me/omni")' in capsys.readouterr().out
    (directory / "README.md").write_text("# my own words\n")
    assert main(["push", str(directory), "me/omni"]) == 0
    assert (directory / "README.md").read_text() == "# my own words\n"


def test_push_refuses_a_directory_that_is_not_a_checkpoint(tmp_path, uploads, capsys):
    assert main(["push", str(tmp_path), "me/omni"]) == 2
    assert "not an OmniEmbed checkpoint (config.json missing); nothing pushed" in capsys.readouterr().err
    assert uploads == []


def test_model_card_reports_sizes_training_and_source(tiny_model, tmp_path):
    from omniembed.model_card import render_model_card

    tiny_model.save(tmp_path / "m")
    (tmp_path / "m" / "training.json").write_text(json.dumps(
        {"pairs": [["audio", "image"]], "datasets": ["fsdd"], "steps": 300, "recipe": "omnidigits.yaml",
         "init": {"from": "runs/anchor", "pairs": [["image", "text"]], "datasets": ["mnist"], "steps": 100}}))
    card = render_model_card(tmp_path / "m")
    assert "license: unknown" in card and "one 64-dimensional space" in card
    text_params = sum(p.numel() for p in tiny_model.encoder("text").parameters()) + sum(
        b.numel() for b in tiny_model.encoder("text").buffers() if b.numel() and b.dtype.is_floating_point)
    assert f"| text | {text_params / 1e6:.1f} M |" in card
    assert "| video | 0 (runs other modalities' encoders) |" in card
    assert "- 300 steps on fsdd (pairs: audio–image), started from `runs/anchor`:" in card
    assert "  recipe: omnidigits.yaml\n  - 100 steps on mnist (pairs: image–text)" in card


def test_hf_loads_from_the_cache_when_the_hub_is_unreachable_without_offline_mode(tiny_model, hub_cache, tmp_path,
                                                                                  monkeypatch):
    from local_server import closed_port_url

    tiny_model.save(tmp_path / "saved")
    put_in_hub_cache(hub_cache, "someone/omni-tiny", tmp_path / "saved")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    down = closed_port_url("").rstrip("/")  # a Hub endpoint on 127.0.0.1 where nothing listens: no network
    monkeypatch.setattr(hub_constants, "ENDPOINT", down)
    assert omniembed.load("hf:someone/omni-tiny").fingerprint() == tiny_model.fingerprint()
    with pytest.raises(OfflineError, match="hf:someone/absent: not in the Hub cache .* cannot be reached; fetch it"):
        omniembed.load("hf:someone/absent")
