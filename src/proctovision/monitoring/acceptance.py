"""Acceptance of a candidate model version under the change-control plan: the candidate and the current version
predict the locked test set, ``compare`` scores both with patient-bootstrap CIs and paired differences, and each
criterion of the plan is judged on those figures. A candidate trained on the locked test set is refused first."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.core import fileio
from proctovision.core.decision import decide
from proctovision.core.errors import UserError
from proctovision.evaluation.calibration import calibration_slope_ci
from proctovision.inference.predictor import load_predictor, row_keys
from proctovision.monitoring.change_plan import CALIBRATION_METRICS, Criterion, LoadedPlan, check_locked
from proctovision.monitoring.leakage import locked_rows, refuse_leak
from proctovision.monitoring.versions import version_sha256
from proctovision.workflows.compare import compare

RECORD_NAME = "acceptance.json"


class AcceptanceError(UserError, ValueError):
    """Models that cannot be judged against each other; the message says why."""


def predictions_of(folder: Path, rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The model's calibrated probabilities and decisions on ``rows``, as predict would give them."""
    predictor = load_predictor(folder)
    result = predictor.predict_keys(row_keys(rows), calibrated=True)
    failed = {index for index, _ in result.errors}
    keep = [index for index in range(len(rows)) if index not in failed]
    probabilities = result.probabilities[keep]
    table = rows.iloc[keep][["path", "label", "patient_id"]].reset_index(drop=True)
    if "frame" in rows.columns:
        table["frame"] = rows["frame"].iloc[keep].to_numpy()
    for index, name in enumerate(predictor.classes):
        table[f"prob_{name}"] = probabilities[:, index]
    table["predicted"] = [predictor.classes[i] for i in decide(probabilities, predictor.threshold)]
    return table, [f"row {int(rows['row'].iloc[index])}: {reason}" for index, reason in result.errors]


def judge(criterion: Criterion, row: dict, difference: dict | None, calibration: dict | None) -> dict:
    """One criterion: the candidate's value, its CI, each rule's limit and whether it holds."""
    if criterion.metric in CALIBRATION_METRICS:
        item = (calibration or {}).get(criterion.metric) or {}
        value, ci = item.get("value"), item.get("ci95") or [None, None]
    else:
        value, ci = row.get(criterion.metric), [row.get(f"{criterion.metric}_ci_low"),
                                                row.get(f"{criterion.metric}_ci_high")]
    checks = []
    for rule, limit in criterion.rules().items():
        observed, passed = _check(rule, limit, value, ci, difference)
        checks.append({"rule": rule, "limit": limit, "observed": observed, "passed": passed})
    result = {"metric": criterion.metric, "value": _number(value), "ci": [_number(bound) for bound in ci],
              "checks": checks, "passed": all(check["passed"] for check in checks)}
    if criterion.non_inferior_margin is not None:
        result["difference"] = difference
    return result


def _check(rule: str, limit: object, value: float | None, ci: list, difference: dict | None) -> tuple[object, bool]:
    if rule == "non_inferior_margin":
        low = None if difference is None else difference["ci95"][0]
        return low, low is not None and np.isfinite(low) and low >= -float(limit)
    observed = ci[0] if rule == "ci_lower_at_least" else value
    if observed is None or not np.isfinite(observed):
        return None, False
    if rule in ("at_least", "ci_lower_at_least"):
        return observed, observed >= float(limit)
    if rule == "at_most":
        return observed, observed <= float(limit)
    low, high = limit
    return observed, low <= observed <= high


def _number(value: object) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def score_pair(candidate: pd.DataFrame, current: pd.DataFrame, folder: Path, n_resamples: int, seed: int) -> dict:
    """``compare`` on the two predictions tables (files under ``folder``), candidate first."""
    folder.mkdir(parents=True, exist_ok=True)
    fileio.write_csv(folder / "candidate.csv", candidate)
    fileio.write_csv(folder / "current.csv", current)
    return compare([folder / "candidate.csv", folder / "current.csv"], folder / "comparison", split="locked_test",
                   n_resamples=n_resamples, seed=seed)


