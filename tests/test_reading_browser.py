"""The reading page in Chromium: sign in, read by keyboard, close the tab and resume, the aided arm on laptop screens
with its CAM over the image under zoom and pan, answer keys only once the image is drawn, the admin's progress and
export, the zh-CN page, and names with markup shown as text."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import chromium, needs_chromium
from reading_fixtures import PASSWORD, make_study, tiny_manifest
from sqlalchemy import select

from proctovision.reading.api import create_app
from proctovision.reading.db import Answer
from proctovision.reading.project import add_user, init_project
from proctovision.serving.background import running_server


def sign_in(page, url: str, name: str) -> None:
    page.goto(url)
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_selector("#home:not([hidden])")


def wait_position(page, text: str) -> None:
    """The case ``text`` is shown and its image drawn (answer keys count only from then)."""
    page.wait_for_function("text => document.getElementById('position').textContent === text", arg=text)
    page.wait_for_selector("#classes button:not([disabled])")


@needs_chromium
def test_reader_reads_ten_cases_by_keyboard_closes_the_tab_and_resumes(tmp_path: Path):
    project = make_study(tmp_path, n=12)
    with running_server(create_app(project=project)) as url, chromium() as browser:
        context = browser.new_context(locale="en-US")
        page = context.new_page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        sign_in(page, url, "alice")
        page.click("button.start-arm")
        for index in range(10):
            wait_position(page, f"Case {index + 1} of 12")
            page.keyboard.press("ArrowUp")
            page.keyboard.press(str(1 + index % 2))
        wait_position(page, "Case 11 of 12")
        with project.session() as session:
            answers = session.scalars(select(Answer).order_by(Answer.id)).all()
            assert len(answers) == 10 and {answer.label for answer in answers} == {"normal", "hemorrhoid"}
            assert all(answer.confidence == 55 for answer in answers)
        page.close()
        again = context.new_page()
        again.goto(url)
        again.wait_for_selector("#home:not([hidden])")
        assert "10/12" in again.text_content("#arms")
        again.click("button.start-arm")
        wait_position(again, "Case 11 of 12")
        assert dialogs == []


FITS = """() => {
  const inside = (selector) => { const box = document.querySelector(selector).getBoundingClientRect();
    return box.width > 0 && box.top >= 0 && box.left >= 0 && box.bottom <= innerHeight && box.right <= innerWidth; };
  const root = document.scrollingElement;
  return {scrolls: root.scrollHeight > innerHeight || root.scrollWidth > innerWidth,
          outside: ["#viewport", "#model", "#cam-opacity", "#confidence", "#classes"].filter((s) => !inside(s))};
}"""
GEOMETRY = """() => {
  const image = document.getElementById('case-image'), cam = document.getElementById('cam-image');
  const view = document.getElementById('viewport').getBoundingClientRect();
  const box = (node) => { const r = node.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; };
  const i = image.getBoundingClientRect();
  return {image: box(image), cam: box(cam), opacity: getComputedStyle(cam).opacity,
          aspects: [image.naturalWidth / image.naturalHeight, cam.naturalWidth / cam.naturalHeight],
          centre: [(view.left + view.width / 2 - i.left) / i.width, (view.top + view.height / 2 - i.top) / i.height]};
}"""


def cropped_frames(root: Path, n: int) -> Path:
    """Processor frames (1280x1024, fake names burned into the border) in a manifest that says crop: content."""
    import pandas as pd

    from proctovision.data.synthetic.endoscopy import generate_endoscopy

    manifest = generate_endoscopy(root, patients=n, images_per_patient=1, seed=1)["hemorrhoid"]
    pd.read_csv(manifest).assign(crop="content").to_csv(root / "cropped.csv", index=False)
    return root / "cropped.csv"


@needs_chromium
def test_aided_arm_fits_laptop_screens_and_the_cam_stays_on_the_image_then_the_admin_sees_progress(
        tmp_path: Path, run_dir: Path):
    project = init_project(tmp_path / "p", cropped_frames(tmp_path / "frames", 2), "hemorrhoid", "study",
                           arms=("aided",), model=run_dir)
    for name, role in (("alice", "reader"), ("admin", "admin")):
        add_user(project, name, role, PASSWORD)
    with running_server(create_app(project=project)) as url, chromium() as browser:
        for position, size in ((1, {"width": 1366, "height": 768}), (2, {"width": 1280, "height": 800})):
            context = browser.new_context(locale="en-US", viewport=size)
            page = context.new_page()
            missing = []
            page.on("response", lambda response: response.status == 404 and missing.append(response.url))
            sign_in(page, url, "alice")
            page.click("button.start-arm")
            wait_position(page, f"Case {position} of 2")
            assert page.title() == "Reading room · ProctoVision"
            page.keyboard.press("c")
            page.wait_for_function("() => { const cam = document.getElementById('cam-image');"
                                   " return !cam.hidden && cam.complete && cam.naturalWidth > 0; }")
            assert page.evaluate(FITS) == {"scrolls": False, "outside": []}, size
            shown = page.evaluate(GEOMETRY)
            assert shown["cam"] == pytest.approx(shown["image"], abs=0.5) and shown["opacity"] == "0.4"
            assert shown["aspects"][1] == pytest.approx(shown["aspects"][0], rel=0.01)  # not stretched
            page.keyboard.press("+")  # zooms about the centre of the view
            zoomed = page.evaluate(GEOMETRY)
            assert zoomed["image"][2] == pytest.approx(1.25 * shown["image"][2], rel=1e-3)
            assert zoomed["centre"] == pytest.approx(shown["centre"], abs=1e-3)
            view = page.locator("#viewport").bounding_box()
            page.mouse.move(view["x"] + 200, view["y"] + 200)
            page.mouse.down()
            page.mouse.move(view["x"] + 260, view["y"] + 170)
            page.mouse.up()
            panned = page.evaluate(GEOMETRY)
            assert panned["image"][0] == pytest.approx(zoomed["image"][0] + 60, abs=0.5)
            assert panned["cam"] == pytest.approx(panned["image"], abs=0.5)
            page.locator("#cam-opacity").fill("70")
            assert page.evaluate(GEOMETRY)["opacity"] == "0.7"
            options = page.evaluate("() => [...document.querySelectorAll('#window option')]"
                                    ".filter((o) => !o.hidden).map((o) => o.textContent)")
            assert "High contrast (MRI)" not in options and "Inverted" in options  # an endoscopy case
            page.keyboard.press("c")
            assert page.is_hidden("#cam-image")
            if position == 1:
                page.keyboard.press("2")
                wait_position(page, "Case 2 of 2")
            assert missing == []  # the favicon included
            context.close()
        admin = browser.new_context(locale="en-US", accept_downloads=True).new_page()
        sign_in(admin, url, "admin")
        admin.wait_for_selector("#progress-table tbody tr")  # the table fills after the panel shows
        assert admin.is_hidden("#work"), "an admin has no reading work of their own to list"
        row = admin.locator("#progress-table tbody tr td").all_text_contents()
        assert row[:3] == ["alice", "With the model", "1/2"] and row[3].endswith(" s") and row[4].endswith(" ago")
        with admin.expect_download() as download:
            admin.click("#export")
        saved = tmp_path / "downloaded.csv"
        download.value.save_as(saved)
        lines = saved.read_text().splitlines()
        assert lines[0].startswith("path,case,reader") and len(lines) == 2 and ",aided," in lines[1]


@needs_chromium
def test_answer_keys_wait_until_the_image_is_drawn(tmp_path: Path):
    project = make_study(tmp_path, n=2)
    with running_server(create_app(project=project)) as url, chromium() as browser:
        page = browser.new_context(locale="en-US").new_page()
        held, answers = [], []
        slow = lambda url: "/image" in url  # noqa: E731 - the image is slow to come
        page.route(slow, lambda route: held.append(route))
        page.on("request", lambda request: "/answers" in request.url and answers.append(request.post_data_json))
        sign_in(page, url, "alice")
        page.click("button.start-arm")
        page.wait_for_function("() => document.getElementById('position').textContent === 'Case 1 of 2'")
        page.wait_for_function("() => document.querySelector('#classes button').disabled")
        page.keyboard.press("1")  # a double press from the case before
        page.click("#classes button", force=True)
        page.wait_for_timeout(50)  # would the page send it, the request would start within this
        assert answers == [] and len(held) == 1
        held[0].continue_()
        page.unroute(slow)
        page.wait_for_selector("#classes button:not([disabled])")
        page.keyboard.press("2")
        wait_position(page, "Case 2 of 2")
        assert [answer["label"] for answer in answers] == ["hemorrhoid"]
    with project.session() as session:
        assert [answer.label for answer in session.scalars(select(Answer))] == ["hemorrhoid"]


@needs_chromium
def test_zh_cn_page_and_markup_in_names_and_classes_stay_text(tmp_path: Path):
    task = tmp_path / "task.yaml"
    task.write_text('name: markup\nclasses: ["<b>calm</b>", "<img src=y onerror=alert(2)>"]\n')
    manifest = tiny_manifest(tmp_path / "data", n=4, classes=("<b>calm</b>", "<img src=y onerror=alert(2)>"))
    project = init_project(tmp_path / "p", manifest, str(task), "study")
    add_user(project, "<img src=x onerror=alert(1)>", "reader", PASSWORD)
    with running_server(create_app(project=project)) as url, chromium() as browser:
        page = browser.new_context(locale="zh-CN").new_page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        sign_in(page, url, "<img src=x onerror=alert(1)>")
        assert page.get_attribute("html", "lang") == "zh-Hans" and page.title() == "阅片室 · ProctoVision"
        assert page.text_content("header strong") == "阅片室"
        assert page.text_content("#who") == "<img src=x onerror=alert(1)>"
        page.click("button.start-arm")
        wait_position(page, "第 1 例，共 4 例")
        buttons = page.locator("#classes button").all_text_contents()
        assert buttons == ["1 · <b>calm</b>", "2 · <img src=y onerror=alert(2)>"]
        assert page.locator("#classes img, #classes b, #who img").count() == 0
        page.keyboard.press("1")
        wait_position(page, "第 2 例，共 4 例")
        assert dialogs == []


@needs_chromium
def test_labelling_end_to_end_in_the_browser_with_adjudication_and_export(tmp_path: Path):
    project = init_project(tmp_path / "label", tiny_manifest(tmp_path / "data", n=4), "hemorrhoid", "labelling",
                           consensus="adjudication")
    for name, role in (("e1", "reader"), ("e2", "reader"), ("judge", "adjudicator"), ("admin", "admin")):
        add_user(project, name, role, PASSWORD)
    with running_server(create_app(project=project)) as url, chromium() as browser:
        for name, key in (("e1", "1"), ("e2", "2")):  # the two experts disagree on every case
            page = browser.new_context(locale="en-US").new_page()
            sign_in(page, url, name)
            page.click("button.start-arm")
            for index in range(4):
                wait_position(page, f"Case {index + 1} of 4")
                assert page.is_hidden("#model") and page.is_hidden("#experts")
                page.keyboard.press(key)
            page.wait_for_selector("#done:not([hidden])")
        judge = browser.new_context(locale="en-US").new_page()
        sign_in(judge, url, "judge")
        judge.click("#adjudicate")
        for left in range(4, 0, -1):
            wait_position(judge, f"{left} left to adjudicate")  # the count of what is left
            assert judge.is_hidden("#confidence-label"), "adjudication sends no confidence: no slider"
            labels = judge.locator("#expert-labels li").all_text_contents()
            assert sorted(labels) == ["Expert 1: normal", "Expert 2: hemorrhoid"]
            shown = judge.get_attribute("#case-image", "src")
            judge.keyboard.press("2")
            judge.wait_for_function("src => document.getElementById('case-image').getAttribute('src') !== src"
                                    " || !document.getElementById('done').hidden", arg=shown)
        judge.wait_for_selector("#done:not([hidden])")
        admin = browser.new_context(locale="en-US", accept_downloads=True).new_page()
        sign_in(admin, url, "admin")
        with admin.expect_download() as download:
            admin.click("#export")
        saved = tmp_path / "manifest.csv"
        download.value.save_as(saved)
    import pandas as pd

    manifest = pd.read_csv(saved)
    assert len(manifest) == 4 and set(manifest["label"]) == {"hemorrhoid"}
    assert set(manifest["consensus"]) == {"adjudicated"} and set(manifest["label_e1"]) == {"normal"}


@needs_chromium
def test_the_page_reports_hidden_and_idle_time_with_the_answer(tmp_path: Path):
    project = make_study(tmp_path, n=2)
    with running_server(create_app(project=project)) as url, chromium() as browser:
        page = browser.new_context(locale="en-US").new_page()
        page.clock.install()
        sign_in(page, url, "alice")
        page.click("button.start-arm")
        wait_position(page, "Case 1 of 2")
        hide = "hidden => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});" \
               " document.dispatchEvent(new Event('visibilitychange')); }"
        page.evaluate(hide, True)
        page.clock.fast_forward(30_000)  # 30 s in another tab
        page.evaluate(hide, False)
        page.clock.fast_forward(90_000)  # then 90 s without touching anything
        with page.expect_request(lambda request: "/answers" in request.url) as sent:
            page.keyboard.press("1")
        body = sent.value.post_data_json
        assert 29.5 <= body["hidden_s"] <= 31 and 89.5 <= body["idle_s"] <= 91


@needs_chromium
def test_mri_cases_offer_dicom_windows_and_zoom(tmp_path: Path):
    from proctovision.data.synthetic.mri import generate_mri

    project = init_project(tmp_path / "p", generate_mri(tmp_path / "mri", patients=2, slices_per_patient=1, size=64),
                           "fistula", "study")
    add_user(project, "alice", "reader", PASSWORD)
    with running_server(create_app(project=project)) as url, chromium() as browser:
        page = browser.new_context(locale="en-US").new_page()
        sign_in(page, url, "alice")
        page.click("button.start-arm")
        wait_position(page, "Case 1 of 2")
        assert page.locator("#window option").all_text_contents()[-2:] == ["DICOM: full range",
                                                                            "DICOM: contrast (5-95%)"]
        assert page.evaluate("() => !document.querySelector('#window option[value=contrast]').hidden")  # MRI
        page.select_option("#window", "dicom:contrast")
        page.wait_for_function("() => { const image = document.getElementById('case-image');"
                               " return image.src.endsWith('&window=contrast') && image.complete"
                               " && image.naturalWidth === 64; }")
        before = page.evaluate("() => document.getElementById('case-image').style.transform")
        page.keyboard.press("+")
        assert page.evaluate("() => document.getElementById('case-image').style.transform") != before
        page.keyboard.press("1")
        wait_position(page, "Case 2 of 2")
        assert page.input_value("#window") == "none"
