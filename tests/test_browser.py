"""The clinician's page in a real browser: Debian's headless Chromium driven by Playwright (no browser download)."""
import os
from pathlib import Path

from conftest import browser_page, needs_chromium, solid_image

from proctovision.serving.app import create_app

pytestmark = needs_chromium


def test_upload_through_the_page_shows_class_probabilities_and_overlay(run_dir: Path, tmp_path: Path):
    image = solid_image(tmp_path / "upload.png", (130, 50, 120), size=(60, 50))
    with browser_page(create_app(run_dir, load_in_background=False)) as (page, url):
        page.goto(url)
        page.set_input_files("#file", str(image))
        page.wait_for_selector("text=Done.", timeout=30_000)
        predicted = page.inner_text("#predicted")
        values = {cell.get_attribute("data-class"): float(cell.inner_text())
                  for cell in page.query_selector_all("td.probability")}
        assert predicted in {"normal", "hemorrhoid"}
        assert set(values) == {"normal", "hemorrhoid"} and abs(sum(values.values()) - 1) < 0.01
        assert page.inner_text("#threshold") == "hemorrhoid when its probability is at least 0.500."
        assert page.get_attribute("#overlay", "src").startswith("data:image/png;base64,")
        assert page.is_visible("#overlay")
        page.screenshot(path=str(tmp_path / "page.png"))
        if os.environ.get("PROCTOVISION_KEEP_SCREENSHOT"):
            page.screenshot(path=os.environ["PROCTOVISION_KEEP_SCREENSHOT"])
        assert (tmp_path / "page.png").stat().st_size > 5000


def test_a_flagged_image_shows_a_plain_warning_instead_of_a_class(run_dir: Path, tmp_path: Path):
    image = solid_image(tmp_path / "dark.png", (12, 6, 10), size=(60, 50))
    with browser_page(create_app(run_dir, load_in_background=False)) as (page, url):
        page.goto(url)
        assert not page.is_visible("#warning")
        page.set_input_files("#file", str(image))
        page.wait_for_selector("text=Done.", timeout=30_000)
        assert page.is_visible("#warning") and "too dark" in page.inner_text("#warning")
        assert page.inner_text("#predicted") not in {"normal", "hemorrhoid"}


def test_a_black_frame_shows_the_server_sentence_not_a_parse_error(tmp_path: Path):
    from PIL import Image
    from video_models import export_detector

    model = export_detector(tmp_path / "model", crop="content")
    Image.new("RGB", (1280, 1024)).save(tmp_path / "black.jpg", quality=90)
    with browser_page(create_app(model, load_in_background=False)) as (page, url):
        page.goto(url)
        page.set_input_files("#file", str(tmp_path / "black.jpg"))
        page.wait_for_selector("text=Done.", timeout=30_000)
        assert page.inner_text("#warning").startswith("The frame is too dark: no lit endoscopic field was found")
        assert page.inner_text("#error") == "" and page.inner_text("#predicted") not in {"normal", "hemorrhoid"}
        assert page.query_selector_all("td.probability") == [] and not page.is_visible("#overlay")
