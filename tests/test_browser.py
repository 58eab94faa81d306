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


def test_a_withheld_answer_hides_the_numbers_and_heatmap_until_show_anyway(run_dir: Path, tmp_path: Path):
    import json

    image = solid_image(tmp_path / "dark.png", (12, 6, 10), size=(60, 50))
    log = tmp_path / "audit.log"
    with browser_page(create_app(run_dir, load_in_background=False, audit_log=log)) as (page, url):
        page.goto(url)
        page.set_input_files("#file", str(image))
        page.wait_for_selector("text=Done.", timeout=30_000)
        warning = page.inner_text("#warning")
        assert "too dark" in warning and "the model cannot judge such images" in warning
        assert page.inner_text("#predicted") == "not shown (see the warning)"
        assert not page.is_visible("#probabilities") and not page.is_visible("#threshold")
        assert not page.is_visible("#overlay") and page.query_selector_all("td.probability") == []
        page.click("#show-anyway")
        page.wait_for_selector("td.probability")
        assert page.inner_text("#predicted") in {"normal", "hemorrhoid"} and page.is_visible("#overlay")
        assert "the model cannot judge such images" in page.inner_text("#warning"), "the sentence stays"
    events = [json.loads(line).get("event", "answer") for line in log.read_text().splitlines()]
    assert events == ["answer", "shown_anyway"]


def test_signed_in_pages_keep_the_language_and_send_an_ended_session_back_to_sign_in(run_dir: Path, tmp_path: Path):
    from reading_fixtures import PASSWORD, make_study

    from proctovision.reading.accounts import ProjectAccounts
    from proctovision.reading.project import add_user

    project = make_study(tmp_path / "study")
    add_user(project, "dora", "clinician", PASSWORD)
    accounts = ProjectAccounts(project)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    image = solid_image(tmp_path / "ok.png", (130, 50, 120), size=(60, 50))
    try:
        with browser_page(create_app(run_dir, load_in_background=False, auth=accounts)) as (page, url):
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(url + "?lang=zh-CN")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the sign-in form fits a phone"
            page.fill("input[name=username]", "dora")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("#drop")
            assert "lang=zh-CN" in page.url and "拖放到此处" in page.inner_text("#drop"), "the language survives"
            page.set_input_files("#file", str(empty))
            page.wait_for_function("() => document.getElementById('error').textContent !== ''")
            assert page.inner_text("#error") == "上传的文件为空。"
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            token = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == accounts.cookie_name)
            accounts.sign_out(token)  # the session ends elsewhere (signed out in another tab, expired)
            page.set_input_files("#file", str(image))
            page.wait_for_selector("input[name=password]", timeout=30_000)
            assert "会话已结束" in page.inner_text("#error") and "令牌" not in page.content()
            assert page.get_attribute("input[name=lang]", "value") == "zh-CN"
    finally:
        project.close()
