"""monitor report: HTML, PDF and CSV tables with alarms, acknowledgements, performance against validation, the
estimate, input shares and the methods paragraph, in English and Chinese, for a chosen period."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from monitoring_fixtures import answer, evaluated_run, monitor_dir, monitor_template  # noqa: F401
from proctovision.cli import app
from proctovision.monitoring.folder import open_folder


def test_report_holds_every_section_in_both_languages(monitor_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with open_folder(monitor_dir) as monitor:
        recorder = monitor.recorder("serve", monitor.model_sha256)
        ids = recorder.record([answer(float(p)) for p in rng.random(120)] + [answer(0.3, ood=True) for _ in range(40)])
        recorder.close()
        alarm = next(item for item in monitor.alarms() if item["signal"] == "ood_share")
        monitor.acknowledge(alarm["id"], "light source replaced")
    (tmp_path / "o.csv").write_text("prediction_id,label\n" + "".join(f"{i},hemorrhoid\n" for i in ids[:10]))
    CliRunner().invoke(app, ["monitor", "outcomes", str(monitor_dir), str(tmp_path / "o.csv")])
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["monitor", "report", str(monitor_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "160 answers recorded" in page and "light source replaced" in page
    assert "Bernoulli CUSUM" in page and "per 10,000 in-distribution answers" in page and "Wilson" in page
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF") and (out / "report.pdf").stat().st_size > 10_000
    performance = pd.read_csv(out / "tables" / "performance.csv").set_index("metric")
    assert performance.loc["accuracy", "confirmed_n"] == 10 and performance.loc["accuracy", "validation"] >= 0
    assert list(pd.read_csv(out / "tables" / "alarms.csv")["signal"]).count("ood_share") == 1
    chinese = tmp_path / "zh"
    CliRunner().invoke(app, ["monitor", "report", str(monitor_dir), "--out", str(chinese), "--lang", "zh-CN"])
    text = (chinese / "report.html").read_text()
    assert "上市后监测报告" in text and "伯努利累积和控制图" in text
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    later = tmp_path / "later"
    result = CliRunner().invoke(app, ["monitor", "report", str(monitor_dir), "--out", str(later), "--since", tomorrow])
    assert result.exit_code == 0, result.output
    assert "0 answers recorded" in (later / "report.html").read_text()
