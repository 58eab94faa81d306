import json
from pathlib import Path

import pytest
from conftest import solid_image

from proctovision.data.ingest import IngestError, ingest, write_outputs
from proctovision.data.manifest import read_manifest
from proctovision.tasks import load_task

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
