"""Scoring from files alone: a predictions table (this tool's, another tool's, a spreadsheet's) → metrics with CIs.

A predictions file has one row per image (per frame): ``path``, optional ``frame``, ``patient_id``, ``split``,
``label`` and one ``prob_<class>`` column per class, in class order. No model, no torch: ``evaluate`` is a
prediction followed by this.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.core.errors import UserError
from proctovision.evaluation.calibration import choose_threshold, fit_temperature, is_fixed_threshold, reliability
from proctovision.core.decision import apply_threshold, decide, scale
from proctovision.evaluation.metrics import compute_metrics, confusion, patient_level
from proctovision.evaluation.net_benefit import decision_curve
from proctovision.core.tables import frame_keys, key_paths, read_table
from proctovision.core.tasks import BUILTIN_TASKS, Task

PROBABILITY_PREFIX = "prob_"
ROW_THRESHOLD = "threshold"


class ScoreError(UserError, ValueError):
    """A predictions or truth file that cannot be scored; the message names the file and the reason."""


@dataclass(frozen=True)
class ScoreOptions:
    """How to turn probabilities into decisions and intervals; thresholds and temperatures are fitted on ``val``."""

    threshold: str = "youden"
    temperature_scaling: bool = False
    n_resamples: int = 1000
    seed: int = 0


def classes_of(table: pd.DataFrame, source: object = "predictions") -> tuple[str, ...]:
    classes = tuple(column[len(PROBABILITY_PREFIX):] for column in table.columns
                    if column.startswith(PROBABILITY_PREFIX))
    if len(classes) < 2:
        raise ScoreError(f"{source}: needs one prob_<class> column per class (found {len(classes)})")
    return classes


def task_for(classes: tuple[str, ...], task: Task | None = None) -> Task:
    """The given task, else the built-in task with these classes (LDRf is ordinal), else a plain one."""
    if task is not None:
        if tuple(task.classes) != classes:
            raise ScoreError(f"the predictions' classes {list(classes)} differ from task {task.name}'s "
                             f"{list(task.classes)}")
        return task
    for known in BUILTIN_TASKS.values():
        if tuple(known.classes) == classes:
            return known
    return Task(name="custom", classes=classes)


def read_predictions(path: Path, truth: Path | None = None, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """A predictions CSV, with ``label`` and ``patient_id`` taken from a truth manifest when given.

    Predictions' paths are read relative to the truth manifest's folder (they are the manifest's paths) or,
    without one, to the predictions file's folder; rows pair up by path and frame.
    """
    table = read_table(path, required=("path",), error=ScoreError)
    classes = classes_of(table, path)
    for name in classes:
        column = PROBABILITY_PREFIX + name
        values = pd.to_numeric(table[column], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if len(bad):
            raise ScoreError(f"{path}: row {bad[0] + 2}: {column} is not a number ({table[column].iloc[bad[0]]!r})")
        table[column] = values.astype(float)
    if truth is None:
        return table
    reference = read_table(truth, required=("path", "label"), error=ScoreError)
    base = Path(truth).resolve().parent
    table["_key"] = [f"{p}|{f}" for p, f in zip(key_paths(table["path"], base), frame_keys(table))]
    reference["_key"] = [f"{p}|{f}" for p, f in zip(key_paths(reference["path"], base), frame_keys(reference))]
    if reference["_key"].duplicated().any():
        raise ScoreError(f"{truth}: the same path and frame appear twice")
    wanted = ("label", "patient_id", "split", *keep)
    keep = [column for column in dict.fromkeys(wanted) if column in reference.columns]
    merged = table.drop(columns=[c for c in keep if c in table.columns and c != "split"]).merge(
        reference[["_key", *keep]].rename(columns={"split": "_truth_split"}), on="_key", how="left")
    if "split" not in merged.columns and "_truth_split" in merged.columns:
        merged["split"] = merged["_truth_split"]
    unmatched = merged["label"].isna().sum()
    if unmatched == len(merged):
        raise ScoreError(f"{path}: no prediction's path matches {truth} (paths are read relative to the manifest)")
    return merged[merged["label"].notna()].drop(columns=["_key", "_truth_split"], errors="ignore").reset_index(
        drop=True)


def rows_of(table: pd.DataFrame, split: str | None) -> pd.DataFrame:
    if split is None or "split" not in table.columns:
        return table.reset_index(drop=True)
    rows = table[table["split"].astype(str) == split].reset_index(drop=True)
    if rows.empty:
        found = sorted(set(table["split"].astype(str)))
        raise ScoreError(f"no rows in split {split!r} (the file holds {', '.join(found) or 'none'})")
    return rows


def labelled(rows: pd.DataFrame, task: Task, source: object) -> tuple[np.ndarray, np.ndarray]:
    """Truth as class indices and the probabilities; every row must carry a known label."""
    if "label" not in rows.columns:
        raise ScoreError(f"{source}: no label column; give --truth MANIFEST.csv")
    lookup = {name: index for index, name in enumerate(task.classes)}
    labels = rows["label"].astype(str).str.strip()
    unknown = sorted(set(labels) - set(lookup))
    if unknown:
        raise ScoreError(f"{source}: labels {unknown[:5]} are not classes ({', '.join(task.classes)})")
    probabilities = rows[[PROBABILITY_PREFIX + name for name in task.classes]].to_numpy(float)
    return np.array([lookup[label] for label in labels]), probabilities


def patients_of(rows: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Patient ids, the bootstrap's unit; without them every image is its own patient (and that is said)."""
    if "patient_id" in rows.columns and rows["patient_id"].astype(str).str.len().gt(0).all():
        return rows["patient_id"].astype(str).to_numpy(), "patient"
    return np.array([f"row{index}" for index in range(len(rows))]), "image"


def operating_point(
    task: Task, rule: str, validation: tuple[np.ndarray, np.ndarray] | None
) -> dict | None:
    """Binary tasks: the threshold and where it came from. A fitted rule needs validation rows; without them
    the cut stays at 0.5 and the entry says so (fitting it on the scored rows would flatter them)."""
    if not task.is_binary:
        return None
    if is_fixed_threshold(str(rule)):
        choose_threshold(np.array([0, 1]), np.array([0.0, 1.0]), str(rule))
        return {"value": float(rule), "rule": str(rule), "chosen_on": "fixed"}
    if validation is None:
        return {"value": 0.5, "rule": f"0.5 ({rule} needs validation rows; none in the file)", "chosen_on": "fixed"}
    val_true, val_probabilities = validation
    return {"value": choose_threshold(val_true, val_probabilities[:, 1], rule), "rule": rule, "chosen_on": "val"}


def score_table(
    table: pd.DataFrame, split: str | None = "test", options: ScoreOptions = ScoreOptions(), task: Task | None = None,
    source: object = "predictions",
) -> tuple[dict, pd.DataFrame]:
    """Metrics with patient-bootstrap CIs for one split of a predictions table.

    Returns the metrics.json entry and the scored rows with ``predicted`` (and rescaled probabilities when a
    temperature was fitted). Thresholds and temperatures come from the table's ``val`` rows.
    """
    task = task_for(classes_of(table, source), task)
    rows = rows_of(table, split)
    y_true, probabilities = labelled(rows, task, source)
    has_val = "split" in table.columns and (table["split"].astype(str) == "val").any()
    validation = labelled(rows_of(table, "val"), task, source) if has_val else None
    temperature = None
    if options.temperature_scaling:
        if validation is None:
            raise ScoreError(f"{source}: temperature scaling is fitted on validation rows (split=val); none found")
        temperature = fit_temperature(*validation)
        probabilities = scale(probabilities, temperature)
        validation = (validation[0], scale(validation[1], temperature))
    operating = operating_point(task, options.threshold, validation)
    if validation is None and task.is_binary and not is_fixed_threshold(str(options.threshold)):
        operating = row_operating_point(rows) or operating
    predicted = decide(probabilities, cut_of(operating, rows))
    patients, unit = patients_of(rows)
    metrics = compute_metrics(y_true, probabilities, patients, task.num_classes, task.ordinal,
                              n_resamples=options.n_resamples, seed=options.seed, y_pred=predicted,
                              class_names=task.classes)
    entry = {
        "split": split or "all",
        "n_images": int(len(rows)),
        "n_patients": int(len(set(patients))),
        "classes": list(task.classes),
        "positive_class": task.classes[1] if task.is_binary else None,
        "threshold": operating,
        "metrics": metrics,
        "patient_metrics": patient_metrics(y_true, probabilities, patients, task, operating, options,
                                           patient_cuts(cut_of(operating, rows), patients))
        if unit == "patient" else None,
        "confusion_matrix": confusion(y_true, predicted, task.num_classes),
        "calibration": {"temperature": temperature, "fitted_on": "val" if temperature else None,
                        "reliability": reliability(y_true, probabilities, y_pred=predicted)},
        "bootstrap": {"resamples": options.n_resamples, "seed": options.seed, "unit": unit},
    }
    if task.is_binary and 0 < (y_true == 1).sum() < len(y_true):
        entry["decision_curve"] = decision_curve(y_true, {"model": probabilities[:, 1]})
    return entry, decided(rows, task.classes, operating, temperature)


def row_operating_point(rows: pd.DataFrame) -> dict | None:
    """Pooled out-of-fold rows carry the threshold each fold fitted on its own validation (a ``threshold``
    column): each row is decided at its own, so pooling never refits a cut on the rows it scores."""
    if ROW_THRESHOLD not in rows.columns:
        return None
    values = pd.to_numeric(rows[ROW_THRESHOLD], errors="coerce")
    if values.isna().any():
        return None
    return {"value": None, "rule": "per row (the file's threshold column)", "chosen_on": "threshold column",
            "values": sorted({round(float(value), 6) for value in values})}


def cut_of(operating: dict | None, rows: pd.DataFrame) -> float | np.ndarray | None:
    """The operating threshold: one number, or one per row when it came from the rows' threshold column."""
    if not operating:
        return None
    if operating.get("chosen_on") == "threshold column":
        return pd.to_numeric(rows[ROW_THRESHOLD]).to_numpy(float)
    return operating["value"]


def decided(table: pd.DataFrame, classes: tuple[str, ...], operating: dict | None,
            temperature: float | None) -> pd.DataFrame:
    """The rows with their probabilities rescaled by ``temperature`` (when fitted) and the ``predicted`` class
    under the operating threshold: what predictions.csv records."""
    columns = [PROBABILITY_PREFIX + name for name in classes]
    probabilities = table[columns].to_numpy(float)
    if temperature:
        probabilities = scale(probabilities, temperature)
    out = table.copy()
    out[columns] = probabilities
    out["predicted"] = [classes[index] for index in decide(probabilities, cut_of(operating, table))]
    order = [c for c in out.columns if c not in columns and c != "predicted"]
    return out[order + ["predicted", *columns]]


def patient_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, patients: np.ndarray, task: Task, operating: dict | None,
    options: ScoreOptions, cut: float | np.ndarray | None = None,
) -> dict | None:
    """Metrics with the patient as the unit: each patient's mean probability, cut at the same threshold.

    None when a patient has images of two labels (no single truth per patient).
    """
    grouped = patient_level(y_true, probabilities, patients)
    if grouped is None:
        return None
    labels, mean_probabilities, ids = grouped
    cut = operating["value"] if cut is None and operating else cut
    predicted = apply_threshold(mean_probabilities, cut) if operating else mean_probabilities.argmax(1)
    return compute_metrics(labels, mean_probabilities, ids, task.num_classes, task.ordinal,
                           n_resamples=options.n_resamples, seed=options.seed, y_pred=predicted,
                           class_names=task.classes, unit="patient")


def patient_cuts(cut: float | np.ndarray | None, patients: np.ndarray) -> float | np.ndarray | None:
    """Per-row thresholds as one per patient, in patient_level's sorted order (a patient sits in one fold)."""
    if not isinstance(cut, np.ndarray):
        return cut
    return pd.Series(cut).groupby(np.asarray(patients).astype(str), sort=True).first().to_numpy(float)
