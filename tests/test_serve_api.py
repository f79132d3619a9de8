"""The search server's JSON API without a browser: searches agree with ``Index.search``, files only by indexed id,
uploads read like ``embed()`` with bad ones a JSON 4xx naming the upload, the size limit, the token beyond
loopback, the Host check on loopback, and no traceback ever."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from omniembed.cli import main  # noqa: E402
from omniembed.index import Index  # noqa: E402
from omniembed.serve import ServeConfig, build_app, is_loopback  # noqa: E402
from omniembed.serve.guard import COOKIE  # noqa: E402
from test_index_build import write_image, write_ply, write_tone  # noqa: E402

LOCAL = ServeConfig(allowed_hosts=("testserver",))
"""Loopback settings, with the test client's Host header allowed."""


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("files")
    for sub in ("pictures", "tones", "shapes", "notes"):
        (root / sub).mkdir()
    for i in range(3):
        write_image(root / "pictures" / f"pic{i}.png", i)
    for f in (440, 880):
        write_tone(root / "tones" / f"tone{f}.wav", f)
    write_ply(root / "shapes" / "blob.ply", 0)
    (root / "notes" / "caption.txt").write_text("a red square on a grey background")
    model_dir = tiny_model.save(tmp_path_factory.mktemp("model") / "omni-tiny")
    out = tmp_path_factory.mktemp("index") / "idx"
    Index.build(model_dir, out, [root], label=lambda p: p.parent.name, progress=False).close()
    return out


@pytest.fixture(scope="module")
def client(index_dir) -> TestClient:
    return TestClient(build_app(index_dir, LOCAL), raise_server_exceptions=False)


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()["error"]


def ids_by_name(client) -> dict[str, int]:
    hits = client.get("/api/search", params={"q": "anything", "k": 50}).json()["hits"]
    return {h["name"]: h["id"] for h in hits}


def test_info_counts_the_index_and_names_the_model(client):
    info = client.get("/api/info").json()
    assert info["count"] == 7 and info["by_modality"] == {"audio": 2, "image": 3, "pointcloud": 1, "text": 1}
    assert info["model_name"] == "omni-tiny" and info["embed_dim"] == 64
    assert {".wav", ".png", ".mp4", ".ply"} <= set(info["upload_suffixes"])
    assert info["views"]["audio"] == {"player": "audio", "thumbnail": True}
    assert info["views"]["text"] == {"player": "text", "thumbnail": False}
    assert info["views"]["pointcloud"]["player"] == "points"


def test_text_search_returns_what_index_search_returns(client, index_dir):
    body = client.get("/api/search", params={"q": "a red square", "k": 5, "modality": "image,audio"}).json()
    expected = Index.open(index_dir).search("a red square", k=5, modalities=["image", "audio"])
    assert body["query"] == {"kind": "text", "text": "a red square"}
    assert [h["id"] for h in body["hits"]] == [h.id for h in expected]
    assert [h["score"] for h in body["hits"]] == pytest.approx([h.score for h in expected], abs=1e-6)
    assert [h["rank"] for h in body["hits"]] == [1, 2, 3, 4, 5]
    first = body["hits"][0]
    assert first["media"] == f"/api/items/{first['id']}/media" and first["path"] == expected[0].path
    assert first["label"] == Path(expected[0].path).parent.name and first["name"] == Path(expected[0].path).name


