"""The reading page in Chromium: sign in, read by keyboard, close the tab and resume, the aided arm's CAM, the admin's
export, the zh-CN page, and names with markup shown as text."""
from __future__ import annotations

from pathlib import Path

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


@needs_chromium
def test_aided_case_shows_the_cam_and_the_admin_exports(tmp_path: Path, run_dir: Path):
    project = make_study(tmp_path, n=4, arms=("aided",), model=run_dir)
    with running_server(create_app(project=project)) as url, chromium() as browser:
        page = browser.new_context(locale="en-US").new_page()
        sign_in(page, url, "alice")
        page.click("button.start-arm")
        page.wait_for_selector("#model:not([hidden])")
        assert "%" in page.text_content("#model-values")
        page.keyboard.press("c")
        page.wait_for_function("() => { const cam = document.getElementById('cam-image');"
                               " return !cam.hidden && cam.naturalWidth > 0; }")
        page.keyboard.press("2")
        wait_position(page, "Case 2 of 4")
        admin = browser.new_context(locale="en-US", accept_downloads=True).new_page()
        sign_in(admin, url, "admin")
        admin.wait_for_selector("#progress-table tbody tr")  # the table fills after the panel shows
        assert "alice" in admin.text_content("#progress-table")
        with admin.expect_download() as download:
            admin.click("#export")
        saved = tmp_path / "downloaded.csv"
        download.value.save_as(saved)
        lines = saved.read_text().splitlines()
        assert lines[0].startswith("path,case,reader") and len(lines) == 2 and ",aided," in lines[1]


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
        assert page.get_attribute("html", "lang") == "zh-Hans"
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
        page.select_option("#window", "dicom:contrast")
        page.wait_for_function("() => { const image = document.getElementById('case-image');"
                               " return image.src.endsWith('?window=contrast') && image.complete"
                               " && image.naturalWidth === 64; }")
        before = page.evaluate("() => document.getElementById('case-image').style.transform")
        page.keyboard.press("+")
        assert page.evaluate("() => document.getElementById('case-image').style.transform") != before
        page.keyboard.press("1")
        wait_position(page, "Case 2 of 2")
        assert page.input_value("#window") == "none"
