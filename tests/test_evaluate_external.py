"""External validation: another centre's manifest scored at the run's own validation threshold and temperature."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import solid_image, tiny_run_config
from proctovision.data.manifest import read_manifest
from proctovision.workflows.evaluate import evaluate_external, evaluate_run
from proctovision.artefacts.runs import RunError
from proctovision.core.tables import read_table
from proctovision.workflows.training import train


def second_centre(root: Path, shift: int = 45) -> Path:
    """Centre B: the same classes photographed with a warmer colour cast (red up, blue down)."""
    lines = ["path,label,patient_id"]
    for label, (red, green, blue) in (("normal", (90, 170, 90)), ("hemorrhoid", (130, 50, 120))):
        for patient in range(4):
            for shot in range(2):
                name = f"b/{label}_{patient}_{shot}.png"
                solid_image(root / name, (min(red + shift, 255), green, max(blue - shift, 0)),
                            noise_seed=100 + patient * 10 + shot)
                lines.append(f"{name},{label},B-{label[:3]}-{patient}")
    (root / "site_b.csv").write_text("\n".join(lines) + "\n")
    return root / "site_b.csv"


def test_external_centre_is_scored_beside_the_internal_test(tmp_path: Path, split_file: Path) -> None:
    from proctovision.reporting.report import build_report

    run = train(tiny_run_config(split_file, tmp_path / "run", epochs=1), progress=False).root
    internal = evaluate_run(run, "test", n_resamples=30, temperature_scaling=True, workers=0)
    site_b = second_centre(tmp_path / "centre_b")
    external = evaluate_external(run, site_b, "site_b", n_resamples=30, temperature_scaling=True, workers=0)

    assert external["threshold"]["chosen_on"] == "val"
    assert external["threshold"]["value"] == internal["threshold"]["value"]
    assert external["calibration"]["temperature"] == internal["calibration"]["temperature"]
    assert external["n_images"] == 16 and external["n_patients"] == 8
    assert external["external"]["operating_point_from"] == "the run's val split"

    stored = json.loads((run / "metrics.json").read_text())
    assert {"test", "site_b"} <= set(stored)
    predictions = read_table(run / "predictions.csv")
    rows = predictions[predictions["split"] == "site_b"]
    assert len(rows) == 16
    expected = {str(Path(p).resolve()) for p in read_manifest(site_b)["path"]}
    assert {str((site_b.parent / p).resolve()) for p in rows["path"]} == expected
    assert len(predictions[predictions["split"] == "test"]) == internal["n_images"]
    assert (run / "figures" / "roc_site_b.png").is_file()

    html = build_report([run], tmp_path / "report.html", cams=False).read_text()
    assert "Internal and external validation" in html
    block = html[html.index("Internal and external validation"):]
    assert "site_b (external" in block and "test (internal" in block
    accuracy = stored["site_b"]["metrics"]["accuracy"]["value"]
    assert f"{accuracy:.3f}" in block


def test_external_names_and_labels_are_checked(tmp_path: Path, run_dir: Path) -> None:
    site_b = second_centre(tmp_path / "centre_b")
    with pytest.raises(RunError, match="--name 'test'"):
        evaluate_external(run_dir, site_b, "test")
    odd = tmp_path / "centre_b" / "odd.csv"
    odd.write_text(site_b.read_text().replace(",normal,", ",polyp,"))
    with pytest.raises(RunError, match=r"labels \['polyp'\]"):
        evaluate_external(run_dir, odd, "site_c")
