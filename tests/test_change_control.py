"""The plan on a monitoring folder: registered by sha256, a new version on each edit (in the change log), refusals
before an update is allowed, and which version serve may serve."""
from __future__ import annotations

from pathlib import Path

import pytest

from change_fixtures import PLAN
from monitoring_fixtures import evaluated_run, monitor_dir, monitor_template  # noqa: F401
from proctovision.monitoring.change_control import (
    ChangeError,
    approve,
    approved_version,
    change_log,
    check_serving,
    recalibrate_monitor,
    register_plan,
)
from proctovision.monitoring.folder import open_folder


def plan_file(folder: Path, text: str = PLAN) -> Path:
    (folder / "locked_test.csv").write_text("path,label,patient_id\na.png,normal,p1\n")
    (folder / "change_plan.yaml").write_text(text)
    return folder / "change_plan.yaml"


def test_an_edited_plan_is_a_new_version_in_the_change_log(monitor_dir: Path, evaluated_run: Path,
                                                           tmp_path: Path) -> None:
    path = plan_file(tmp_path)
    with open_folder(monitor_dir) as monitor:
        check_serving(monitor, tmp_path / "anything")  # no plan yet: nothing to refuse
        assert approved_version(monitor) is None
        assert register_plan(monitor, path)["version"] == 1
        assert register_plan(monitor, path) == {"version": 1, "sha256": register_plan(monitor, path)["sha256"],
                                                "new": False}
        path.write_text(PLAN.replace("min_confirmed: 20", "min_confirmed: 30"))
        second = register_plan(monitor, path)
        log = change_log(monitor)
        served = approved_version(monitor)
    assert second["new"] and second["version"] == 2
    assert [entry["event"] for entry in log] == ["plan_registered", "plan_registered"]
    assert log[1]["details"]["replaces"] == 1
    assert served["sha256"] == open_folder(monitor_dir).model_sha256
    check_serving(open_folder(monitor_dir), evaluated_run)


def test_updates_wait_for_the_plan_and_enough_confirmed_cases(monitor_dir: Path, tmp_path: Path) -> None:
    with open_folder(monitor_dir) as monitor:
        register_plan(monitor, plan_file(tmp_path, PLAN.replace("[recalibrate, retrain]", "[retrain]")))
        with pytest.raises(ChangeError, match="does not allow recalibrate"):
            recalibrate_monitor(monitor, tmp_path / "new")
        register_plan(monitor, plan_file(tmp_path))
        with pytest.raises(ChangeError, match="0 confirmed cases; plan version 2 needs 20"):
            recalibrate_monitor(monitor, tmp_path / "new")
        with pytest.raises(ChangeError, match="'alice' is not an approver"):
            approve(monitor, tmp_path / "new", "alice")
        (tmp_path / "locked_test.csv").write_text("path,label,patient_id\nb.png,normal,p2\n")
        with pytest.raises(ChangeError, match="missing or changed since plan version 2 pinned it"):
            recalibrate_monitor(monitor, tmp_path / "new")
