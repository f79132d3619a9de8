"""A screenshot of the search page on an index, as in the README (``docs/serve.png``).

    .venv/bin/python tools/serve_screenshot.py omnidigits-demo/index docs/serve.png \
        (--text "the number seven" | --upload seven.ply) --modality image,audio,video [--width 1280 --height 1000]
        [--full-page]

Serves the index on a free loopback port, opens the page in headless Chromium (Debian's, through Selenium), runs
the query, waits for every thumbnail and point-cloud viewer, and saves the window as a PNG.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--text", default="the number seven")
    parser.add_argument("--upload", type=Path, default=None, help="search with this file instead of --text")
    parser.add_argument("--modality", default="", help="chips to press, comma-separated")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--full-page", action="store_true", help="grow the window to the whole page first")
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from omniembed.serve import BackgroundServer, ServeConfig, build_app

    profile = tempfile.mkdtemp(prefix="omniembed-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={args.width},{args.height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    wait = WebDriverWait(driver, 60)
    try:
        with BackgroundServer(build_app(args.index, ServeConfig())) as server:
            driver.get(server.url + "/")
            wait.until(lambda d: "items" in d.find_element(By.ID, "index-info").text)
            for modality in filter(None, args.modality.split(",")):
                driver.find_element(By.CSS_SELECTOR, f'.chip[data-modality="{modality}"]').click()
            if args.upload:
                driver.find_element(By.ID, "file").send_keys(str(args.upload.resolve()))
            else:
                driver.find_element(By.ID, "q").send_keys(args.text, Keys.ENTER)
            wait.until(lambda d: "Results for" in d.find_element(By.ID, "status").text)
            wait.until(lambda d: d.execute_script(
                "return [...document.images].filter(i => i.getBoundingClientRect().top < innerHeight)"
                ".every(i => i.complete && i.naturalWidth > 0) && "
                "document.querySelectorAll('.tile[data-modality=pointcloud] img').length === 0"))
            if args.full_page:
                chrome = driver.execute_script("return window.outerHeight - window.innerHeight")
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(args.width, height + chrome)
                wait.until(lambda d: d.execute_script(
                    "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
            driver.execute_script("document.activeElement.blur()")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
