"""A real Prometheus (Debian's) scrapes `monitor serve`'s GET /metrics and fires an alert on the alarm gauge."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from monitoring_fixtures import answer, evaluated_run, monitor_dir, monitor_template  # noqa: F401
from proctovision.monitoring.folder import open_folder
from reading_fixtures import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
needs_prometheus = pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="needs Debian's prometheus")

RULES = """groups:
  - name: proctovision
    interval: 1s
    rules:
      - alert: ProctoVisionDrift
        expr: max by (signal) (proctovision_alarm) > 0
        labels: {severity: warning}
        annotations: {summary: "monitoring signal {{ $labels.signal }} crossed its limit"}
"""


def config(target: str, rules: Path) -> str:
    return f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{rules}"]
scrape_configs:
  - job_name: proctovision
    static_configs: [{{targets: ["{target}"]}}]
"""


@needs_prometheus
def test_prometheus_scrapes_and_fires_the_alarm_alert(monitor_dir: Path, tmp_path: Path) -> None:
    from proctovision.serving.background import running_server
    from proctovision.serving.monitoring import create_monitor_app

    rng = np.random.default_rng(0)
    with open_folder(monitor_dir) as monitor:
        recorder = monitor.recorder("watch", monitor.model_sha256)
        recorder.record([answer(float(p)) for p in rng.random(100)] + [answer(0.3, ood=True) for _ in range(40)])
        recorder.close()
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    port = free_port()
    with running_server(create_monitor_app(monitor_dir)) as url:
        target = url.removeprefix("http://").rstrip("/")
        (tmp_path / "prometheus.yml").write_text(config(target, rules))
        server = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            firing, series = [], []
            deadline = time.monotonic() + 30
            while not firing and time.monotonic() < deadline:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                try:
                    alerts = httpx.get(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=2).json()["data"]["alerts"]
                    series = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", timeout=2,
                                       params={"query": "proctovision_predictions_total"}).json()["data"]["result"]
                except (httpx.TransportError, KeyError, ValueError):
                    alerts = []
                firing = [alert for alert in alerts if alert["state"] == "firing"]
                time.sleep(0.2)
        finally:
            server.terminate()
            server.wait(10)
    assert {alert["labels"]["signal"] for alert in firing} >= {"ood_share"}
    assert sum(float(item["value"][1]) for item in series) == 140
    assert all(set(item["metric"]) <= {"__name__", "instance", "job", "model_version", "source", "decision"}
               for item in series)


def test_monitor_serve_help_names_metrics() -> None:
    from typer.testing import CliRunner

    from proctovision.cli import app

    result = CliRunner().invoke(app, ["monitor", "serve", "--help"])
    assert result.exit_code == 0 and "/metrics" in result.output
