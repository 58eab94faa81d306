"""The admin's page in Chromium: agreement so far is shown with its n and 95% CI, and every reader pair with its n."""
from __future__ import annotations

from pathlib import Path

from conftest import chromium, needs_chromium
from reading_fixtures import PASSWORD, make_study, read_all
from sqlalchemy import select

from proctovision.reading.api import create_app
from proctovision.reading.db import Case
from proctovision.serving.background import running_server


@needs_chromium
def test_admin_page_shows_kappa_with_n_ci_and_the_pairs(tmp_path: Path):
    project = make_study(tmp_path, readers=(("alice", "senior"), ("bob", "junior")))
    with project.session() as session:
        truth = {case.id: case.label for case in session.scalars(select(Case))}
    flip = {sorted(c for c in truth if truth[c] == "normal")[0], sorted(c for c in truth if truth[c] != "normal")[0]}
    other = {"normal": "hemorrhoid", "hemorrhoid": "normal"}
    read_all(project, "alice", "unaided", lambda case: truth[case])
    read_all(project, "bob", "unaided", lambda case: other[truth[case]] if case in flip else truth[case])
    with running_server(create_app(project=project)) as url, chromium() as browser:
        page = browser.new_context(locale="en-US").new_page()
        page.goto(url)
        page.fill("#username", "admin")
        page.fill("#password", PASSWORD)
        page.click("#login-button")
        page.wait_for_selector("#agreement li li")
        text = page.text_content("#agreement")
    assert "Without the model: Fleiss' kappa" in text and "n = 8" in text
    assert "on the cases all 2 readers have read" in text and "95% CI" in text, text
    assert "alice / bob: Cohen's kappa 0.500 (95% CI" in text, text
