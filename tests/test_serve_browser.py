"""The search page in a real browser (headless Chromium from Debian, driven by Selenium): type a query, filter by
modality, upload a WAV, play an audio tile, turn a point cloud, ask for more like a tile, see the error of a corrupt
upload, use it with the keyboard alone and on a phone-sized screen. Skipped when Chromium or its driver is absent."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from omniembed.index import Index  # noqa: E402
from omniembed.serve import BackgroundServer, ServeConfig, build_app  # noqa: E402
from test_index_build import write_image, write_ply, write_tone  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 20.0
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--mute-audio")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Three pictures, two tones, a video, a point cloud and a caption in labelled folders, plus a corrupt WAV."""
    from test_video import write_video

    root = tmp_path_factory.mktemp("media")
    for sub in ("pictures", "tones", "clips", "shapes", "notes"):
        (root / sub).mkdir()
    files = {f"image{i}": write_image(root / "pictures" / f"pic{i}.png", i) for i in range(3)}
    files |= {f"tone{f}": write_tone(root / "tones" / f"tone{f}.wav", f) for f in (440, 880)}
    files["video"] = write_video(root / "clips" / "grey.mp4", seconds=1.0, fps=8, audio=False)
    files["cloud"] = write_ply(root / "shapes" / "blob.ply", 0)
    files["caption"] = root / "notes" / "caption.txt"
    files["caption"].write_text("a red square on a grey background")
    files["query"] = write_tone(tmp_path_factory.mktemp("query") / "query.wav", 440)
    files["corrupt"] = tmp_path_factory.mktemp("corrupt") / "noise.wav"
    files["corrupt"].write_bytes(b"RIFF not really a wave file" * 10)
    return files


