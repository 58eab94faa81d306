from pathlib import Path

import pandas as pd
import pytest

from proctovision.data.manifest import read_manifest
from proctovision.data.split import SplitError, holdout_split, kfold_split, leaking_patients


def frame_of(patients_per_class: dict[str, int], images: int = 3) -> pd.DataFrame:
    rows = [
        {"path": f"/x/{label}{p}_{i}.png", "label": label, "patient_id": f"{label}{p}"}
        for label, count in patients_per_class.items()
        for p in range(count)
        for i in range(images)
    ]
    return pd.DataFrame(rows)


def test_holdout_split_keeps_patients_whole_and_stratifies():
    frame = frame_of({"normal": 20, "hemorrhoid": 20})
    out = holdout_split(frame, 0.15, 0.15, seed=0)
    assert set(out["split"]) == {"train", "val", "test"}
    assert leaking_patients(out) == []
    for side in ("val", "test"):
        labels = out[out["split"] == side].groupby("patient_id")["label"].first()
        assert set(labels) == {"normal", "hemorrhoid"}, f"{side} lacks a class"
    assert abs((out["split"] == "test").mean() - 0.15) < 0.06


def test_holdout_split_is_reproducible_and_seed_dependent():
    frame = frame_of({"a": 15, "b": 15})
    first, again = holdout_split(frame, 0.2, 0.2, 1), holdout_split(frame, 0.2, 0.2, 1)
    assert first["split"].tolist() == again["split"].tolist()
    assert first["split"].tolist() != holdout_split(frame, 0.2, 0.2, 2)["split"].tolist()


def test_kfold_split_has_each_patient_in_one_fold():
    frame = frame_of({"Rf0": 9, "Rf1": 8, "Rf2": 7})
    out = kfold_split(frame, 3, seed=0)
    assert sorted(out["fold"].unique()) == [0, 1, 2]
    assert leaking_patients(out, "fold") == []
    for fold in range(3):
        assert out[out["fold"] == fold]["label"].nunique() == 3


def test_split_that_cannot_be_honoured_is_refused_with_why():
    frame = frame_of({"normal": 10, "hemorrhoid": 2})
    with pytest.raises(SplitError, match=r"at least 3 patients.*hemorrhoid: 2"):
        holdout_split(frame, 0.15, 0.15, 0)
    with pytest.raises(SplitError, match=r"5 folds.*hemorrhoid: 2"):
        kfold_split(frame, 5, 0)


def test_bad_fractions_are_refused():
    with pytest.raises(SplitError, match="add up"):
        holdout_split(frame_of({"a": 5, "b": 5}), 0.6, 0.5, 0)


def test_patient_with_images_of_two_labels_stays_on_one_side():
    frame = frame_of({"normal": 10, "hemorrhoid": 10})
    frame.loc[0, "label"] = "hemorrhoid"
    out = holdout_split(frame, 0.2, 0.2, 0)
    assert leaking_patients(out) == []


def test_split_file_round_trip_keeps_paths(split_file: Path):
    frame = read_manifest(split_file)
    assert {"split", "path", "label", "patient_id"} <= set(frame.columns)
    assert all(Path(path).is_file() for path in frame["path"])


def test_near_and_exact_duplicates_across_splits_are_leaks_and_strict_refuses(tmp_path: Path):
    import numpy as np
    from PIL import Image, ImageEnhance
    from typer.testing import CliRunner

    from proctovision.cli import app
    from proctovision.data.ingest import ingest, write_outputs
    from proctovision.core.tasks import load_task

    rng = np.random.default_rng(0)
    lines = ["path,label,patient_id"]
    for label in ("normal", "hemorrhoid"):
        for patient in range(6):
            pixels = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
            image = Image.fromarray(pixels).resize((64, 64), Image.NEAREST)
            image.save(tmp_path / f"{label}{patient}.png")
            lines.append(f"{label}{patient}.png,{label},{label}-{patient}")
    original = Image.open(tmp_path / "normal0.png")
    ImageEnhance.Brightness(original).enhance(1.08).save(tmp_path / "normal0_brighter.jpg", quality=95)
    (tmp_path / "normal0_copy.png").write_bytes((tmp_path / "normal0.png").read_bytes())
    lines += ["normal0_brighter.jpg,normal,other-a", "normal0_copy.png,normal,other-b"]
    (tmp_path / "src.csv").write_text("\n".join(lines) + "\n")
    task = load_task("hemorrhoid")
    report = write_outputs(ingest(tmp_path / "src.csv", task), task, tmp_path / "src.csv", tmp_path / "m" / "m.csv")
    near = [sorted(Path(p).name for p in item["paths"]) for item in report["near_duplicates"]]
    assert ["normal0.png", "normal0_brighter.jpg"] in near or ["normal0_brighter.jpg", "normal0_copy.png"] in near
    assert any(len(group) == 2 for group in report["exact_duplicates"])
    frame = read_manifest(tmp_path / "m" / "m.csv")
    frame["split"] = ["train"] * len(frame)
    frame.loc[frame["path"].str.endswith("normal0_copy.png"), "split"] = "test"
    frame.loc[frame["path"].str.endswith("normal0_brighter.jpg"), "split"] = "val"
    from proctovision.data.split import duplicate_leaks

    kinds = {leak["kind"].split(" ")[0] for leak in duplicate_leaks(frame)}
    assert kinds == {"exact", "near"}
    runner = CliRunner()
    refused = None
    for seed in range(10):
        out = tmp_path / f"s{seed}.csv"
        result = runner.invoke(app, ["split", str(tmp_path / "m" / "m.csv"), "--val", "0.25", "--test", "0.25",
                                     "--seed", str(seed), "--strict", "--out", str(out)])
        if result.exit_code != 0:
            refused = (result, out)
            break
    assert refused is not None, "some seed must place a copy on another side"
    assert not refused[1].exists(), "a refused split writes nothing"


@pytest.mark.parametrize("make", [lambda frame: holdout_split(frame, 0.2, 0.2, 0), lambda frame: kfold_split(frame, 3, 0)])
def test_rows_with_an_empty_label_are_refused_by_name(make):
    frame = frame_of({"a": 6, "b": 6})
    frame.loc[4, "label"] = ""
    frame.loc[7, "label"] = float("nan")
    with pytest.raises(SplitError) as raised:
        make(frame)
    message = str(raised.value)
    assert "2 row(s) have an empty label" in message
    assert frame.loc[4, "path"] in message and frame.loc[7, "path"] in message


def test_split_command_refuses_a_manifest_with_an_empty_label(tmp_path: Path):
    from typer.testing import CliRunner

    from proctovision.cli import app

    lines = ["path,label,patient_id"] + [f"img{i}.png,{'ab'[i % 2]},p{i}" for i in range(12)]
    lines[3] = "img2.png,,p2"
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["split", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code != 0 and isinstance(result.exception, SplitError)  # the entry point prints it as one line
    assert "img2.png" in str(result.exception) and "empty label" in str(result.exception)
    assert not (tmp_path / "s.csv").exists()
