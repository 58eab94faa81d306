"""The studies' reading-time figure: per reader, per arm and for the model, medians with 95% CIs (bootstrap over
cases of the reading room's per-case times), from readers.csv through `compare` into `report` and paper/."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_run_config

from proctovision.data.manifest import read_manifest
from proctovision.data.synthetic.readers import simulate_readers
from proctovision.evaluation.readers import ReadersError
from proctovision.evaluation.reading_times import case_times, median_ci, summarise


def study_times(n_cases: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for reader, speed in (("alice", 10.0), ("bob", 30.0)):
        for condition, factor in (("unaided", 1.0), ("aided", 0.5)):
            for case in range(n_cases):
                rows.append({"reader": reader, "condition": condition, "case": f"c{case}",
                             "seconds": speed * factor * rng.uniform(0.8, 1.2)})
    return pd.DataFrame(rows)


def test_medians_and_bootstrap_cis_per_reader_arm_and_model():
    times = study_times()
    summary = summarise(times, [("convmixer", 0.012)], n_resamples=500, seed=1)
    rows = {row["participant"]: row for row in summary["rows"]}
    assert set(rows) == {"alice (unaided)", "alice (aided)", "bob (unaided)", "bob (aided)",
                         "all readers (unaided)", "all readers (aided)", "convmixer"}
    alice = times.query("reader == 'alice' and condition == 'unaided'")["seconds"]
    assert rows["alice (unaided)"]["median_s"] == pytest.approx(float(np.median(alice)))
    for row in summary["rows"]:
        if row["kind"] != "model":
            assert row["ci_low"] <= row["median_s"] <= row["ci_high"] and row["ci_low"] < row["ci_high"]
    assert rows["alice (aided)"]["ci_high"] < rows["alice (unaided)"]["ci_low"], "aided reading is faster here"
    arm = rows["all readers (unaided)"]
    assert arm["n_readers"] == 2 and arm["n_cases"] == 20
    assert arm["median_s"] == pytest.approx(float(np.median(times.query("condition == 'unaided'")["seconds"])))
    assert rows["convmixer"] == {**rows["convmixer"], "median_s": 0.012, "ci_low": None, "ci_high": None}
    assert summary["resamples"] == 500 and "bootstrap over cases" in summary["interval"]


def test_the_arm_resamples_whole_cases():
    """Two readers who agree on which cases are slow: resampling whole cases gives a wider CI than treating
    every reading as independent."""
    slow = [np.array([100.0, 110.0])] * 5 + [np.array([1.0, 2.0])] * 5
    median, low, high = median_ci(slow, n_resamples=2000, seed=0)
    flat = median_ci([np.array([value]) for group in slow for value in group], n_resamples=2000, seed=0)
    assert median == flat[0] and high - low >= flat[2] - flat[1]


def test_case_times_come_from_the_reading_rooms_readers_csv(tmp_path: Path):
    path = tmp_path / "readers.csv"
    pd.DataFrame({"path": ["a.png", "b.png"], "case": ["x1", "x2"], "reader": ["alice", "alice"],
                  "condition": ["aided", "aided"], "label": ["normal", "normal"], "case_time_s": ["4.5", "6.5"],
                  "reading_time_s": [11.0, 11.0]}).to_csv(path, index=False)
    times = case_times(path)
    assert list(times["case"]) == ["x1", "x2"] and list(times["seconds"]) == [4.5, 6.5]
    pd.read_csv(path).drop(columns="case_time_s").to_csv(path, index=False)
    assert case_times(path) is None, "an older readers.csv without per-case times adds no figure"
    pd.read_csv(path).assign(case_time_s=["4.5", "soon"]).to_csv(path, index=False)
    with pytest.raises(ReadersError, match="case_time_s"):
        case_times(path)


def test_compare_then_report_draws_the_reading_time_figure_in_both_languages_and_in_paper(
        split_file: Path, tmp_path: Path):
    from proctovision.reporting.report import build_report
    from proctovision.workflows.compare import compare
    from proctovision.workflows.evaluate import evaluate_run
    from proctovision.workflows.training import train

    run = train(tiny_run_config(split_file, tmp_path / "model", epochs=1), progress=False).root
    evaluate_run(run, "test", n_resamples=10)
    test_rows = read_manifest(split_file).query("split == 'test'")
    readers = simulate_readers(test_rows, ("normal", "hemorrhoid"), {}, 2, tmp_path / "readers.csv", seed=1)
    frame = pd.read_csv(readers)
    rng = np.random.default_rng(3)
    both = pd.concat([frame.assign(condition="unaided", case_time_s=rng.uniform(20, 40, len(frame))),
                      frame.assign(condition="aided", case_time_s=rng.uniform(8, 16, len(frame)))])
    both.to_csv(readers, index=False)
    result = compare([run], tmp_path / "cmp", readers=readers, n_resamples=20, simulated_readers=True)
    stored = json.loads((tmp_path / "cmp" / "comparison.json").read_text())["reading_times"]
    assert stored == json.loads(json.dumps(result["reading_times"]))
    kinds = sorted(row["kind"] for row in stored["rows"])
    assert kinds == ["arm", "arm", "model", "reader", "reader", "reader", "reader"]
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    model = next(row for row in stored["rows"] if row["kind"] == "model")
    assert model["median_s"] == pytest.approx(metrics["reading_time_s"] / metrics["n_images"])
    assert len(pd.read_csv(tmp_path / "cmp" / "reading_times.csv")) == 7
    assert (tmp_path / "cmp" / "figures" / "reading_time_per_case.png").stat().st_size > 1000

    english = build_report([run], tmp_path / "en" / "report.html", comparison=tmp_path / "cmp")
    text = Path(english).read_text(encoding="utf-8")
    assert "Reading time per case: median and 95% CI per reader and arm" in text
    paper_index = (tmp_path / "en" / "paper" / "README.md").read_text(encoding="utf-8")
    assert "reading_time_per_case" in paper_index and "Reading time per case" in paper_index
    assert list((tmp_path / "en" / "paper").rglob("reading_time_per_case.pdf"))

    chinese = build_report([run], tmp_path / "zh" / "report.html", comparison=tmp_path / "cmp", lang="zh-CN")
    text = Path(chinese).read_text(encoding="utf-8")
    assert "每例阅片时间" in text and "Reading time per case: median" not in text