@pytest.fixture(scope="module")
def server(media, tiny_model, tmp_path_factory):
    model_dir = tiny_model.save(tmp_path_factory.mktemp("model") / "omni-tiny")
    index_dir = tmp_path_factory.mktemp("index") / "idx"
    roots = sorted({p.parent for k, p in media.items() if k not in ("query", "corrupt")})
    Index.build(model_dir, index_dir, roots, label=lambda p: p.parent.name, progress=False).close()
    with BackgroundServer(build_app(index_dir, ServeConfig())) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip(f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER})")
    profile = tempfile.mkdtemp(prefix="omniembed-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# ---- helpers -----------------------------------------------------------------------------------------------------
def wait_for(driver, condition, message: str):
    return WebDriverWait(driver, WAIT).until(lambda d: condition(d), message)


def tiles(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#results .tile")


def tile_facts(driver) -> list[dict]:
    """Each tile's id, modality, score and name as the page shows them."""
    return driver.execute_script("""return [...document.querySelectorAll('#results .tile')].map(t => ({
        id: Number(t.dataset.id), modality: t.dataset.modality, score: Number(t.querySelector('.score').textContent),
        name: t.querySelector('.name').textContent, label: t.querySelector('.label').textContent}));""")


def wait_for_status(driver, text: str) -> None:
    wait_for(driver, lambda d: text in d.find_element(By.ID, "status").text, f"status never said {text!r}")


def open_page(driver, server) -> None:
    driver.get(server.url + "/")
    wait_for(driver, lambda d: "items" in d.find_element(By.ID, "index-info").text, "index info never loaded")


# ---- the tests ---------------------------------------------------------------------------------------------------
def test_text_query_filter_upload_play_more_like_this_and_a_corrupt_upload(browser, server, media):
    open_page(browser, server)
    info = browser.find_element(By.ID, "index-info").text
    assert "8 items" in info and "omni-tiny" in info and "2 audio" in info and "3 image" in info
    chips = [c.get_attribute("data-modality") for c in browser.find_elements(By.CSS_SELECTOR, ".chip")]
    assert chips == ["", "audio", "image", "pointcloud", "text", "video"]

    # a text query: every modality comes back, in the API's order and with its scores
    box = browser.find_element(By.ID, "q")
    box.send_keys("a red square", Keys.ENTER)
    wait_for(browser, lambda d: len(tiles(d)) == 8, "the text query never showed 8 tiles")
    shown = tile_facts(browser)
    expected = httpx.get(f"{server.url}/api/search", params={"q": "a red square", "k": 24}).json()["hits"]
    assert [t["id"] for t in shown] == [h["id"] for h in expected]
    assert [t["score"] for t in shown] == pytest.approx([round(h["score"], 3) for h in expected], abs=1e-9)
    assert {t["modality"] for t in shown} == {"image", "audio", "video", "pointcloud", "text"}
    caption = browser.find_element(By.CSS_SELECTOR, '.tile[data-modality="text"] blockquote')
    assert caption.text == "a red square on a grey background"
    assert browser.find_element(By.CSS_SELECTOR, '.tile[data-modality="video"] video').get_attribute("poster")
    assert {t["label"] for t in shown} >= {"label: pictures", "label: tones", "label: shapes"}

    # the audio chip: the same query, sounds only
    browser.find_element(By.CSS_SELECTOR, '.chip[data-modality="audio"]').click()
    wait_for(browser, lambda d: {t["modality"] for t in tile_facts(d)} == {"audio"}, "the filter kept other tiles")
    assert len(tiles(browser)) == 2

    # upload a WAV through the picker: the same recording is the best match, at cosine 1
    browser.find_element(By.ID, "file").send_keys(str(media["query"]))
    wait_for_status(browser, "Results for the audio file query.wav")
    assert browser.find_element(By.CSS_SELECTOR, "#status audio").get_attribute("src").startswith("blob:")
    shown = tile_facts(browser)
    assert [t["modality"] for t in shown] == ["audio", "audio"]
    assert shown[0]["name"] == "tone440.wav" and shown[0]["score"] == pytest.approx(1.0, abs=1e-3)

    # play the first audio tile: the browser fetches the file by its id and its clock advances
    played = browser.execute_async_script("""const done = arguments[arguments.length - 1];
        const audio = document.querySelector('#results .tile audio');
        audio.addEventListener('timeupdate', () => { if (audio.currentTime > 0) done({t: audio.currentTime,
            src: audio.currentSrc, duration: audio.duration}); });
        audio.play().catch(err => done({error: String(err)}));""")
    assert "error" not in played and played["t"] > 0 and played["duration"] == pytest.approx(0.5, abs=0.05)
    assert played["src"] == f"{server.url}/api/items/{shown[0]['id']}/media"

    # more like this, on every modality again: the item itself is left out
    browser.find_element(By.CSS_SELECTOR, '.chip[data-modality=""]').click()
    wait_for(browser, lambda d: len(tiles(d)) == 8, "clearing the filter never showed every tile")
    first = tile_facts(browser)[0]
    tiles(browser)[0].find_element(By.CSS_SELECTOR, "button.more").click()
    wait_for_status(browser, f"More like {first['modality']} {first['name']}")
    if first["modality"] != "text":  # texts have no thumbnail
        assert browser.find_element(By.CSS_SELECTOR, "#status img").get_attribute("src").endswith(
            f"/api/items/{first['id']}/thumbnail")
    shown = tile_facts(browser)
    assert len(shown) == 7 and first["id"] not in {t["id"] for t in shown}
    assert browser.switch_to.active_element.get_attribute("id") == "results"  # focus follows, for keyboards

    # a corrupt upload: the page shows the server's message naming the file; the last results stay
    browser.find_element(By.ID, "file").send_keys(str(media["corrupt"]))
    error = browser.find_element(By.ID, "error")
    wait_for(browser, lambda d: error.is_displayed(), "no error was shown for the corrupt upload")
    assert error.text.startswith("noise.wav: unsupported or corrupt audio") and "/tmp" not in error.text
    assert len(tiles(browser)) == 7

    # nothing on the page came from anywhere but this server (no CDN)
    sources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert sources and all(s.startswith(server.url) for s in sources)


def test_api_docs_render_offline(browser, server):
    browser.get(server.url + "/docs")
    title = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"),
                     "Swagger UI never rendered")[0]
    assert title.text.startswith("OmniEmbed search")
    operations = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/api/search", "/api/search/upload", "/api/search/item/{item_id}", "/api/info"} <= operations


def test_point_cloud_turns_by_keyboard_and_the_page_fits_a_phone(browser, server):
    open_page(browser, server)
    browser.find_element(By.TAG_NAME, "body").send_keys("/")  # "/" jumps to the search box
    assert browser.switch_to.active_element.get_attribute("id") == "q"
    browser.switch_to.active_element.send_keys("a blob of points", Keys.ENTER)
    canvas = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '.tile[data-modality="pointcloud"] canvas'),
                      "the point cloud viewer never appeared")[0]
    before = canvas.screenshot_as_png
    canvas.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    assert canvas.screenshot_as_png != before  # the cloud turned

    # keyboard only: Tab reaches every tile's "More like this", Enter runs it
    buttons = browser.find_elements(By.CSS_SELECTOR, "#results button.more")
    for _ in range(60):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        if browser.switch_to.active_element == buttons[0]:
            break
    assert browser.switch_to.active_element == buttons[0]
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for_status(browser, "More like")

    # a phone: 390 × 844 CSS pixels (an emulated device; a headless window cannot be narrower than 500)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True})
    try:
        layout = browser.execute_script("""const grid = document.getElementById('results');
            return {width: window.innerWidth, columns: getComputedStyle(grid).gridTemplateColumns.split(' ').length,
                    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth};""")
        assert layout == {"width": 390, "columns": 2, "overflow": 0}
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
