"""The /monitor page in Chromium, in en-US and zh-CN, signed in under --auth; only an admin acknowledges."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import browser_page, needs_chromium
from fastapi.testclient import TestClient

from monitoring_fixtures import answer, evaluated_run, monitor_dir, monitor_template  # noqa: F401
from proctovision.monitoring.folder import open_folder
from reading_fixtures import PASSWORD, make_study


@pytest.fixture
def accounts(tmp_path: Path):
    from proctovision.reading.accounts import ProjectAccounts
    from proctovision.reading.project import add_user

    project = make_study(tmp_path / "accounts", readers=())
    add_user(project, "alice", "clinician", PASSWORD)
    yield ProjectAccounts(project)
    project.close()


def shifted(folder: Path) -> None:
    rng = np.random.default_rng(0)
    with open_folder(folder) as monitor:
        recorder = monitor.recorder("serve", monitor.model_sha256)
        recorder.record([answer(float(p)) for p in rng.random(120)] + [answer(0.3, ood=True) for _ in range(40)])
        recorder.close()


def sign_in(page, url: str, name: str) -> None:
    page.goto(url + "monitor")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


@needs_chromium
def test_monitor_page_in_both_languages_and_admin_acknowledges(evaluated_run: Path, monitor_dir: Path,
                                                               accounts) -> None:
    from proctovision.serving.app import create_app

    shifted(monitor_dir)
    app = create_app(evaluated_run, load_in_background=False, monitor=monitor_dir, auth=accounts)
    assert TestClient(app).get("/monitor").status_code == 401
    with browser_page(app) as (page, url):
        sign_in(page, url, "alice")
        page.goto(url + "monitor?lang=en")
        assert "160 answers recorded" in page.inner_text("#volume")
        assert page.locator(".alarm", has_text="ood_share").count() == 1
        assert page.locator("form.ack").count() == 0 and "Only an administrator" in page.inner_text("#alarms")
        assert page.locator("#figure-ood_cusum svg").count() == 1 and page.locator(".figure svg").count() == 4
        page.goto(url + "monitor?lang=zh-CN")
        assert "已记录 160 次回答" in page.inner_text("#volume") and "分布外比例" in page.inner_text("#alarms")
        assert page.evaluate("document.documentElement.lang") == "zh-Hans"
        page.context.clear_cookies()
        sign_in(page, url, "admin")
        page.goto(url + "monitor?lang=en")
        form = page.locator(".alarm", has_text="ood_share").locator("form.ack")
        form.locator("input[name=note]").fill("endoscope processor replaced; white balance redone")
        form.locator("button").click()
        page.wait_for_selector(".alarm:has-text('ood_share')", state="detached", timeout=10000)
    with open_folder(monitor_dir) as monitor:
        closed = [alarm for alarm in monitor.alarms() if alarm["signal"] == "ood_share"]
    assert closed[0]["acknowledged_by"] == "admin" and closed[0]["note"].startswith("endoscope")


def test_a_clinician_cannot_acknowledge_through_the_api(evaluated_run: Path, monitor_dir: Path, accounts) -> None:
    from proctovision.serving.app import create_app

    shifted(monitor_dir)
    client = TestClient(create_app(evaluated_run, load_in_background=False, monitor=monitor_dir, auth=accounts),
                        base_url="http://127.0.0.1")
    token = client.post("/auth/session", json={"username": "alice", "password": PASSWORD}).json()["csrf_token"]
    refused = client.post("/monitor/alarms/1/ack", json={"note": "x"}, headers={"X-CSRF-Token": token})
    assert refused.status_code == 403 and "administrator" in refused.json()["detail"]
    assert client.post("/monitor/alarms/1/ack", json={"note": "x"}).status_code == 403  # no CSRF token
