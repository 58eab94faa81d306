import json
from pathlib import Path

import pytest
from conftest import solid_image

from proctovision.data.ingest import IngestError, ingest, write_outputs
from proctovision.data.manifest import read_manifest
from proctovision.core.tasks import load_task

TASK = load_task("hemorrhoid")


def test_class_folders_become_a_manifest_with_relative_paths(class_folders: Path, tmp_path: Path):
    result = ingest(class_folders, TASK, patient_regex=r"^(P\w\d\d)_")
    out = tmp_path / "out" / "manifest.csv"
    report = write_outputs(result, TASK, class_folders, out)
    raw = out.read_text().splitlines()
    assert raw[0].startswith("path,label,patient_id")
    assert not raw[1].startswith("/"), "paths on disk are relative to the manifest"
    frame = read_manifest(out)
    assert len(frame) == 24
    assert set(frame["label"]) == {"normal", "hemorrhoid"}
    assert frame["patient_id"].nunique() == 12
    assert all(Path(path).is_file() for path in frame["path"])
    assert report["images_per_class"] == {"normal": 12, "hemorrhoid": 12}
    assert (out.parent / "qc.json").is_file() and (out.parent / "qc.md").is_file()


def test_bad_rows_are_left_out_with_reasons_and_the_rest_goes_on(csv_source: Path, tmp_path: Path):
    root = csv_source.parent
    (root / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (root / "img" / "empty.jpg").write_bytes(b"")
    (root / "img" / "text.jpg").write_text("hello, not an image")
    solid_image(root / "img" / "weird.png", (1, 2, 3))
    with open(csv_source, "a") as stream:
        stream.write("img/broken.png,normal,x1\n")
        stream.write("img/empty.jpg,normal,x2\n")
        stream.write("img/text.jpg,normal,x3\n")
        stream.write("img/missing.png,normal,x4\n")
        stream.write("img/weird.png,polyp,x5\n")
        stream.write("img/normal_0_0.png,normal,nor-0\n")
    result = ingest(csv_source, TASK)
    reasons = {Path(item.path).name: item.reason for item in result.excluded}
    assert "corrupt" in reasons["broken.png"] or "not a recognised" in reasons["broken.png"]
    assert "empty file" in reasons["empty.jpg"]
    assert "not a recognised image format" in reasons["text.jpg"]
    assert "file not found" in reasons["missing.png"]
    assert "unknown label 'polyp'" in reasons["weird.png"]
    assert "duplicate row" in reasons["normal_0_0.png"]
    assert len(result.manifest) == 60
    report = write_outputs(result, TASK, csv_source, tmp_path / "m.csv")
    saved = json.loads((tmp_path / "qc.json").read_text())
    assert len(saved["excluded"]) == 6 == len(report["excluded"])
    assert "missing.png" in (tmp_path / "qc.md").read_text()


def test_missing_patient_ids_get_one_per_file_and_the_report_says_so(class_folders: Path, tmp_path: Path):
    result = ingest(class_folders, TASK)
    assert result.generated_patient_ids == 24
    assert result.manifest["patient_id"].nunique() == 24
    report = write_outputs(result, TASK, class_folders, tmp_path / "m.csv")
    assert any("no patient id" in note for note in report["notes"])


def test_csv_without_required_columns_names_them(tmp_path: Path):
    source = tmp_path / "bad.csv"
    source.write_text("file,diagnosis\na.png,normal\n")
    with pytest.raises(IngestError, match=r"bad.csv: missing column\(s\) path, label"):
        ingest(source, TASK)


def test_csv_with_bom_and_windows_line_endings_and_odd_names(tmp_path: Path):
    solid_image(tmp_path / "ïmages dir" / "naïve ü 1.png", (10, 200, 10))
    solid_image(tmp_path / "ïmages dir" / "b 2.png", (200, 10, 200))
    text = "path,label,patient_id\r\nïmages dir/naïve ü 1.png,NORMAL,p1\r\nïmages dir/b 2.png,hemorrhoid,p2\r\n"
    source = tmp_path / "m.csv"
    source.write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = ingest(source, TASK)
    assert list(result.manifest["label"]) == ["normal", "hemorrhoid"]
    assert not result.excluded


def test_unknown_class_folder_is_reported(class_folders: Path):
    solid_image(class_folders / "polyp" / "p.png", (0, 0, 0))
    result = ingest(class_folders, TASK)
    assert [item.reason for item in result.excluded] == ["unknown label 'polyp' (folder name)"]


def test_exact_duplicates_are_reported(class_folders: Path, tmp_path: Path):
    source = class_folders / "normal" / "Pn00_0.png"
    (class_folders / "normal" / "copy.png").write_bytes(source.read_bytes())
    report = write_outputs(ingest(class_folders, TASK), TASK, class_folders, tmp_path / "m.csv")
    assert any(len(group) == 2 and any("copy.png" in path for path in group) for group in report["exact_duplicates"])


def test_ingest_refuses_to_overwrite_its_source(csv_source: Path):
    from proctovision.data.manifest import ManifestError

    before = csv_source.read_bytes()
    with pytest.raises(ManifestError, match="source CSV"):
        write_outputs(ingest(csv_source, TASK), TASK, csv_source, csv_source)
    assert csv_source.read_bytes() == before


def dicom_folder(root: Path, names: list[str]) -> Path:
    """class folder normal/ holding copies of pydicom's bundled files under the given names."""
    import shutil

    import pydicom

    files = Path(pydicom.__file__).parent / "data" / "test_files"
    sources = ["MR_small.dcm", "SC_rgb_rle_2frame.dcm", "CT_small.dcm", "rtdose_rle.dcm"]
    folder = root / "normal"
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        shutil.copy(files / sources[index % len(sources)], folder / name)
    return root


def dicom_ingest(source: Path, **options):
    from proctovision.data.ingest import DicomOptions

    return ingest(source, load_task("fistula"), dicom_options=DicomOptions(salt="s"), **options)


def test_a_worker_that_crashes_or_raises_costs_only_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import crashing_reader

    from proctovision.data.ingest import files as ingest_module

    names = ["a.dcm", "segfault.dcm", "b.dcm", "exits.dcm", "raises.dcm", "c.dcm", "d.dcm"]
    source = dicom_folder(tmp_path / "data", names)
    monkeypatch.setattr(ingest_module, "inspect_file", crashing_reader.inspect)
    result = dicom_ingest(source, workers=2)
    reasons = {Path(item.path).name: item.reason for item in result.excluded}
    assert sorted(reasons) == ["exits.dcm", "raises.dcm", "segfault.dcm"]
    assert "crashed" in reasons["segfault.dcm"] and "SIGSEGV" in reasons["segfault.dcm"]
    assert "crashed" in reasons["exits.dcm"] and "status 3" in reasons["exits.dcm"]
    assert "RuntimeError: decoder blew up" in reasons["raises.dcm"]
    kept = list(dict.fromkeys(result.manifest["path"].map(lambda p: Path(p).name)))
    assert kept == ["a.dcm", "b.dcm", "c.dcm", "d.dcm"], "every other file kept, in the input order"


def test_pool_gives_the_same_manifest_in_the_same_order_as_one_process(tmp_path: Path):
    source = dicom_folder(tmp_path / "data", [f"f{index}.dcm" for index in range(8)])
    serial = dicom_ingest(source, workers=0).manifest
    pooled = dicom_ingest(source, workers=2).manifest
    assert len(serial) == 2 * 15 + 2 * 2 + 4 == len(pooled)
    assert serial.equals(pooled)


def test_an_interrupted_ingest_resumes_reading_only_what_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from proctovision.data.ingest import files as ingest_module

    source = dicom_folder(tmp_path / "data", [f"f{index}.dcm" for index in range(6)])
    journal = tmp_path / "out" / "manifest.ingest-journal.jsonl"
    real = ingest_module.inspect_file
    read: list[str] = []

    def interrupted_after_three(row: dict, options: object):
        if len(read) == 3:
            raise KeyboardInterrupt
        read.append(Path(row["path"]).name)
        return real(row, options)

    monkeypatch.setattr(ingest_module, "inspect_file", interrupted_after_three)
    with pytest.raises(KeyboardInterrupt):
        dicom_ingest(source, workers=0, journal=journal)
    assert len(journal.read_text().splitlines()) == 3, "each file judged is in the journal at once"
    with open(journal, "a") as stream:
        stream.write('{"key": "cut sho')  # a kill in the middle of a line

    def counting(row: dict, options: object):
        read.append(Path(row["path"]).name)
        return real(row, options)

    read.clear()
    monkeypatch.setattr(ingest_module, "inspect_file", counting)
    resumed = dicom_ingest(source, workers=0, journal=journal)
    assert read == ["f3.dcm", "f4.dcm", "f5.dcm"]
    assert any("3 file(s) unchanged" in note for note in resumed.notes)
    monkeypatch.setattr(ingest_module, "inspect_file", real)
    assert resumed.manifest.equals(dicom_ingest(source, workers=0).manifest), "resumed = never interrupted"


def test_a_grown_archive_reads_only_new_and_changed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import os

    from proctovision.data.ingest import files as ingest_module

    source = dicom_folder(tmp_path / "data", ["f0.dcm", "f1.dcm", "f2.dcm"])
    journal = tmp_path / "out" / "m.ingest-journal.jsonl"
    first = dicom_ingest(source, workers=0, journal=journal)
    real = ingest_module.inspect_file
    read: list[str] = []

    def counting(row: dict, options: object):
        read.append(Path(row["path"]).name)
        return real(row, options)

    monkeypatch.setattr(ingest_module, "inspect_file", counting)
    dicom_folder(tmp_path / "data", ["f0.dcm", "f1.dcm", "f2.dcm", "f3.dcm"])  # f3 new; f0-f2 rewritten, same bytes
    for name in ("f0.dcm", "f1.dcm", "f2.dcm"):
        os.utime(source / "normal" / name, ns=(1, 1))
    again = dicom_ingest(source, workers=0, journal=journal)
    assert sorted(read) == ["f0.dcm", "f1.dcm", "f2.dcm", "f3.dcm"], "a changed time stamp means read again"
    read.clear()
    (source / "normal" / "f4.dcm").write_bytes((source / "normal" / "f0.dcm").read_bytes())
    grown = dicom_ingest(source, workers=0, journal=journal)
    assert read == ["f4.dcm"]
    assert len(grown.manifest) == len(again.manifest) + 1 == len(first.manifest) + 15 + 1
    read.clear()
    from proctovision.data.ingest import DicomOptions

    ingest(source, load_task("fistula"), dicom_options=DicomOptions(salt="s", window="40,400"), workers=0,
           journal=journal)
    assert len(read) == 5, "another window changes every row: nothing is taken from the journal"


def test_cli_ingest_with_workers_and_resume(tmp_path: Path):
    from typer.testing import CliRunner

    from proctovision.cli import app

    source = dicom_folder(tmp_path / "data", ["f0.dcm", "f1.dcm"])
    out = tmp_path / "out" / "manifest.csv"
    runner = CliRunner()
    args = ["ingest", str(source), "--task", "fistula", "--salt", "s", "--out", str(out), "--workers", "1"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "Reading files (3 frames)" in first.output and "2/2" in first.output
    (source / "normal" / "f2.dcm").write_bytes((source / "normal" / "f0.dcm").read_bytes())
    refused = runner.invoke(app, args)
    assert refused.exit_code != 0 and "--resume" in refused.output
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "2 file(s) unchanged since the last ingest" in resumed.output
    assert len(read_manifest(out)) == 4


def test_an_archive_labelled_by_sop_instance_uid_opens_no_file_again_on_a_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
):
    import pydicom

    from proctovision.data.ingest import files as ingest_module
    from proctovision.data.ingest import DicomOptions

    archive = dicom_folder(tmp_path / "archive", ["a.dcm", "b.dcm", "c.dcm"]) / "normal"
    (archive / "notes.txt").write_text("not an image")
    uids = [pydicom.dcmread(archive / name).SOPInstanceUID for name in ("a.dcm", "b.dcm")]
    labels = tmp_path / "labels.csv"
    labels.write_text(f"sop_instance_uid,label\n{uids[0]},normal\n{uids[1]},internal_orifice\n")
    journal = tmp_path / "out" / "m.ingest-journal.jsonl"

    def run(workers: int):
        return ingest(archive, load_task("fistula"), labels=labels, dicom_options=DicomOptions(salt="s"),
                      workers=workers, journal=journal)

    first = run(workers=2)
    assert sorted(set(first.manifest["label"])) == ["internal_orifice", "normal"]
    reasons = {Path(item.path).name: item.reason for item in first.excluded}
    assert reasons == {"c.dcm": "no label in labels.csv",
                       "notes.txt": "not a DICOM file (labels are keyed by SOPInstanceUID)"}
    opened: list[str] = []
    for name in ("header_uid", "inspect_file"):
        real = getattr(ingest_module, name)
        monkeypatch.setattr(ingest_module, name, lambda item, *rest, real=real: opened.append(str(item)) or
                            real(item, *rest))
    again = run(workers=0)
    assert opened == [], "headers and pixels both come from the journal"
    assert again.manifest.equals(first.manifest)
