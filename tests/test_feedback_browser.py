"""The feedback panel of the clinician page in Chromium, in en-US and zh-CN: a button and a key each record
feedback against the answer's prediction id."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import chromium, needs_chromium, solid_image
from sqlalchemy import select

from monitoring_fixtures import evaluated_run, monitor_dir, monitor_template  # noqa: F401
from proctovision.monitoring.change_store import Feedback
from proctovision.monitoring.folder import open_folder


@needs_chromium
@pytest.mark.parametrize(("locale", "ask", "agreed", "corrected"), [
    ("en-US", "Do you agree with the model?", "Recorded: you agreed.", "Recorded: corrected to"),
    ("zh-CN", "您是否同意模型的判断？", "已记录：您同意。", "已记录：已更正为"),
])
def test_agree_by_button_and_correct_by_key(evaluated_run: Path, monitor_dir: Path, tmp_path: Path, locale: str,
                                            ask: str, agreed: str, corrected: str) -> None:
    from proctovision.serving.app import create_app
    from proctovision.serving.background import running_server

    image = solid_image(tmp_path / "upload.png", (130, 50, 120), size=(60, 50))
    app = create_app(evaluated_run, load_in_background=False, monitor=monitor_dir)
    with running_server(app) as url, chromium() as browser:
        page = browser.new_context(locale=locale).new_page()
        page.goto(url)
        page.set_input_files("#file", str(image))
        page.wait_for_selector("#feedback", timeout=30_000)
        assert ask in page.inner_text("#feedback")
        page.click("#feedback-agree")
        page.wait_for_selector(f"#feedback-status:has-text('{agreed}')")
        page.select_option("#feedback-reason", index=3)
        page.keyboard.press("1")
        page.wait_for_selector(f"#feedback-status:has-text('{corrected}')")
    with open_folder(monitor_dir) as monitor, monitor.sessions() as session:
        decided = monitor.answers()["decision"].iloc[0]
        rows = [(row.verdict, row.label, row.current, row.reason) for row in session.scalars(select(Feedback))]
    other = "normal" if decided == "hemorrhoid" else "hemorrhoid"
    assert rows[0][:3] == ("agree", decided, False) and rows[1][:3] == ("disagree", other, True)
    assert rows[1][3]  # the chosen reason, in the page's language
