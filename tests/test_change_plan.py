"""The change-control plan: read strictly, pinned by sha256 (its own and its locked test set's)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from change_fixtures import PLAN
from proctovision.monitoring.change_plan import PlanError, check_locked, load_plan, parse_plan


def write_plan(folder: Path, text: str = PLAN) -> Path:
    (folder / "locked_test.csv").write_text("path,label,patient_id\na.png,normal,p1\n")
    (folder / "change_plan.yaml").write_text(text)
    return folder / "change_plan.yaml"


def test_the_issue_plan_reads_and_pins_both_files(tmp_path: Path) -> None:
    loaded = load_plan(write_plan(tmp_path))
    assert loaded.plan.modifications == ["recalibrate", "retrain"]
    assert loaded.plan.criteria[0].rules() == {"non_inferior_margin": 0.02}
    assert loaded.plan.criteria[1].rules() == {"at_least": 0.8, "ci_lower_at_least": 0.5}
    assert loaded.sha256 == hashlib.sha256(PLAN.encode()).hexdigest()
    assert loaded.locked_sha256 == hashlib.sha256((tmp_path / "locked_test.csv").read_bytes()).hexdigest()
    assert loaded.allows("recalibrate") and loaded.plan.recalibration == "temperature"


@pytest.mark.parametrize(("change", "message"), [
    (("roc_auc", "rocauc"), "unknown metric 'rocauc'"),
    (("non_inferior_margin: 0.02", "non_inferior_margn: 0.02"), "unknown key (misspelt?)"),
    (("approvers: [admin]", "approvers: []"), "approvers"),
    (("min_confirmed: 20", "min_confirmed: 0"), "min_confirmed"),
    (("[recalibrate, retrain]", "[recalibrate, replace]"), "modifications"),
    (("    at_least: 0.80\n", "    between: [1.25, 0.8]\n"), "the lower bound comes first"),
])
def test_a_wrong_plan_is_refused_naming_file_and_field(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = write_plan(tmp_path, PLAN.replace(*change))
    with pytest.raises(PlanError) as error:
        load_plan(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)


def test_a_criterion_without_a_rule_or_a_missing_locked_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="give at least one of non_inferior_margin"):
        parse_plan(PLAN.replace("    non_inferior_margin: 0.02\n", ""))
    with pytest.raises(PlanError, match="calibration_slope: non_inferior_margin needs a paired difference"):
        parse_plan(PLAN.replace("metric: roc_auc", "metric: calibration_slope"))
    (tmp_path / "change_plan.yaml").write_text(PLAN)
    with pytest.raises(PlanError, match="locked_test locked_test.csv not found"):
        load_plan(tmp_path / "change_plan.yaml")


def test_a_changed_locked_test_set_is_refused(tmp_path: Path) -> None:
    loaded = load_plan(write_plan(tmp_path))
    check_locked(loaded, loaded.locked_sha256)
    (tmp_path / "locked_test.csv").write_text("path,label,patient_id\nb.png,hemorrhoid,p2\n")
    with pytest.raises(PlanError, match="changed since the plan was registered"):
        check_locked(loaded, loaded.locked_sha256)