def test_upload_of_an_indexed_wav_finds_itself_first(client, index_dir):
    wav = Path(Index.open(index_dir).search("x", k=10, modalities=["audio"])[0].path)
    body = client.post("/api/search/upload", params={"k": 3},
                       files={"file": (wav.name, wav.read_bytes(), "audio/wav")}).json()
    assert body["query"] == {"kind": "upload", "name": wav.name, "modality": "audio"}
    assert body["hits"][0]["name"] == wav.name and body["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_more_like_this_uses_the_stored_vector_and_leaves_the_item_out(client, index_dir):
    ids = ids_by_name(client)
    body = client.get(f"/api/search/item/{ids['pic0.png']}", params={"k": 3}).json()
    index = Index.open(index_dir)
    assert body["query"] == {"kind": "item", "name": "pic0.png", "modality": "image", "id": ids["pic0.png"]}
    assert ids["pic0.png"] not in [h["id"] for h in body["hits"]] and len(body["hits"]) == 3
    path = next(h.path for h in index.search("x", k=10) if h.id == ids["pic0.png"])
    direct = [h.id for h in index.search(Path(path), k=4) if h.id != ids["pic0.png"]][:3]
    assert [h["id"] for h in body["hits"]] == direct


def test_items_are_served_by_id_only(client, index_dir):
    ids = ids_by_name(client)
    wav = client.get(f"/api/items/{ids['tone440.wav']}/media")
    path = next(h.path for h in Index.open(index_dir).search("x", k=10) if h.id == ids["tone440.wav"])
    assert wav.status_code == 200 and wav.content == Path(path).read_bytes()
    assert wav.headers["content-type"].startswith("audio/") and wav.headers["x-content-type-options"] == "nosniff"
    part = client.get(f"/api/items/{ids['tone440.wav']}/media", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == Path(path).read_bytes()[:100]  # players seek by ranges

    thumb = Image.open(io.BytesIO(client.get(f"/api/items/{ids['pic1.png']}/thumbnail").content))
    assert thumb.size == (256, 256) and thumb.mode == "RGB"
    points = np.array(client.get(f"/api/items/{ids['blob.ply']}/points").json()["points"])
    assert points.shape == (512, 3) and np.linalg.norm(points, axis=1).max() == pytest.approx(1.0, abs=1e-3)
    meta = client.get(f"/api/items/{ids['caption.txt']}").json()
    assert meta["text"] == "a red square on a grey background" and meta["score"] is None

    assert error_of(client.get("/api/items/99999/media"), 404)["message"] == "item 99999: no such item in the index"
    assert error_of(client.get(f"/api/items/{ids['caption.txt']}/points"), 404)["message"].endswith(
        "has no points (it is text)")
    assert error_of(client.get("/api/items/..%2F..%2Fetc%2Fpasswd/media"), 404)["type"] == "HTTPError"
    assert error_of(client.get("/api/items/tone440.wav/media"), 422)["input"] == "item_id"
    assert client.get("/api/media", params={"path": "/etc/passwd"}).status_code == 404  # no path route exists


@pytest.mark.parametrize("name, data, status, reason", [
    ("noise.wav", b"RIFF not really a wave file" * 10, 422, "noise.wav: unsupported or corrupt audio"),
    ("half.png", None, 422, "half.png: cannot decode image"),
    ("broken.mp4", b"not a video" * 50, 422, "broken.mp4: cannot decode video"),
    ("flat.ply", b"ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nend_header\n", 422, "flat.ply: "),
    ("notes.qqq", b"abc", 415, "notes.qqq: unknown file suffix '.qqq'"),
    ("empty.wav", b"", 422, "empty.wav: the upload is empty"),
])
def test_a_bad_upload_is_a_json_4xx_naming_it(client, name, data, status, reason):
    if data is None:  # a truncated PNG
        buffer = io.BytesIO()
        Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 90).save(buffer, format="PNG")
        data = buffer.getvalue()[:60]
    error = error_of(client.post("/api/search/upload", files={"file": (name, data)}), status)
    assert error["input"] == name and error["message"].startswith(reason)
    assert "omniembed-upload-" not in error["message"] and "Traceback" not in error["message"]


def test_an_upload_over_the_limit_is_refused_with_413_and_one_of_unknown_length_with_411(index_dir):
    small = TestClient(build_app(index_dir, ServeConfig(allowed_hosts=("testserver",), max_upload_bytes=1000)))
    error = error_of(small.post("/api/search/upload", files={"file": ("big.wav", b"\0" * 2_000_000)}), 413)
    assert re.fullmatch(r"request body: 2000\d{3} bytes is over the limit of 1049576 bytes", error["message"])
    error = error_of(small.post("/api/search/upload", files={"file": ("mid.wav", b"\0" * 5000)}), 413)
    assert error["message"] == "mid.wav: is over the upload limit of 1000 bytes"
    chunked = small.post("/api/search/upload", content=iter([b"--x\r\n"] * 3),
                         headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert error_of(chunked, 411)["message"] == "request body: send a Content-Length (chunked uploads are refused)"


def test_bad_parameters_are_400s_and_422s_naming_the_parameter(client):
    assert error_of(client.get("/api/search", params={"q": "x", "k": 0}), 422)["input"] == "k"
    assert error_of(client.get("/api/search", params={"q": "x", "k": 201}), 422)["input"] == "k"
    assert error_of(client.get("/api/search", params={"q": "   "}), 422)["message"] == "text query: is empty"
    error = error_of(client.get("/api/search", params={"q": "x", "modality": "smell"}), 400)
    assert "unknown modality smell" in error["message"]
    assert error_of(client.get("/api/search", params={"q": "x" * 1001}), 422)["message"].endswith(
        "over the limit of 1000")
    assert error_of(client.get("/api/nothing-here"), 404)["message"] == "/api/nothing-here: Not Found"


def test_an_unexpected_failure_is_a_json_500_without_a_traceback(index_dir, monkeypatch):
    from omniembed.serve.service import SearchService

    app = build_app(index_dir, LOCAL)
    monkeypatch.setattr(SearchService, "info", lambda self: 1 / 0)
    error = error_of(TestClient(app, raise_server_exceptions=False).get("/api/info"), 500)
    assert error == {"type": "InternalError", "input": "/api/info",
                     "message": "/api/info: internal error (ZeroDivisionError); the server log has the details"}


def test_beyond_loopback_every_api_call_needs_the_token(index_dir):
    config = ServeConfig(host="0.0.0.0").secured()
    assert config.token and len(config.token) >= 24 and not config.paths_visible
    client = TestClient(build_app(index_dir, config))
    assert error_of(client.get("/api/info"), 401)["type"] == "UnauthorizedError"
    assert client.get("/api/info").headers["www-authenticate"] == "Bearer"
    assert error_of(client.get("/api/info", headers={"Authorization": "Bearer wrong-token"}), 401)
    info = client.get("/api/info", headers={"Authorization": f"Bearer {config.token}"}).json()
    assert info["count"] == 7 and info["model"] is None  # no server paths beyond loopback
    hit = client.get("/api/search", params={"q": "x"}, headers={"Authorization": f"Bearer {config.token}"})
    assert "path" not in hit.json()["hits"][0]

    # the page trades ?token= for a cookie, so its <img> and <audio> requests carry it
    assert error_of(client.get("/?token=wrong-token", follow_redirects=False), 401)
    landing = client.get(f"/?token={config.token}", follow_redirects=False)
    assert landing.status_code == 303 and landing.headers["location"] == "/"
    assert client.cookies.get(COOKIE) == config.token
    assert client.get("/api/info").status_code == 200
    assert client.get("/").status_code == 200 and client.get("/docs").status_code == 200


def test_on_loopback_only_local_host_headers_are_served(index_dir):
    client = TestClient(build_app(index_dir, ServeConfig()), base_url="http://127.0.0.1:8000")
    assert client.get("/api/info").status_code == 200
    error = error_of(client.get("/api/info", headers={"Host": "evil.example:8000"}), 400)  # DNS rebinding
    assert error["message"] == ("Host evil.example:8000: this server answers only to local names "
                                "(it listens on loopback)")
    assert client.get("/api/info", headers={"Host": "localhost:8000"}).status_code == 200
    assert client.get("/api/info", headers={"Host": "[::1]:8000"}).status_code == 200
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.1.2.3", "example.com")] == \
        [True, True, True, False, False, False]


def test_page_and_docs_are_served_without_a_cdn(client):
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/viewer.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    docs = client.get("/docs").text
    assert "/static-offline-docs/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/info", "/api/search", "/api/search/upload", "/api/search/item/{item_id}",
            "/api/items/{item_id}/media"} <= set(spec["paths"])


def test_serve_command_refuses_a_missing_index_by_name(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nowhere"), "--port", "0"]) == 2
    assert f"{tmp_path / 'nowhere'}: no index here" in capsys.readouterr().err


def test_serve_without_the_serve_extra_names_what_to_install(index_dir, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # an import of it raises ImportError, as when not installed
    assert main(["serve", str(index_dir), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "omniembed serve needs the optional package 'uvicorn', which cannot be imported" in err
    assert err.rstrip().endswith("pip install 'omniembed[serve]'")


def test_serve_config_rejects_a_short_token_and_a_bad_port():
    from omniembed.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 8 characters"):
        ServeConfig(token="abc").validate()
    with pytest.raises(ConfigError, match="port must be 0–65535, got 70000"):
        ServeConfig(port=70000).validate()
    assert ServeConfig().secured().token is None  # loopback: no token made up


def test_upload_names_keep_the_suffix_and_lose_any_folder():
    from omniembed.serve.service import upload_name

    assert upload_name("../../etc/passwd.wav") == "passwd.wav"
    assert upload_name("C:\\Users\\me\\scan.depth.png") == "C_Users_me_scan.depth.png"
    assert upload_name("a b;c.ply") == "a_b_c.ply"
    assert upload_name("") == upload_name(None) == upload_name("..") == "upload"
    assert upload_name("x" * 500 + ".wav") == "x" * 116 + ".wav"


def test_serve_command_prints_a_working_address_and_demo_takes_the_same_options(index_dir):
    import subprocess
    import sys

    import httpx

    from omniembed.cli import build_parser
    from omniembed.commands.serve import server_config

    server = subprocess.Popen([sys.executable, "-m", "omniembed.cli", "serve", str(index_dir), "--port", "0",
                               "--token", "a-long-enough-token"], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # printed once the socket listens
        url = re.search(r"on (http://127\.0\.0\.1:\d+)/\?token=a-long-enough-token ", line).group(1)
        assert httpx.get(f"{url}/api/info").status_code == 401
        info = httpx.get(f"{url}/api/info", headers={"Authorization": "Bearer a-long-enough-token"}).json()
        assert info["count"] == 7
    finally:
        server.terminate()
        server.wait(timeout=30)

    args = build_parser().parse_args(["demo", "--quick", "--serve", "--port", "0", "--max-upload-mb", "2"])
    config = server_config(args)
    assert args.serve and (config.host, config.port, config.max_upload_bytes) == ("127.0.0.1", 0, 2 * 1024 * 1024)


def test_an_item_pruned_from_the_index_is_no_longer_served(tmp_path, tiny_model):
    (tmp_path / "pictures").mkdir()
    keep, drop = (write_image(tmp_path / "pictures" / f"pic{i}.png", i) for i in range(2))
    index = Index.build(tiny_model, tmp_path / "idx", [tmp_path / "pictures"], progress=False)
    client = TestClient(build_app(tmp_path / "idx", LOCAL, model=tiny_model))
    ids = ids_by_name(client)
    assert client.get(f"/api/items/{ids['pic1.png']}/media").content == drop.read_bytes()

    drop.unlink()
    assert error_of(client.get(f"/api/items/{ids['pic1.png']}/media"), 410)["message"] == (
        f"item {ids['pic1.png']} (pic1.png): its file is gone since it was indexed")
    index.prune()
    assert error_of(client.get(f"/api/items/{ids['pic1.png']}/media"), 404)["message"] == (
        f"item {ids['pic1.png']}: no such item in the index")
    assert error_of(client.get(f"/api/search/item/{ids['pic1.png']}"), 404)
    assert [h["name"] for h in client.get(f"/api/search/item/{ids['pic0.png']}").json()["hits"]] == []
    assert keep.is_file()


def test_concurrent_text_queries_share_model_calls_and_get_their_own_results(tiny_model):
    import threading
    import time

    from omniembed.serve.batching import TextBatcher

    texts = [f"query number {i}" for i in range(16)]
    alone = {t: tiny_model.embed([t], modality="text")[0] for t in texts}
    calls = []

    class SlowModel:  # the first call holds the lock a while, so the other callers queue up behind it
        def embed(self, items, **kwargs):
            calls.append(len(items))
            time.sleep(0.3 if len(calls) == 1 else 0)
            return tiny_model.embed(items, **kwargs)

    batcher = TextBatcher(SlowModel(), threading.Lock())
    got: dict[str, np.ndarray] = {}
    threads = [threading.Thread(target=lambda t=t: got.__setitem__(t, batcher.embed(t))) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(calls) == 16 and len(calls) < 16 and max(calls) > 1
    for t in texts:
        np.testing.assert_allclose(got[t], alone[t], atol=1e-5)
