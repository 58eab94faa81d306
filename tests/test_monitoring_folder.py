"""The monitoring folder: init from a run's validation split, refusals, recording without identifiers, alarms."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from monitoring_fixtures import answer, evaluated_run, monitor_dir, monitor_template  # noqa: F401
from reading_fixtures import postgres  # noqa: F401
from proctovision.monitoring.folder import init_folder, open_folder
from proctovision.monitoring.store import MonitorError


def test_init_builds_the_reference_from_the_validation_split(monitor_dir: Path, evaluated_run: Path) -> None:
    profile = json.loads((monitor_dir / "reference.json").read_text())
    import pandas as pd

    val = pd.read_csv(evaluated_run / "predictions.csv").query("split == 'val'")
    assert profile["n"] == len(val)
    assert profile["scores"] == pytest.approx(val["prob_hemorrhoid"].tolist(), abs=1e-6)
    assert sum(profile["class_mix"].values()) == pytest.approx(1.0)
    assert profile["ood"]["threshold"] > 0 and "quality_note" in profile
    design = json.loads((monitor_dir / "monitor.json").read_text())["design"]
    assert design["charts"]["ood_share"]["arl0"] >= 0.9 * design["in_control_arl_per_chart"]


def test_a_model_without_validation_predictions_is_refused(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(MonitorError, match="no validation predictions.*proctovision evaluate"):
        init_folder(tmp_path / "m", run_dir)
    assert not (tmp_path / "m" / "monitor.json").exists()


def test_not_a_monitoring_folder_and_a_corrupt_database(tmp_path: Path, monitor_dir: Path) -> None:
    with pytest.raises(MonitorError, match="not a monitoring folder"):
        open_folder(tmp_path)
    database = monitor_dir / "monitor.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(str(database) + suffix).unlink(missing_ok=True)
    database.write_bytes(b"this is not a database" * 100)
    with pytest.raises(MonitorError, match="cannot be read.*left untouched"):
        open_folder(monitor_dir)
    assert database.read_bytes() == b"this is not a database" * 100


def test_recording_stores_no_identifier_and_refuses_another_model(monitor_dir: Path) -> None:
    with open_folder(monitor_dir) as monitor:
        with pytest.raises(MonitorError, match="watches model"):
            monitor.recorder("serve", "0" * 64)
        recorder = monitor.recorder("serve", monitor.model_sha256)
        ids = recorder.record([answer(0.9), answer(0.2, ood=True)])
        recorder.close()
        assert len(set(ids)) == 2 and monitor.count() == 2
    rows = sqlite3.connect(monitor_dir / "monitor.sqlite").execute("SELECT * FROM predictions").fetchall()
    text = json.dumps(rows, default=str)
    assert ids[0] in text and "png" not in text and "path" not in text
    columns = [row[1] for row in sqlite3.connect(monitor_dir / "monitor.sqlite").execute(
        "PRAGMA table_info(predictions)")]
    assert not {"path", "patient_id", "file", "image"} & set(columns)


def test_a_rise_in_ood_answers_raises_one_alarm_until_acknowledged(monitor_dir: Path) -> None:
    rng = np.random.default_rng(0)
    with open_folder(monitor_dir) as monitor:
        recorder = monitor.recorder("serve", monitor.model_sha256)
        recorder.record([answer(float(p)) for p in rng.random(200)])
        assert monitor.refresh_alarms() == []
        recorder.record([answer(float(p), ood=True) for p in rng.random(60)])
        recorder.close()
        alarms = monitor.alarms(open_only=True)
        ood = [alarm for alarm in alarms if alarm["signal"] == "ood_share"]
        assert len(ood) == 1 and 200 < ood[0]["after_predictions"] <= 260
        recorder = monitor.recorder("serve", monitor.model_sha256)
        recorder.record([answer(0.3, ood=True) for _ in range(50)])
        recorder.close()
        assert len([a for a in monitor.alarms() if a["signal"] == "ood_share"]) == 1  # kept, not repeated
        closed = monitor.acknowledge(ood[0]["id"], "processor replaced; colour calibrated")
        assert closed["note"].startswith("processor") and closed["acknowledged_at"]
        with pytest.raises(MonitorError, match="already acknowledged"):
            monitor.acknowledge(ood[0]["id"], "again")
        with pytest.raises(MonitorError, match="needs a --note"):
            monitor.acknowledge(ood[0]["id"], " ")


def test_an_export_carries_its_validation_predictions_for_init(evaluated_run: Path, tmp_path: Path) -> None:
    import pandas as pd

    from proctovision.deploy.export import export_run

    run = Path(shutil.copytree(evaluated_run, tmp_path / "run"))
    export_run(run, tmp_path / "export")
    validation = pd.read_csv(tmp_path / "export" / "validation.csv")
    assert not {"path", "patient_id", "frame"} & set(validation.columns)
    monitor = init_folder(tmp_path / "m", tmp_path / "export")
    with monitor:
        assert monitor.reference["n"] == len(validation) and monitor.reference["model"]["kind"] == "export"
        assert monitor.reference["quality_note"]  # an export has no images: the prior is said
    (tmp_path / "export" / "validation.csv").unlink()
    with pytest.raises(MonitorError, match="no validation predictions.*export it again"):
        init_folder(tmp_path / "m2", tmp_path / "export")


def test_a_postgresql_store_records_and_raises_alarms(evaluated_run: Path, tmp_path: Path, postgres) -> None:
    monitor = init_folder(tmp_path / "m", evaluated_run, db_url=postgres.url())
    with monitor:
        assert not (tmp_path / "m" / "monitor.sqlite").exists()
        recorder = monitor.recorder("serve", monitor.model_sha256)
        ids = recorder.record([answer(0.7)] * 100 + [answer(0.4, ood=True)] * 40)
        recorder.close()
        assert monitor.count() == 140 and set(monitor.answers()["id"]) == set(ids)
        assert "ood_share" in {alarm["signal"] for alarm in monitor.alarms(open_only=True)}
