"""POST /feedback on serve --monitor: 201, the clinician under --auth with CSRF, anonymous without; IDOR (an unknown
id or another deployment's is 404); a label outside the classes 422; a second feedback replaces the first and both
stay in the audit; kept images are the content area alone and respect the retention limit."""
from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from monitoring_fixtures import evaluated_run, monitor_dir, monitor_template  # noqa: F401
from reading_fixtures import PASSWORD, make_study
from proctovision.monitoring.change_store import ChangeLog, Feedback
from proctovision.monitoring.feedback import confirmed_cases, team_figures
from proctovision.monitoring.folder import open_folder
from proctovision.serving.app import create_app


def png_bytes(colour=(130, 50, 120)) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", (40, 30), colour)
    image.save(buffer, format="PNG", pnginfo=_text_chunk())
    return buffer.getvalue()


def _text_chunk():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("PatientName", "DOE^JANE")
    return info


def predict(client: TestClient, **headers) -> str:
    answer = client.post("/predict?heatmap=false", files={"file": ("DOE_JANE.png", png_bytes(), "image/png")},
                         headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["prediction_id"]


@pytest.fixture(scope="module")
def accounts(tmp_path_factory):
    from proctovision.reading.accounts import ProjectAccounts
    from proctovision.reading.project import add_user

    project = make_study(tmp_path_factory.mktemp("feedback-accounts"), readers=())
    add_user(project, "alice", "clinician", PASSWORD)
    add_user(project, "carol", "clinician", PASSWORD)
    yield ProjectAccounts(project)
    project.close()


def signed_in(app, name: str) -> tuple[TestClient, str]:
    client = TestClient(app)
    answer = client.post("/auth/session", json={"username": name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return client, answer.json()["csrf_token"]


def test_anonymous_feedback_is_201_and_counts_as_confirmed(evaluated_run: Path, monitor_dir: Path):
    client = TestClient(create_app(evaluated_run, load_in_background=False, monitor=monitor_dir))
    ident = predict(client)
    answer = client.post("/feedback", json={"prediction_id": ident, "verdict": "agree"})
    assert answer.status_code == 201, answer.text
    with open_folder(monitor_dir) as monitor:
        decided = monitor.answers()["decision"].iloc[0]
        assert answer.json() == {"prediction_id": ident, "verdict": "agree", "label": decided,
                                 "clinician": "anonymous", "replaced": False}
        confirmed = confirmed_cases(monitor)
    assert confirmed.to_dict("records") == [{"prediction_id": ident, "label": decided, "source": "feedback"}]


def test_unknown_or_foreign_ids_are_404_and_labels_outside_the_classes_422(evaluated_run: Path, monitor_dir: Path,
                                                                          tmp_path: Path):
    other_folder = Path(shutil.copytree(monitor_dir, tmp_path / "other"))
    mine = TestClient(create_app(evaluated_run, load_in_background=False, monitor=monitor_dir))
    other = TestClient(create_app(evaluated_run, load_in_background=False, monitor=other_folder))
    foreign = predict(other)
    ident = predict(mine)
    assert mine.post("/feedback", json={"prediction_id": foreign, "verdict": "agree"}).status_code == 404
    assert mine.post("/feedback", json={"prediction_id": "0" * 24, "verdict": "agree"}).status_code == 404
    assert mine.post("/feedback", json={"prediction_id": ident, "verdict": "disagree",
                                        "label": "fissure"}).status_code == 422
    assert mine.post("/feedback", json={"prediction_id": ident, "verdict": "maybe"}).status_code == 422
    assert mine.post("/feedback", json={"prediction_id": ident, "verdict": "disagree"}).status_code == 422
    assert mine.post("/feedback", content=b"not json").status_code == 422
    with open_folder(monitor_dir) as monitor, monitor.sessions() as session:
        assert session.scalars(select(Feedback)).all() == []


def test_under_auth_the_clinician_is_recorded_csrf_is_required_and_a_second_feedback_replaces(
        evaluated_run: Path, monitor_dir: Path, accounts):
    app = create_app(evaluated_run, load_in_background=False, monitor=monitor_dir, auth=accounts)
    assert TestClient(app).post("/feedback", json={"prediction_id": "x", "verdict": "agree"}).status_code == 401
    alice, csrf = signed_in(app, "alice")
    ident = predict(alice, **{"X-CSRF-Token": csrf})
    body = {"prediction_id": ident, "verdict": "agree"}
    assert alice.post("/feedback", json=body).status_code == 403
    assert alice.post("/feedback", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert alice.post("/feedback", json=body, headers={"X-CSRF-Token": csrf,
                                                       "Origin": "http://evil.example"}).status_code == 403
    first = alice.post("/feedback", json=body, headers={"X-CSRF-Token": csrf})
    assert first.status_code == 201 and first.json()["clinician"] == "alice"
    with open_folder(monitor_dir) as monitor:
        decided = monitor.answers()["decision"].iloc[0]
    corrected = "normal" if decided == "hemorrhoid" else "hemorrhoid"
    second = alice.post("/feedback", json={**body, "verdict": "disagree", "label": corrected,
                                           "reason": "Poor image quality"}, headers={"X-CSRF-Token": csrf})
    assert second.status_code == 201 and second.json()["replaced"] is True
    carol, carol_csrf = signed_in(app, "carol")
    assert carol.post("/feedback", json=body, headers={"X-CSRF-Token": carol_csrf}).status_code == 201
    with open_folder(monitor_dir) as monitor:
        with monitor.sessions() as session:
            rows = [(row.clinician, row.verdict, row.current) for row in session.scalars(select(Feedback))]
            events = [row.event for row in session.scalars(select(ChangeLog))]
        team = team_figures(monitor)
    assert rows == [("alice", "agree", False), ("alice", "disagree", True), ("carol", "agree", True)]
    assert events == ["feedback"] * 3
    assert team["n_feedback"] == 2 and team["override"]["value"] == 0.5
    assert team["by_clinician"]["alice"]["value"] == 1.0 and team["by_clinician"]["carol"]["value"] == 0.0
    assert team["override"]["ci"] == pytest.approx([0.0945, 0.9055], abs=1e-4)  # Wilson, 1 of 2
    page = alice.get("/monitor?lang=en").text
    assert "override rate, alice" in page and "1.000" in page and "0.095 – 0.905" in page
    assert "否决率（carol）" in alice.get("/monitor?lang=zh-CN").text


def test_kept_images_are_the_pixels_alone_and_respect_the_retention_limit(evaluated_run: Path, monitor_dir: Path):
    from proctovision.monitoring.kept import enforce_retention, forget, kept_images

    with pytest.raises(ValueError, match="retention-days"):
        create_app(evaluated_run, load_in_background=False, monitor=monitor_dir, keep_images_days=0)
    client = TestClient(create_app(evaluated_run, load_in_background=False, monitor=monitor_dir,
                                   keep_images_days=30))
    idents = [predict(client) for _ in range(3)]
    kept = kept_images(monitor_dir)
    assert sorted(path.stem for path in kept) == sorted(idents)
    with Image.open(kept[0]) as image:
        assert image.info == {} and image.mode == "RGB" and image.size == (40, 30)
    assert b"DOE" not in kept[0].read_bytes()
    old = time.time() - 31 * 86400
    os.utime(kept[0], (old, old))
    assert enforce_retention(monitor_dir, 30) == 1 and len(kept_images(monitor_dir)) == 2
    import datetime as dt

    assert forget(monitor_dir, dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)) == 2
    assert kept_images(monitor_dir) == []


def test_serve_refuses_keep_images_without_monitor_or_retention(evaluated_run: Path, monitor_dir: Path) -> None:
    from typer.testing import CliRunner

    from proctovision.cli import app as cli_app

    for flags in (["--keep-images"], ["--keep-images", "--monitor", str(monitor_dir)],
                  ["--retention-days", "30", "--monitor", str(monitor_dir)]):
        result = CliRunner().invoke(cli_app, ["serve", str(evaluated_run), *flags])
        assert result.exit_code == 1 and "--keep-images needs --monitor DIR and --retention-days" in " ".join(
            result.output.split())
