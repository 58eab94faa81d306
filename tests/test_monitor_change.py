"""The change-control loop end to end from the CLI on a small world: a shifted stream raises an alarm, outcomes
come in, recalibrate then accept passes, a candidate on shuffled labels fails naming its criteria, one trained
with a locked-test patient is refused, retraining leaves the locked patients out, and only the approved version
may be served."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from reading_fixtures import PASSWORD, make_study
from proctovision.cli import app as cli_app
from proctovision.monitoring.folder import open_folder
from proctovision.serving.app import create_app


def cli(*args: str, input: str | None = None) -> SimpleNamespace:
    """Exit code and text as `proctovision` gives them: a user error is its one line and exit 1 (as main() does)."""
    from proctovision.core.errors import UserError

    result = CliRunner().invoke(cli_app, [str(arg) for arg in args], input=input)
    if isinstance(result.exception, UserError):
        return SimpleNamespace(exit_code=1, output=" ".join((result.output + str(result.exception)).split()))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return SimpleNamespace(exit_code=result.exit_code, output=" ".join(result.output.split()))


def post_images(client: TestClient, paths: list[Path]) -> list[str]:
    idents = []
    for path in paths:
        answer = client.post("/predict?heatmap=false", files={"file": ("frame.png", path.read_bytes(), "image/png")})
        assert answer.status_code == 200, answer.text
        idents.append(answer.json()["prediction_id"])
    return idents


@pytest.fixture(scope="module")
def accounts(tmp_path_factory) -> Path:
    from proctovision.reading.project import add_user

    project = make_study(tmp_path_factory.mktemp("approvers"), readers=())
    add_user(project, "alice", "clinician", PASSWORD)
    project.close()
    return Path(project.root)


def test_the_loop_from_the_cli(change_world: dict, tmp_path: Path, accounts: Path) -> None:
    from monitoring_fixtures import answer

    root, monitor = change_world["root"], tmp_path / "monitor"
    assert cli("monitor", "init", monitor, "--model", change_world["current"]).exit_code == 0
    # a shifted stream (every answer out of distribution) raises an alarm
    with open_folder(monitor) as opened:
        recorder = opened.recorder("predict", opened.model_sha256)
        recorder.record([answer(0.2, ood=True) for _ in range(60)])
        recorder.close()
        assert any(alarm["signal"] == "ood_share" for alarm in opened.alarms(open_only=True))
    # answers with kept images, then pathology outcomes
    client = TestClient(create_app(change_world["current"], load_in_background=False, monitor=monitor,
                                   keep_images_days=30))
    split = pd.read_csv(root / "split.csv")
    seen = split[split["split"] != "test"].reset_index(drop=True)
    idents = post_images(client, [root / path for path in seen["path"]])
    pd.DataFrame({"prediction_id": idents, "label": seen["label"], "source": "pathology"}).to_csv(
        tmp_path / "outcomes.csv", index=False)
    assert cli("monitor", "outcomes", monitor, tmp_path / "outcomes.csv").exit_code == 0
    assert "no change-control plan" in cli("monitor", "recalibrate", monitor, "--out", tmp_path / "r1").output
    registered = cli("monitor", "plan", monitor, change_world["plan"])
    assert registered.exit_code == 0 and "registered as version 1" in registered.output
    assert "unchanged: still version 1" in cli("monitor", "plan", monitor, change_world["plan"]).output
    # recalibrate, then accept passes
    recalibrated = cli("monitor", "recalibrate", monitor, "--out", tmp_path / "r1")
    assert recalibrated.exit_code == 0, recalibrated.output
    assert "on 32 confirmed cases" in recalibrated.output
    accepted = cli("monitor", "accept", tmp_path / "r1", "--monitor", monitor, "--resamples", 100)
    assert accepted.exit_code == 0, accepted.output
    assert json.loads((tmp_path / "r1" / "acceptance" / "acceptance.json").read_text())["recent"]["n_images"] == 32
    # shuffled labels fail, naming the criteria; a locked-test patient in training is refused
    shuffled = cli("monitor", "accept", change_world["shuffled"], "--monitor", monitor, "--out", tmp_path / "s",
                   "--resamples", 100)
    assert shuffled.exit_code == 1 and "not accepted; failing criteria: " in shuffled.output
    assert "brier at_most 0.2" in shuffled.output
    leaky = cli("monitor", "accept", change_world["leaky"], "--monitor", monitor, "--out", tmp_path / "l")
    assert leaky.exit_code == 1 and "refused" in leaky.output and "1 patient(s)" in leaky.output
    # approval: an approver of the plan, with the reading project's password check
    assert cli("monitor", "approve", monitor, tmp_path / "r1", "--user", "admin", "--auth", accounts,
               input="wrong\n").exit_code == 1
    not_approver = cli("monitor", "approve", monitor, tmp_path / "r1", "--user", "alice", "--auth", accounts,
                       input=PASSWORD + "\n")
    assert not_approver.exit_code == 1 and "not an approver" in not_approver.output
    assert "not accepted under the plan" in cli("monitor", "approve", monitor, change_world["shuffled"], "--user",
                                                "admin", "--auth", accounts, input=PASSWORD + "\n").output
    approved = cli("monitor", "approve", monitor, tmp_path / "r1", "--user", "admin", "--auth", accounts,
                   input=PASSWORD + "\n")
    assert approved.exit_code == 0, approved.output
    # only the approved version is served, and its answers carry its version
    with pytest.raises(ValueError):
        create_app(change_world["current"], load_in_background=False, monitor=monitor)
    served = TestClient(create_app(tmp_path / "r1", load_in_background=False, monitor=monitor))
    ident = post_images(served, [root / seen["path"].iloc[0]])[0]
    status = cli("monitor", "status", monitor, "--json", tmp_path / "status.json")
    assert status.exit_code == 0, status.output
    document = json.loads((tmp_path / "status.json").read_text())
    versions = {version["method"]: version for version in document["versions"]}
    assert versions["recalibrate"]["approved_by"] == "admin" and versions["candidate"]["accepted"] is False
    assert versions["recalibrate"]["parent_sha256"] == versions["deployed"]["sha256"]
    with open_folder(monitor) as opened:
        answers = opened.answers(columns=("id", "seq"))
        assert ident in set(answers["id"])
        from sqlalchemy import select

        from proctovision.monitoring.store import PredictionRecord

        with opened.sessions() as session:
            assert session.scalar(select(PredictionRecord.model_sha256).where(PredictionRecord.id == ident)) \
                == versions["recalibrate"]["sha256"]
    report = cli("monitor", "report", monitor, "--out", tmp_path / "report")
    assert report.exit_code == 0, report.output
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Model versions" in html and "approved by admin" in html and "rejected" in html
    table = pd.read_csv(tmp_path / "report" / "tables" / "versions.csv")
    assert list(table["method"]) == ["deployed", "recalibrate", "candidate"]
    forgotten = cli("monitor", "forget", monitor, "--before", "2999-01-01")
    assert forgotten.exit_code == 0 and "32 kept image(s) deleted" in forgotten.output


def test_retrain_leaves_the_locked_patients_out(change_world: dict, tmp_path: Path) -> None:
    from proctovision.monitoring.leakage import refuse_leak, training_rows
    from proctovision.monitoring.retrain import retrain

    root = change_world["root"]
    kept = pd.DataFrame({"path": [str(root / "img/normal0_0.png"), str(root / "img/hemorrhoid9_0.png")],
                         "label": ["normal", "hemorrhoid"], "patient_id": ["kept-1", "kept-2"]})
    record = retrain(change_world["current"], tmp_path / "retrained", kept, change_world["locked"],
                     {"trainer.epochs": 1}, evaluate=False)
    # the parent's 16 test rows by patient id; a kept image that is a locked-test image by its hash; then 24 + 1
    # training rows would leave a last batch of one image of 8 (BatchNorm cannot train on it): the kept one waits
    assert record["excluded"] == {"by_patient_id": 16, "by_image": 1}
    assert record["kept_images"] == 0 and record["held_back_for_a_full_batch"] == 1
    rows = training_rows(tmp_path / "retrained")
    assert not set(rows["patient_id"]) & set(pd.read_csv(change_world["locked"])["patient_id"])
    assert refuse_leak(tmp_path / "retrained", change_world["locked"])["checked"]