def calibration_of(table: pd.DataFrame, n_resamples: int, seed: int) -> dict | None:
    """Calibration slope and intercept of a binary model's probabilities, with patient-bootstrap CIs."""
    classes = [column for column in table.columns if column.startswith("prob_")]
    if len(classes) != 2:
        return None
    positive = classes[1].removeprefix("prob_")
    y = (table["label"].astype(str) == positive).to_numpy(int)
    try:
        return calibration_slope_ci(y, table[classes[1]].to_numpy(float), table["patient_id"].astype(str).to_numpy(),
                                    n_resamples, seed)
    except UserError:
        return None


def accept(
    candidate: str | Path, current: str | Path, loaded: LoadedPlan, out: str | Path | None = None,
    pinned_locked_sha256: str | None = None, n_resamples: int = 1000, seed: int = 0,
    recent: pd.DataFrame | None = None,
) -> dict:
    """Judge ``candidate`` against ``current`` on the plan's locked test set; write and return the record.

    ``recent``: confirmed cases (path, label, patient_id) kept since go-live, scored alongside for information.
    The record's ``passed`` is False, and ``failed`` names the criteria, when any criterion fails.
    """
    candidate, current = Path(candidate), Path(current)
    out = Path(out) if out else candidate / "acceptance"
    check_locked(loaded, pinned_locked_sha256)
    leak = refuse_leak(candidate, loaded.locked_test)
    rows = locked_rows(loaded.locked_test)
    new, unreadable = predictions_of(candidate, rows)
    old, _ = predictions_of(current, rows)
    if tuple(c for c in new.columns if c.startswith("prob_")) != tuple(c for c in old.columns if c.startswith("prob_")):
        raise AcceptanceError(f"{candidate} and {current} predict different classes; they cannot be compared")
    payload = score_pair(new, old, out, n_resamples, seed)
    table = {row["participant"]: row for row in payload["table"]}
    differences = payload["tests"][0]["differences"]
    calibration = calibration_of(new, n_resamples, seed)
    results = [judge(criterion, table["candidate"], differences.get(criterion.metric), calibration)
               for criterion in loaded.plan.criteria]
    for result, criterion in zip(results, loaded.plan.criteria):
        result["current"] = _number(table["current"].get(criterion.metric)) \
            if criterion.metric not in CALIBRATION_METRICS else _current_calibration(old, criterion.metric, seed)
    record = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "candidate": {"folder": str(candidate.resolve()), "sha256": version_sha256(candidate)},
        "current": {"folder": str(current.resolve()), "sha256": version_sha256(current)},
        "plan": {"path": str(loaded.path), "sha256": loaded.sha256},
        "locked_test": {"path": str(loaded.locked_test), "sha256": loaded.locked_sha256,
                        "n_images": payload["n_images"], "n_patients": payload["n_patients"],
                        "unreadable": unreadable},
        "leakage": leak,
        "criteria": results,
        "failed": [describe(result) for result in results if not result["passed"]],
        "comparison": {"table": payload["table"], "tests": payload["tests"], "files": payload["files"]},
        "recent": _recent(candidate, current, recent, out, n_resamples, seed),
    }
    record["passed"] = not record["failed"]
    fileio.write_json(out / RECORD_NAME, record)
    return record


def _current_calibration(table: pd.DataFrame, metric: str, seed: int) -> float | None:
    figures = calibration_of(table, 0, seed)
    return None if figures is None else _number(figures[metric]["value"])


def _recent(candidate: Path, current: Path, recent: pd.DataFrame | None, out: Path, n_resamples: int,
            seed: int) -> dict | None:
    if recent is None or recent.empty:
        return None
    rows = recent.assign(row=np.arange(len(recent)) + 1)
    new, old = predictions_of(candidate, rows)[0], predictions_of(current, rows)[0]
    payload = score_pair(new, old, out / "recent", n_resamples, seed)
    return {"n_images": payload["n_images"], "table": payload["table"], "tests": payload["tests"]}


def describe(result: dict) -> str:
    """A failing criterion in one phrase, e.g. ``sensitivity at_least 0.8 (observed 0.62)``."""
    failing = [check for check in result["checks"] if not check["passed"]]
    return result["metric"] + " " + ", ".join(
        f"{check['rule']} {check['limit']} (observed {_shown(check['observed'])})" for check in failing)


def _shown(value: object) -> str:
    return "not estimable" if value is None else f"{float(value):.3f}"
