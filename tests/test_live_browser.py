"""The live page in a real browser: Chromium's fake camera plays a generated endoscopy video (.y4m), the page
sends frames over the WebSocket and shows the class, read off the page as the lesion comes and goes."""
import os
from pathlib import Path

from conftest import browser_page, needs_chromium
from video_models import export_detector

from proctovision.data.synthetic.video import write_demo_video
from proctovision.serving.app import create_app

pytestmark = needs_chromium
FAKE_CAMERA = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")


def test_live_page_with_a_fake_camera_shows_the_class_as_the_lesion_comes_and_goes(tmp_path: Path):
    camera = write_demo_video(tmp_path / "camera.y4m", size=(320, 256), fps=15, seconds=4.0,
                              segments=[(1.0, 2.5)], seed=3)
    model = export_detector(tmp_path / "detector")
    camera_args = FAKE_CAMERA + (f"--use-file-for-fake-video-capture={camera.path}",)
    with browser_page(create_app(model, load_in_background=False), camera_args) as (page, url):
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
