"""PACS over DICOMweb against a real Orthanc (with its DICOMweb plugin) that each test starts on loopback."""
from __future__ import annotations

import datetime
import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import requests
from conftest import own_run
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.serving import dicomweb, watch

ORTHANC = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/local/sbin")
PLUGINS = sorted(glob.glob("/usr/share/orthanc/plugins/libOrthancDicomWeb.so*")
                 + glob.glob("/usr/lib/orthanc/libOrthancDicomWeb.so*")
                 + glob.glob("/usr/lib/*/orthanc/libOrthancDicomWeb.so*"))
needs_orthanc = pytest.mark.skipif(
    (ORTHANC is None or not PLUGINS) and not os.environ.get("CI"),
    reason="Orthanc and its DICOMweb plugin are not installed (apt-get install orthanc orthanc-dicomweb)",
)
USER, PASSWORD = "reader", "s3cret-pass"


def today() -> str:
    return datetime.date.today().strftime("%Y%m%d")


runner = CliRunner()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    """An Orthanc for this file: loopback HTTP on a free port, no DICOM port, temp storage, basic auth on.

    Tests share it and keep apart by patient and accession number.
    """
    if ORTHANC is None or not PLUGINS:
        pytest.fail("CI is set but Orthanc or its DICOMweb plugin is missing: .ci/run installs them")
    port = free_port()
    folder = tmp_path_factory.mktemp("orthanc")
    config = {
        "Name": "proctovision-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD}, "Plugins": [PLUGINS[0]],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "HttpThreadsCount": 4,
    }
    (folder / "config.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "wb")
    process = subprocess.Popen([ORTHANC, str(folder / "config.json")], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{base}/system", auth=(USER, PASSWORD), timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"Orthanc did not start:\n{(folder / 'orthanc.log').read_text()[-2000:]}")
        time.sleep(0.1)
    yield f"{base}/dicom-web"
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dicomweb.TOKEN_ENV, raising=False)
    monkeypatch.setenv(dicomweb.USER_ENV, USER)
    monkeypatch.setenv(dicomweb.PASSWORD_ENV, PASSWORD)


def make_study(folder: Path, patient: int, slices: int = 2, orifice: bool = False, accession: str = "ACC",
               date: str | None = None) -> list[Path]:
    """Synthetic MR slices (32 px) with identifying tags a scanner writes, so tests can see none leaks.

    Dated today unless ``date`` says otherwise; a watch test passes that date as ``--since``, so a run that
    crosses midnight still finds its study."""
    date = date or today()
    from proctovision.data.synthetic.mri import draw_slice, write_dicom

    rng = np.random.default_rng(patient)
    paths = []
    for index in range(slices):
        path = folder / f"IM{patient:04d}{index:02d}.dcm"
        write_dicom(path, draw_slice(rng, 32, orifice, 1.0)[0], patient, index, seed=7)
        dataset = pydicom.dcmread(path)
        dataset.StudyDate, dataset.AccessionNumber = date, f"{accession}{patient:05d}"
        dataset.InstitutionName, dataset.OperatorsName = "SECRET HOSPITAL", "SECRET^OPERATOR"
        dataset.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def upload(url: str, paths: list[Path]) -> None:
    client = dicomweb.connect(url, {dicomweb.USER_ENV: USER, dicomweb.PASSWORD_ENV: PASSWORD})
    client.store_instances([pydicom.dcmread(path) for path in paths])


def series_in(url: str, study: str) -> list[dict]:
    client = dicomweb.connect(url, {dicomweb.USER_ENV: USER, dicomweb.PASSWORD_ENV: PASSWORD})
    return client.search_for_series(study_instance_uid=study, fields=["SeriesDescription", "Modality"])


def labels_csv(paths: list[Path], target: Path) -> Path:
    rows = [{"sop_instance_uid": pydicom.dcmread(path).SOPInstanceUID, "label": "internal_orifice" if i % 2 else
             "normal"} for i, path in enumerate(paths)]
    pd.DataFrame(rows).to_csv(target, index=False)
    return target


# --- authentication, without a server ---
def test_credentials_come_from_the_environment_only():
    assert dicomweb.session_from_env({}).auth is None
    assert "Authorization" not in dicomweb.session_from_env({}).headers
    basic = dicomweb.session_from_env({dicomweb.USER_ENV: "u", dicomweb.PASSWORD_ENV: "p"})
    assert (basic.auth.username, basic.auth.password) == ("u", "p")
    bearer = dicomweb.session_from_env({dicomweb.TOKEN_ENV: "tok"})
    assert bearer.headers["Authorization"] == "Bearer tok"
    with pytest.raises(dicomweb.DicomWebError, match="not both"):
        dicomweb.session_from_env({dicomweb.TOKEN_ENV: "tok", dicomweb.USER_ENV: "u", dicomweb.PASSWORD_ENV: "p"})
    with pytest.raises(dicomweb.DicomWebError, match="needs both"):
        dicomweb.session_from_env({dicomweb.USER_ENV: "u"})


def test_bearer_token_is_sent_to_the_server():
    """A loopback QIDO endpoint records the Authorization header dicomweb-client sends."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append(self.headers.get("Authorization"))
            body = b"[]"
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = dicomweb.connect(f"http://127.0.0.1:{server.server_port}/dicom-web",
                                  {dicomweb.TOKEN_ENV: "secret-token"})
        assert dicomweb.find_instances(client, study="1.2.3") == []
    finally:
        server.shutdown()
    assert seen and seen[0] == "Bearer secret-token"


def test_query_pairs_are_parsed_and_bad_ones_refused():
    assert dicomweb.parse_query(["ModalitiesInStudy=MR", "StudyDate=20240101-"]) == {
        "ModalitiesInStudy": "MR", "StudyDate": "20240101-"}
    with pytest.raises(dicomweb.DicomWebError, match="KEY=VALUE"):
        dicomweb.parse_query(["ModalitiesInStudy"])
    assert dicomweb.literal_wildcards("http://pacs/studies?AccessionNumber=A%2A&x=1") == \
        "http://pacs/studies?AccessionNumber=A*&x=1"


def test_a_study_is_taken_only_once_its_instance_count_settles():
    state = watch.WatchState(since="all")
    assert not watch.is_stable(state, "k", 4, now=0, stable_s=30)
    assert not watch.is_stable(state, "k", 6, now=20, stable_s=30)  # still arriving: the clock restarts
    assert not watch.is_stable(state, "k", 6, now=40, stable_s=30)
    assert watch.is_stable(state, "k", 6, now=51, stable_s=30)
    assert "k" not in state.pending


def test_a_broken_state_file_is_refused_not_replaced(tmp_path: Path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(watch.WatchStateError, match="state.json"):
        watch.load_state(path)
    assert path.read_text() == "{not json"


def test_pacs_flags_are_checked_before_any_work(tmp_path: Path):
    result = runner.invoke(app, ["ingest", "--task", "fistula", "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == 1 and "give SOURCE" in result.output
    result = runner.invoke(app, ["ingest", "--dicomweb", "http://127.0.0.1:9/dicom-web", "--study", "1.2",
                                 "--task", "fistula", "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == 1 and "--labels" in result.output
    result = runner.invoke(app, ["predict", str(tmp_path), "--push"])
    assert result.exit_code == 1 and "--dicomweb URL and --study UID" in result.output
    assert not (tmp_path / "m.csv").exists()
    for command in ("watch", "ingest", "predict"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "--dicomweb" in result.output and "Example:" in result.output


# --- against Orthanc ---
@needs_orthanc
def test_wrong_credentials_are_refused_with_a_clear_error(orthanc: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv(dicomweb.USER_ENV, USER)
    monkeypatch.setenv(dicomweb.PASSWORD_ENV, "wrong")
    out = tmp_path / "m" / "manifest.csv"
    result = runner.invoke(app, ["ingest", "--dicomweb", orthanc, "--study", "1.2.3", "--labels",
                                 str(tmp_path / "labels.csv"), "--task", "fistula", "--out", str(out)])
    assert result.exit_code == 1
    assert isinstance(result.exception, dicomweb.DicomWebError)
    assert "HTTP 401" in str(result.exception) and dicomweb.USER_ENV in str(result.exception)
    assert not out.exists()


@needs_orthanc
def test_ingest_over_dicomweb_matches_ingest_of_the_same_files(orthanc: str, tmp_path: Path, credentials):
    first = make_study(tmp_path / "pacs" / "a", 1, accession="INGEST")
    second = make_study(tmp_path / "pacs" / "b", 2, orifice=True, accession="INGEST")
    upload(orthanc, first + second)
    labels = labels_csv(first + second, tmp_path / "labels.csv")
    study = str(pydicom.dcmread(first[0]).StudyInstanceUID)
    out = tmp_path / "remote" / "manifest.csv"
    result = runner.invoke(app, ["ingest", "--dicomweb", orthanc, "--study", study, "--labels", str(labels),
                                 "--task", "fistula", "--salt", "pepper", "--out", str(out),
                                 "--export-png", str(tmp_path / "remote" / "png")])
    assert result.exit_code == 0, result.output
    local_out = tmp_path / "local" / "manifest.csv"
    result = runner.invoke(app, ["ingest", str(tmp_path / "pacs" / "a"), "--labels", str(labels), "--task",
                                 "fistula", "--salt", "pepper", "--out", str(local_out)])
    assert result.exit_code == 0, result.output

    remote, local = pd.read_csv(out, dtype=str), pd.read_csv(local_out, dtype=str)
    columns = ["label", "patient_id", "study_id", "series_id", "modality", "window", "width", "height", "phash"]
    assert len(remote) == 2
    assert remote[columns].sort_values("phash").values.tolist() == local[columns].sort_values("phash").values.tolist()
    for relative in remote["path"]:
        stored = out.parent / relative
        assert stored.is_file() and stored.is_relative_to(out.parent / "manifest-dicomweb")
        assert stored.parent.name == remote["study_id"].iloc[0]  # folders named by the study pseudonym
        assert stored.stem == dicomweb.uid_hash(str(pydicom.dcmread(stored).SOPInstanceUID))
    assert len(list((tmp_path / "remote" / "png").rglob("*.png"))) == 2
    written = out.read_text() + (out.parent / "qc.json").read_text() + (out.parent / "qc.md").read_text()
    assert "SYN-" not in written and "SYNTHETIC^" not in written and study not in written
    assert not [path for path in out.parent.iterdir() if path.name.startswith(".manifest-dicomweb")]

    again = runner.invoke(app, ["ingest", "--dicomweb", orthanc, "--study", study, "--labels", str(labels),
                                "--task", "fistula", "--out", str(tmp_path / "remote" / "other.csv")])
    assert again.exit_code == 0, again.output
    by_query = tmp_path / "query" / "manifest.csv"
    result = runner.invoke(app, ["ingest", "--dicomweb", orthanc, "--query", "AccessionNumber=INGEST*", "--labels",
                                 str(labels), "--task", "fistula", "--out", str(by_query)])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(by_query)) == 4
    by_series = tmp_path / "series" / "manifest.csv"
    series = str(pydicom.dcmread(second[0]).SeriesInstanceUID)
    result = runner.invoke(app, ["ingest", "--dicomweb", orthanc, "--series", series, "--labels", str(labels),
                                 "--task", "fistula", "--out", str(by_series)])
    assert result.exit_code == 0, result.output
    stored = {str(pydicom.dcmread(by_series.parent / path).SOPInstanceUID) for path in pd.read_csv(by_series)["path"]}
    assert stored == {str(pydicom.dcmread(path).SOPInstanceUID) for path in second}


@needs_orthanc
def test_predict_push_stores_an_sr_and_overlays_in_the_study(orthanc: str, tmp_path: Path, run_dir: Path,
                                                           credentials):
    import highdicom as hd
    from highdicom.sr.utils import find_content_items
    from pydicom.sr.codedict import codes

    import proctovision

    from proctovision.inference.predictor import load_predictor

    paths = make_study(tmp_path / "pacs", 3, slices=2)
    upload(orthanc, paths)
    sources = {str(ds.SOPInstanceUID): ds for ds in map(pydicom.dcmread, paths)}
    study = str(next(iter(sources.values())).StudyInstanceUID)
    out = tmp_path / "predictions.csv"
    audit_log = tmp_path / "audit.log"
    result = runner.invoke(app, ["predict", str(run_dir), "--dicomweb", orthanc, "--study", study, "--push",
                                 "--out", str(out), "--audit-log", str(audit_log)])
    assert result.exit_code == 0, result.output
    assert "1 SR and 2 Grad-CAM overlay(s)" in result.output
    audited = [json.loads(line) for line in audit_log.read_text().splitlines()]
    assert len(audited) == 2 and {entry["source"] for entry in audited} == {"predict --dicomweb"}
    assert all(len(entry["input_sha256"]) == 64 and entry["decision"] in {"normal", "hemorrhoid"} for entry in audited)
    for identifier in [*sources, study, *(str(ds.PatientID) for ds in sources.values())]:
        assert identifier not in audit_log.read_text()

    series = series_in(orthanc, study)
    modalities = sorted(dicomweb.first_value(item, "00080060") for item in series)
    assert modalities == ["MR", "OT", "SR"]
    client = dicomweb.connect(orthanc)
    sr_series = next(item for item in series if dicomweb.first_value(item, "00080060") == "SR")
    sc_series = next(item for item in series if dicomweb.first_value(item, "00080060") == "OT")
    [sr_dataset] = client.retrieve_series(study, dicomweb.first_value(sr_series, dicomweb.SERIES_UID))
    captures = client.retrieve_series(study, dicomweb.first_value(sc_series, dicomweb.SERIES_UID))

    predictor = load_predictor(run_dir)
    expected = {str(pydicom.dcmread(Path(item.path)).SOPInstanceUID): item
                for item in predictor.predict_files(paths).predictions}
    weights_hash = hashlib.sha256((run_dir / "checkpoints" / "best.ckpt").read_bytes()).hexdigest()[:12]
    report = hd.sr.ComprehensiveSR.from_dataset(sr_dataset)
    groups = report.content.get_image_measurement_groups()
    assert len(groups) == 2
    for group in groups:
        [source] = group.source_images
        uid = source.referenced_sop_instance_uid
        [finding] = group.get_qualitative_evaluations()
        assert finding.name.meaning == "Predicted class" and finding.value.meaning == expected[uid].predicted
        assert group.finding_type.meaning == expected[uid].predicted
        probabilities = {item.name.meaning: item.value for item in group.get_measurements()}
        for name, value in expected[uid].probabilities.items():
            assert probabilities[f"Probability of {name}"] == pytest.approx(value, abs=1e-5)
        assert probabilities["Decision threshold"] == pytest.approx(predictor.threshold)
        [algorithm] = find_content_items(group[0], name=codes.DCM.AlgorithmName, recursive=True)
        [version] = find_content_items(group[0], name=codes.DCM.AlgorithmVersion, recursive=True)
        assert algorithm.TextValue == f"hemorrhoid {predictor.card['backbone']}"
        assert version.TextValue == f"{proctovision.__version__}+{weights_hash}"
    [device] = find_content_items(sr_dataset, name=codes.DCM.DeviceObserverName, recursive=True)
    assert device.TextValue == "ProctoVision"
    evidence = {item.ReferencedSOPInstanceUID for study_item in sr_dataset.CurrentRequestedProcedureEvidenceSequence
                for series_item in study_item.ReferencedSeriesSequence for item in series_item.ReferencedSOPSequence}
    assert evidence == set(sources)

    source = next(iter(sources.values()))
    assert len(captures) == 2
    assert {str(sc.SourceImageSequence[0].ReferencedSOPInstanceUID) for sc in captures} == set(sources)
    for derived in [sr_dataset, *captures]:
        assert derived.StudyInstanceUID == source.StudyInstanceUID
        assert (derived.PatientID, derived.PatientName) == (source.PatientID, source.PatientName)
        assert derived.AccessionNumber == source.AccessionNumber
        assert derived.Manufacturer == "ProctoVision"
        assert derived.SeriesInstanceUID != source.SeriesInstanceUID
        assert "InstitutionName" not in derived and "OperatorsName" not in derived
        assert derived.get("SeriesDescription", "") != source.SeriesDescription
        text = derived.to_json()
        assert "IM0003" not in text and str(tmp_path) not in text and "SECRET" not in text
    for capture in captures:
        assert (capture.Rows, capture.Columns) == (source.Rows, source.Columns)
        assert capture.PhotometricInterpretation == "RGB" and capture.pixel_array.shape == (32, 32, 3)
        assert list(capture.PatientOrientation) == ["L", "P"]

    rows = pd.read_csv(out)
    assert len(rows) == 2 and not rows["path"].str.contains(study).any()
    again = runner.invoke(app, ["predict", str(run_dir), "--dicomweb", orthanc, "--study", study,
                                "--out", str(tmp_path / "again.csv")])
    assert again.exit_code == 0, again.output
    assert pd.read_csv(tmp_path / "again.csv")["path"].tolist() == rows["path"].tolist()  # results not re-read


@needs_orthanc
def test_watch_predicts_each_new_study_once_across_restarts(orthanc: str, tmp_path: Path, run_dir: Path,
                                                            credentials):
    first = make_study(tmp_path / "pacs" / "a", 4, slices=1, accession="WATCH")
    upload(orthanc, first)
    state = tmp_path / "watch.json"
    command = ["watch", str(run_dir), "--dicomweb", orthanc, "--state", str(state), "--once", "--stable", "0",
               "--query", "AccessionNumber=WATCH*", "--since", str(pydicom.dcmread(first[0]).StudyDate)]

    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "1 study(ies) predicted and stored" in result.output
    uid_first = str(pydicom.dcmread(first[0]).StudyInstanceUID)
    assert len(series_in(orthanc, uid_first)) == 3

    second = make_study(tmp_path / "pacs" / "b", 5, slices=1, orifice=True, accession="WATCH")
    upload(orthanc, second)
    result = runner.invoke(app, command)  # a restart: the first study is in the state file
    assert result.exit_code == 0, result.output
    assert "1 study(ies) predicted and stored" in result.output
    uid_second = str(pydicom.dcmread(second[0]).StudyInstanceUID)
    assert len(series_in(orthanc, uid_first)) == 3 and len(series_in(orthanc, uid_second)) == 3

    saved = json.loads(state.read_text())
    assert set(saved["done"]) == {dicomweb.uid_hash(uid_first), dicomweb.uid_hash(uid_second)}
    del saved["done"][dicomweb.uid_hash(uid_second)]  # a push whose record was lost in a crash
    state.write_text(json.dumps(saved))
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "0 study(ies) predicted" in result.output and "results already in the PACS" in result.output
    assert len(series_in(orthanc, uid_second)) == 3

    everything = state.read_text() + result.output
    for uid in (uid_first, uid_second):
        assert uid not in everything
    assert "SYN-" not in everything and "SYNTHETIC" not in everything


@needs_orthanc
def test_watch_skips_studies_older_than_its_start_date(orthanc: str, tmp_path: Path, run_dir: Path, credentials):
    old = make_study(tmp_path / "pacs", 6, slices=1, accession="OLD", date="20200101")
    upload(orthanc, old)
    result = runner.invoke(app, ["watch", str(run_dir), "--dicomweb", orthanc, "--state", str(tmp_path / "w.json"),
                                 "--once", "--stable", "0", "--query", "AccessionNumber=OLD*"])
    assert result.exit_code == 0, result.output
    assert "0 study(ies) predicted" in result.output
    assert len(series_in(orthanc, str(pydicom.dcmread(old[0]).StudyInstanceUID))) == 1


@needs_orthanc
def test_an_onnx_export_pushes_the_sr_alone_with_one_finding_per_frame(orthanc: str, tmp_path: Path,
                                                                       run_dir: Path, credentials):
    import highdicom as hd

    from pydicom.uid import MultiFrameGrayscaleWordSecondaryCaptureImageStorage

    from proctovision.deploy.export import export_run

    export_run(own_run(run_dir, tmp_path), tmp_path / "export")
    [path] = make_study(tmp_path / "pacs", 7, slices=1)
    dataset = pydicom.dcmread(path)
    frames = np.stack([dataset.pixel_array, dataset.pixel_array[::-1]])
    dataset.NumberOfFrames, dataset.PixelData = 2, frames.astype(np.uint16).tobytes()
    multi_frame = MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = multi_frame
    dataset.save_as(path)
    upload(orthanc, [path])
    study = str(dataset.StudyInstanceUID)
    result = runner.invoke(app, ["predict", str(tmp_path / "export"), "--dicomweb", orthanc, "--study", study,
                                 "--push", "--out", str(tmp_path / "p.json")])
    assert result.exit_code == 0, result.output
    assert "1 SR and 0 Grad-CAM overlay(s)" in result.output
    series = series_in(orthanc, study)
    assert sorted(dicomweb.first_value(item, "00080060") for item in series) == ["MR", "SR"]
    sr_series = next(item for item in series if dicomweb.first_value(item, "00080060") == "SR")
    [sr_dataset] = dicomweb.connect(orthanc).retrieve_series(study, dicomweb.first_value(sr_series,
                                                                                         dicomweb.SERIES_UID))
    groups = hd.sr.ComprehensiveSR.from_dataset(sr_dataset).content.get_image_measurement_groups()
    references = sorted((group.source_images[0].referenced_sop_instance_uid,
                         tuple(group.source_images[0].referenced_frame_numbers)) for group in groups)
    assert references == [(str(dataset.SOPInstanceUID), (1,)), (str(dataset.SOPInstanceUID), (2,))]
    written = json.loads((tmp_path / "p.json").read_text())
    assert [row["frame"] for row in written["predictions"]] == [1, 2]


@needs_orthanc
def test_an_instance_gone_between_search_and_retrieve_is_one_failure_not_a_stop(orthanc: str, tmp_path: Path,
                                                                                 credentials):
    paths = make_study(tmp_path / "pacs", 8, slices=2)
    upload(orthanc, paths)
    client = dicomweb.connect(orthanc)
    refs = dicomweb.find_instances(client, study=str(pydicom.dcmread(paths[0]).StudyInstanceUID))
    assert len(refs) == 2
    base = orthanc.removesuffix("/dicom-web")
    [found] = requests.post(f"{base}/tools/lookup", data=refs[0].sop, auth=(USER, PASSWORD), timeout=10).json()
    requests.delete(f"{base}/instances/{found['ID']}", auth=(USER, PASSWORD), timeout=10).raise_for_status()

    failures = dicomweb.fetch_to_folder(client, refs, tmp_path / "out", lambda ref: Path(f"{ref.sop[-6:]}.dcm"))
    assert len(failures) == 1
    name, reason = failures[0]
    assert name == f"dicomweb:{refs[0].sop[-6:]}.dcm" and "HTTP 404" in reason
    assert dicomweb.uid_hash(refs[0].sop) in reason and refs[0].sop not in reason
    assert [path.name for path in (tmp_path / "out").iterdir()] == [f"{refs[1].sop[-6:]}.dcm"]


@needs_orthanc
def test_watch_waits_until_a_study_stops_growing(orthanc: str, tmp_path: Path, run_dir: Path, credentials):
    from proctovision.inference.predictor import load_predictor

    paths = make_study(tmp_path / "pacs", 9, slices=2, accession="GROW")
    upload(orthanc, paths[:1])
    client, predictor, lines = dicomweb.connect(orthanc), load_predictor(run_dir), []
    state_path = tmp_path / "state.json"
    state = watch.load_state(state_path, "all")
    query = {"AccessionNumber": "GROW00009"}

    def poll(now: float) -> int:
        return watch.poll_once(client, predictor, state_path, state, query, lines.append, stable_s=30,
                               now=now)

    assert poll(0) == 0
    [pending] = state.pending.values()
    assert pending["instances"] == 1  # the count comes from the server (NumberOfStudyRelatedInstances)
    upload(orthanc, paths[1:])
    assert poll(20) == 0 and next(iter(state.pending.values()))["instances"] == 2
    assert poll(40) == 0  # unchanged for 20 s only
    assert poll(51) == 1
    assert json.loads(state_path.read_text())["done"][dicomweb.uid_hash(str(pydicom.dcmread(paths[0])
                                                                            .StudyInstanceUID))]["images"] == 2
    assert len(lines) == 1 and "2 image(s)" in lines[0]
