"""Downloads of pretrained weights from a local HTTP server: resume by Range after a cut connection, nothing left
in the cache on a wrong digest or size, an offline error that says where to put the file, hand-placed files
checked before use."""

import hashlib

import pytest

from omniembed.pretrained.download import fetch
from omniembed.pretrained.errors import DownloadError, IntegrityError, OfflineError

from local_server import LocalFileServer, closed_port_url

SIZE = 3 * (1 << 20) + 12345
"""Bytes in the served file: several download chunks, so a cut lands mid-file."""


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    data = (bytes(range(256)) * (SIZE // 256 + 1))[:SIZE]
    (root / "weights.pth").write_bytes(data)
    with LocalFileServer(root) as server:
        yield server, data, hashlib.sha256(data).hexdigest()


def test_download_writes_the_file_and_returns_its_sha256(served, tmp_path):
    server, data, digest = served
    dest = tmp_path / "cache" / "weights.pth"
    assert fetch(server.url("weights.pth"), dest, sha256=digest, size=SIZE, progress=False) == digest
    assert dest.read_bytes() == data
    assert sorted(p.name for p in dest.parent.iterdir()) == ["weights.pth"]
    assert server.requests == [("weights.pth", None)]


def test_a_cut_connection_is_resumed_with_a_range_request(served, tmp_path):
    server, data, digest = served
    server.cut_after["weights.pth"] = 1_500_000
    dest = tmp_path / "cache" / "weights.pth"
    assert fetch(server.url("weights.pth"), dest, sha256=digest, progress=False) == digest
    assert dest.read_bytes() == data
    assert server.requests == [("weights.pth", None), ("weights.pth", "bytes=1500000-")]


def test_an_interrupted_download_keeps_its_part_and_the_next_call_resumes_it(served, tmp_path):
    server, data, digest = served
    server.cut_after["weights.pth"] = 1_000_000
    dest = tmp_path / "cache" / "weights.pth"
    broke = f"connection broke at 1,000,000 of {SIZE:,} bytes \\(attempt 1 of 1\\).*resumes"
    with pytest.raises(DownloadError, match=broke):
        fetch(server.url("weights.pth"), dest, sha256=digest, retries=0, progress=False)
    part = dest.with_name("weights.pth.part")
    assert not dest.exists() and part.stat().st_size == 1_000_000
    assert fetch(server.url("weights.pth"), dest, sha256=digest, retries=0, progress=False) == digest
    assert server.requests[-1] == ("weights.pth", "bytes=1000000-")
    assert dest.read_bytes() == data and not part.exists()


def test_a_file_changed_on_the_server_since_the_cut_is_fetched_whole_not_spliced(served, tmp_path):
    server, data, _ = served
    server.cut_after["weights.pth"] = 1_000_000
    dest = tmp_path / "cache" / "weights.pth"
    with pytest.raises(DownloadError):
        fetch(server.url("weights.pth"), dest, retries=0, progress=False)
    assert dest.with_name("weights.pth.part.validator").read_text() == f'"{hashlib.sha256(data).hexdigest()}"'
    changed = data[::-1]  # same length: only the validator tells the versions apart
    (server.root / "weights.pth").write_bytes(changed)
    assert fetch(server.url("weights.pth"), dest, retries=0, progress=False) == hashlib.sha256(changed).hexdigest()
    assert server.requests[-1] == ("weights.pth", "bytes=1000000-")  # asked to resume, was sent the new file
    assert dest.read_bytes() == changed
    assert sorted(p.name for p in dest.parent.iterdir()) == ["weights.pth"]


def test_a_server_that_ignores_range_restarts_the_file_instead_of_appending(served, tmp_path):
    server, data, digest = served
    server.cut_after["weights.pth"] = 700_000
    server.ignore_range = True
    dest = tmp_path / "cache" / "weights.pth"
    assert fetch(server.url("weights.pth"), dest, sha256=digest, progress=False) == digest
    assert dest.read_bytes() == data


def test_a_wrong_sha256_leaves_nothing_in_the_cache(served, tmp_path):
    server, _, digest = served
    wrong = hashlib.sha256(b"another file").hexdigest()
    dest = tmp_path / "cache" / "weights.pth"
    with pytest.raises(IntegrityError, match=f"weights.pth: sha256 {digest} does not match the expected {wrong}"):
        fetch(server.url("weights.pth"), dest, sha256=wrong, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_a_file_shorter_than_the_published_size_leaves_nothing_in_the_cache(served, tmp_path):
    server, _, _ = served
    dest = tmp_path / "cache" / "weights.pth"
    with pytest.raises(IntegrityError, match=f"{SIZE:,} bytes, expected {SIZE + 1000:,} \\(truncated"):
        fetch(server.url("weights.pth"), dest, size=SIZE + 1000, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_offline_error_names_the_url_and_where_to_put_the_file(tmp_path):
    url = closed_port_url("imagebind_huge.pth")
    dest = tmp_path / "cache" / "downloads" / "imagebind_huge.pth"
    with pytest.raises(OfflineError) as info:
        fetch(url, dest, sha256="ab" * 32, progress=False)
    message = str(info.value)
    assert f"cannot reach {url}" in message
    assert f"put it at {dest} (sha256 {'ab' * 32})" in message
    assert not dest.exists() and not dest.with_name("imagebind_huge.pth.part").exists()


def test_a_hand_placed_file_is_checked_and_used_without_a_request(served, tmp_path):
    server, data, digest = served
    dest = tmp_path / "cache" / "weights.pth"
    dest.parent.mkdir()
    dest.write_bytes(data)
    assert fetch(server.url("weights.pth"), dest, sha256=digest, progress=False) == digest
    dest.write_bytes(data[:-1] + b"\0")
    with pytest.raises(IntegrityError, match="already in the cache.*does not match"):
        fetch(server.url("weights.pth"), dest, sha256=digest, progress=False)
    assert server.requests == []
