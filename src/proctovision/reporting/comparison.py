"""The report's comparison section as table data, read from what `compare` wrote (comparison.json, tests.csv)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.evaluation.compare import STUDY_METRICS
from proctovision.reporting import figures

TABLE_METRICS = ("accuracy", "sensitivity", "recall", "specificity", "precision", "npv", "f1", "roc_auc",
                 "quadratic_kappa")
DIFFERENCE_METRICS = ("sensitivity", "specificity", "f1", "roc_auc")


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def with_interval(value: object, low: object, high: object, style: str = ".3f") -> str:
    """``0.812 (0.700 to 0.900)``; a dash where there is no value, the value alone where there is no interval."""
    if not is_number(value):
        return "-"
    if not (is_number(low) and is_number(high)):
        return f"{value:{style}}"
    return f"{value:{style}} ({low:{style}} – {high:{style}})"


def participant_table(table: list[dict]) -> tuple[list[str], list[dict]]:
    """Metric columns any participant has, and one row per participant with each cell formatted."""
    metrics = [name for name in TABLE_METRICS if any(is_number(row.get(name)) for row in table)]
    rows = []
    for row in table:
        time = row.get("reading_time_s")
        rows.append({
            "participant": row["participant"], "kind": row["kind"],
            "cells": [with_interval(row.get(name), row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high"))
                      for name in metrics],
            "reading_time": f"{time:.1f}" if is_number(time) else "-",
        })
    return metrics, rows


def clean(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def test_tables(tests: pd.DataFrame) -> tuple[list[dict], list[str], list[dict]]:
    """Paired tests (accuracy difference, McNemar, DeLong) and the other bootstrap differences, formatted."""
    records = [{key: clean(value) for key, value in row.items()} for row in tests.to_dict("records")]
    paired = []
    for row in records:
        delong = row.get("delong_p")
        paired.append({
            "a": row["a"], "b": row["b"],
            "accuracy": with_interval(row.get("accuracy_difference"), row.get("difference_ci_low"),
                                      row.get("difference_ci_high"), "+.3f"),
            "mcnemar": "-" if not is_number(row.get("mcnemar_p")) else f"{row['mcnemar_p']:.4f}",
            "exact": str(row.get("mcnemar_exact")).lower() == "true",
            "delong": f"{delong:.4f}" if is_number(delong) else "-",
        })
    others = [name for name in DIFFERENCE_METRICS if any(f"{name}_difference" in row for row in records)]
    differences = [
        {"a": row["a"], "b": row["b"],
         "cells": [with_interval(row.get(f"{name}_difference"), row.get(f"{name}_difference_ci_low"),
                                 row.get(f"{name}_difference_ci_high"), "+.3f") for name in others]}
        for row in records
    ]
    return paired, others, differences


def mrmc_rows(mrmc: dict | None) -> list[dict]:
    """The MRMC analyses of comparison.json as table rows: design, figure of merit, a, b, difference (CI), df, p."""
    rows = []
    for analysis in (mrmc or {}).get("analyses", []):
        if analysis["design"] == "model_vs_readers":
            pairs = [(analysis["difference"], f"{analysis['difference']['a']} {analysis['model_fom']:.3f}",
                      f"{analysis['readers_mean']:.3f}")]
            design, condition = "model vs readers", analysis.get("condition") or ""
        else:
            means = analysis["condition_means"]
            pairs = [(row, f"{row['a']} {means[row['a']]:.3f}", f"{row['b']} {means[row['b']]:.3f}")
                     for row in analysis["rrrc"]["differences"]]
            design, condition = "conditions", ""
        for row, a, b in pairs:
            low, high = row["ci95"]
            note = row.get("note") or ""
            if is_number(low) and low == high:  # a comparison.json from before intervals of width zero were refused
                low = high = None
                note = note or "standard error 0: no confidence interval"
            df = "∞ (z)" if row.get("normal_approximation") else f"{row['df']:.1f}" if is_number(row["df"]) else "-"
            rows.append({"design": design, "condition": condition, "fom": analysis["figure_of_merit"], "a": a,
                         "b": b, "difference": with_interval(row["difference"], low, high, "+.3f"), "df": df,
                         "p": f"{row['p_value']:.4f}" if is_number(row["p_value"]) else "-", "note": note})
    return rows


def read_comparison(folder: Path, title: str = "") -> dict | None:
    """What the template needs from one `compare` folder; None when the folder holds no comparison.json."""
    folder = Path(folder)
    source = folder / "comparison.json"
    if not source.is_file():
        return None
    payload = json.loads(source.read_text(encoding="utf-8"))
    metrics, rows = participant_table(payload.get("table", []))
    tests_csv = folder / "tests.csv"
    tests = pd.read_csv(tests_csv) if tests_csv.is_file() and tests_csv.stat().st_size > 1 else pd.DataFrame()
    paired, others, differences = test_tables(tests) if len(tests) else ([], [], [])
    images = {path.stem: path for path in sorted((folder / "figures").glob("*.png"))}
    overlay = folder.parent / "roc_all.png"
    if overlay.is_file():
        images["roc_all"] = overlay
    return {
        "title": title, "split": payload.get("split", ""), "n_images": payload.get("n_images"),
        "metrics": metrics, "rows": rows, "paired": paired, "difference_metrics": others,
        "differences": differences, "missing": payload.get("missing_images") or {}, "image_paths": images,
        "mrmc": payload.get("mrmc"), "mrmc_rows": mrmc_rows(payload.get("mrmc")),
    }


def curve_figures(curves: dict | None, figure_dir: Path, _=str) -> dict[str, Path]:
    """ROC and precision-recall of the models and each reader's operating point beside them, from
    comparison.json's "curves" (:func:`proctovision.evaluation.reader_study.curve_points`)."""
    if not curves or not curves.get("models"):
        return {}
    nan = float("nan")
    models = curves["models"]
    roc = {name: (np.asarray(item["fpr"]), np.asarray(item["tpr"]), nan if item["auc"] is None else item["auc"])
           for name, item in models.items()}
    pr = {name: (np.asarray(item["recall"]), np.asarray(item["precision"]),
                 nan if item["average_precision"] is None else item["average_precision"])
          for name, item in models.items()}
    files = {"roc": figures.roc_curves(roc, figure_dir / "roc.png", _("ROC curves"), _),
             "pr": figures.pr_curves(pr, figure_dir / "pr.png", curves["prevalence"], _("Precision-recall curves"),
                                     _)}
    if curves.get("readers"):
        points = {name: tuple(point) for name, point in curves["readers"].items()}
        reader_curves = {name: (np.asarray(item["fpr"]), np.asarray(item["tpr"]), item["auc"])
                         for name, item in (curves.get("reader_curves") or {}).items()}
        files["readers_roc"] = figures.reader_study_roc(roc, points, figure_dir / "readers_roc.png", reader_curves,
                                                        _("Model and readers"), curves.get("conditions"), _)
    return files


def comparison_figures(
    table: list[dict], curves: dict | None, split: str, figure_dir: Path, reading_times: dict | None = None,
) -> dict[str, str]:
    """Metric and reading-time bars (and, with per-case times, each reader's, arm's and model's median time per
    case with its CI); for binary tasks ROC and PR of the models and each reader's operating point."""
    files = {
        "metrics": str(figures.metric_bars(table, STUDY_METRICS, figure_dir / "metrics.png", f"{split} split")),
        "reading_time": str(figures.reading_time_bars(table, figure_dir / "reading_time.png")),
    }
    if reading_times and reading_times.get("rows"):
        files["reading_time_per_case"] = str(figures.reading_time_per_case(
            reading_times["rows"], figure_dir / "reading_time_per_case.png"))
    files.update({name: str(path) for name, path in curve_figures(curves, figure_dir).items()})
    return files
