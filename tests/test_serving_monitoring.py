"""serve --monitor: /predict returns a prediction_id, GET /metrics speaks Prometheus; predict --monitor."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from conftest import solid_image
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from monitoring_fixtures import evaluated_run, monitor_dir, monitor_template  # noqa: F401
from proctovision.cli import app as cli_app
from proctovision.monitoring.folder import open_folder
from proctovision.monitoring.store import MonitorError
from proctovision.serving.app import create_app


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (130, 50, 120)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_predict_returns_a_recorded_prediction_id_and_metrics_count_it(evaluated_run: Path, monitor_dir: Path):
    client = TestClient(create_app(evaluated_run, load_in_background=False, monitor=monitor_dir))
    body = client.post("/predict?heatmap=false", files={"file": ("P1_doe.png", png_bytes(), "image/png")}).json()
    ident = body["prediction_id"]
    if body["withheld"]:  # the guard hid the class from the page; the record keeps what the model answered
        body = client.post(f"/answers/{body['answer_id']}/shown").json()
        assert body["prediction_id"] == ident
    with open_folder(monitor_dir) as monitor:
        answers = monitor.answers()
    assert answers["id"].tolist() == [ident] and answers["source"].tolist() == ["serve"]
    assert answers["decision"].iloc[0] == body["predicted"] and answers["latency_s"].iloc[0] > 0
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    version = answers.shape and open_folder(monitor_dir).model_sha256[:12]
    assert (f'proctovision_predictions_total{{decision="{body["predicted"]}",model_version="{version}",'
            f'source="serve"}} 1.0') in text
    assert "proctovision_inference_seconds_bucket" in text and 'proctovision_probability_bucket{class="normal"' in text
    assert 'proctovision_alarm{signal="ood_share"} 0.0' in text
    assert ident not in text and "doe" not in text


def test_serve_refuses_a_folder_that_watches_another_model(evaluated_run: Path, monitor_dir: Path, tmp_path: Path):
    import shutil

    other = Path(shutil.copytree(evaluated_run, tmp_path / "retrained"))
    for checkpoint in (other / "checkpoints").glob("*.ckpt"):
        checkpoint.write_bytes(checkpoint.read_bytes() + b"another version")
    with pytest.raises(MonitorError, match="watches model"):
        create_app(other, load_in_background=False, monitor=monitor_dir)


def test_predict_cli_writes_prediction_ids(evaluated_run: Path, monitor_dir: Path, tmp_path: Path):
    images = [solid_image(tmp_path / "in" / f"P{index}.png", (130, 50, 120), noise_seed=index) for index in range(3)]
    out = tmp_path / "predictions.csv"
    result = CliRunner().invoke(cli_app, ["predict", str(evaluated_run), *map(str, images), "--out", str(out),
                                          "--monitor", str(monitor_dir)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    with open_folder(monitor_dir) as monitor:
        assert sorted(table["prediction_id"]) == sorted(monitor.answers()["id"])
    other = CliRunner().invoke(cli_app, ["predict", str(tmp_path / "nope"), str(images[0]), "--monitor",
                                         str(tmp_path)])
    assert other.exit_code != 0
