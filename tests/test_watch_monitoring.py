"""watch --monitor: every answer recorded, and the SR stored in the study carries each prediction id."""
from __future__ import annotations

from pathlib import Path

import pydicom
from typer.testing import CliRunner

from monitoring_fixtures import evaluated_run, monitor_dir, monitor_template  # noqa: F401
from proctovision.cli import app
from proctovision.monitoring.folder import open_folder
from proctovision.serving import dicomweb
from test_dicomweb import credentials, make_study, needs_orthanc, orthanc, series_in, upload  # noqa: F401


@needs_orthanc
def test_watch_records_answers_and_the_sr_carries_their_ids(orthanc: str, tmp_path: Path, evaluated_run: Path,
                                                            monitor_dir: Path, credentials) -> None:
    import highdicom as hd

    paths = make_study(tmp_path / "pacs", 7, slices=2, accession="MONITOR")
    upload(orthanc, paths)
    result = CliRunner().invoke(app, ["watch", str(evaluated_run), "--dicomweb", orthanc, "--state",
                                      str(tmp_path / "watch.json"), "--once", "--stable", "0", "--query",
                                      "AccessionNumber=MONITOR*", "--since", str(pydicom.dcmread(paths[0]).StudyDate),
                                      "--monitor", str(monitor_dir)])
    assert result.exit_code == 0, result.output
    with open_folder(monitor_dir) as monitor:
        answers = monitor.answers()
    assert len(answers) == 2 and set(answers["source"]) == {"watch"}
    study = str(pydicom.dcmread(paths[0]).StudyInstanceUID)
    sr_series = next(item for item in series_in(orthanc, study) if dicomweb.first_value(item, "00080060") == "SR")
    [sr] = dicomweb.connect(orthanc).retrieve_series(study, dicomweb.first_value(sr_series, dicomweb.SERIES_UID))
    groups = hd.sr.ComprehensiveSR.from_dataset(sr).content.get_image_measurement_groups()
    carried = {group.tracking_identifier.removeprefix("prediction ") for group in groups}
    assert carried == set(answers["id"])
