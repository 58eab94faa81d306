"""The live page in a real browser: Chromium's fake camera plays a generated endoscopy video (.y4m), the page
sends frames over the WebSocket and shows the class, read off the page as the lesion comes and goes."""
import os
from pathlib import Path

import pytest
from video_models import export_detector

from proctovision.data.demo_video import write_demo_video
from proctovision.serving.app import create_app
from proctovision.serving.background import running_server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs Debian's chromium (.ci/run installs it)"
)


def test_live_page_with_a_fake_camera_shows_the_class_as_the_lesion_comes_and_goes(tmp_path: Path):
    from playwright.sync_api import sync_playwright

    camera = write_demo_video(tmp_path / "camera.y4m", size=(320, 256), fps=15, seconds=4.0,
                              segments=[(1.0, 2.5)], seed=3)
    model = export_detector(tmp_path / "detector")
    with running_server(create_app(model, load_in_background=False)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=ARGS + [f"--use-file-for-fake-video-capture={camera.path}"])
        try:
            page = browser.new_page()
            page.goto(url + "live")
            page.click("#start")
            page.wait_for_function("Number(document.getElementById('frames').textContent) >= 3", timeout=30_000)
            seen = set()
            for _ in range(120):
                seen.add(page.inner_text("#shown"))
                if {"normal", "hemorrhoid"} <= seen:
                    break
                page.wait_for_timeout(100)
            assert {"normal", "hemorrhoid"} <= seen, seen
            assert 0 <= float(page.inner_text("#probability")) <= 1
            assert page.inner_text("#error") == ""
            assert page.eval_on_selector("#camera", "s => s.options.length") >= 1
            page.screenshot(path=str(tmp_path / "live.png"))
            if os.environ.get("PROCTOVISION_KEEP_SCREENSHOT"):
                page.screenshot(path=os.environ["PROCTOVISION_KEEP_SCREENSHOT"])
        finally:
            browser.close()
