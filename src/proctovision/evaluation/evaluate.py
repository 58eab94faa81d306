"""Evaluate a run on one split: predictions.csv and metrics.json as a run folder lays them out."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from proctovision import fileio
from proctovision.data.datasets import ManifestDataset
from proctovision.data.manifest import read_manifest
from proctovision.data.split import fold_to_split
from proctovision.data.transforms import eval_transform
from proctovision.evaluation.calibration import apply_threshold, choose_threshold, fit_temperature, reliability, scale
from proctovision.evaluation.metrics import compute_metrics, confusion, patient_level
from proctovision.models.module import ClassifierModule
from proctovision.runs import RunError, RunInfo, read_run

Progress = Callable[[int, int], None]


@dataclass
class Predictions:
    probabilities: np.ndarray
    seconds: float

    @property
    def images_per_s(self) -> float:
        return len(self.probabilities) / self.seconds if self.seconds > 0 else float("inf")


def load_module(run: RunInfo) -> ClassifierModule:
    module = ClassifierModule.load_from_checkpoint(run.checkpoint(), map_location="cpu", weights_only=False)
    return module.eval()


@torch.inference_mode()
def predict_frame(
    module: ClassifierModule, frame: pd.DataFrame, run: RunInfo, batch_size: int = 32, workers: int = 0,
    progress: Progress | None = None,
) -> Predictions:
    """Class probabilities for every row; the wall time covers reading files and inference."""
    dataset = ManifestDataset(frame, run.task.classes, eval_transform(run.preprocessing), run.resolved.get("window"))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    outputs = []
    start = time.perf_counter()
    done = 0
    for images, _, _ in loader:
        outputs.append(torch.softmax(module(images), dim=1).float().numpy())
        done += len(images)
        if progress:
            progress(done, len(dataset))
    seconds = time.perf_counter() - start
    probabilities = np.concatenate(outputs) if outputs else np.zeros((0, run.task.num_classes))
    return Predictions(probabilities, seconds)


def split_rows(run: RunInfo, split: str) -> pd.DataFrame:
    frame = read_manifest(run.config.data.split)
    if run.config.data.fold is not None:
        frame = fold_to_split(frame, run.config.data.fold)
    rows = frame[frame["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise RunError(f"{run.config.data.split}: no rows in split {split!r}")
    return rows


def predictions_table(
    rows: pd.DataFrame, probabilities: np.ndarray, run: RunInfo, split: str, predicted: np.ndarray
) -> pd.DataFrame:
    classes = run.task.classes
    table = pd.DataFrame(
        {
            "path": rows["path"],
            "frame": rows["frame"] if "frame" in rows.columns else pd.NA,
            "patient_id": rows["patient_id"],
            "split": split,
            "label": rows["label"],
            "predicted": [classes[index] for index in predicted],
        }
    )
    for index, name in enumerate(classes):
        table[f"prob_{name}"] = probabilities[:, index]
    return table


def merge_predictions(existing: Path, fresh: pd.DataFrame, split: str) -> pd.DataFrame:
    """Keep other splits' rows already in predictions.csv; replace this split's."""
    if not existing.is_file():
        return fresh
    old = pd.read_csv(existing, dtype=str, keep_default_na=False)
    old = old[old.get("split", "") != split] if "split" in old.columns else old.iloc[0:0]
    return pd.concat([old, fresh.astype(str)], ignore_index=True)


def validation_probabilities(run: RunInfo, module: ClassifierModule, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of the validation split: where thresholds and temperatures are fitted."""
    rows = split_rows(run, "val")
    predictions = predict_frame(module, rows, run, batch_size=batch_size)
    return np.array([run.task.index_of(label) for label in rows["label"]]), predictions.probabilities


def evaluate_run(
    run_dir: str | Path, split: str = "test", n_resamples: int = 1000, seed: int = 0, batch_size: int = 32,
    progress: Progress | None = None, threshold: str = "youden", temperature_scaling: bool = False,
) -> dict:
    """Predict one split of a run's data, then write predictions.csv and metrics.json in the run folder.

    Binary tasks: the operating threshold is chosen on the validation split by ``threshold`` and applied
    unchanged here. ``temperature_scaling`` fits a temperature on validation and rescales these probabilities.
    """
    run = read_run(run_dir)
    rows = split_rows(run, split)
    module = load_module(run)
    predictions = predict_frame(module, rows, run, batch_size=batch_size, progress=progress)
    y_true = np.array([run.task.index_of(label) for label in rows["label"]])
    probabilities = predictions.probabilities
    needs_validation = temperature_scaling or (run.task.is_binary and not _is_number(threshold))
    val_true, val_probabilities = (
        (y_true, probabilities) if split == "val" else validation_probabilities(run, module, batch_size)
    ) if needs_validation else (None, None)
    temperature = None
    if temperature_scaling:
        temperature = fit_temperature(val_true, val_probabilities)
        probabilities = scale(probabilities, temperature)
        val_probabilities = scale(val_probabilities, temperature)
    operating = None
    predicted = probabilities.argmax(axis=1)
    if run.task.is_binary:
        chosen = choose_threshold(val_true, val_probabilities[:, 1], threshold) if needs_validation and not _is_number(
            threshold) else float(threshold)
        predicted = apply_threshold(probabilities, chosen)
        operating = {"value": chosen, "rule": threshold,
                     "chosen_on": "val" if not _is_number(threshold) else "fixed"}
    metrics = compute_metrics(
        y_true, probabilities, rows["patient_id"].to_numpy(), run.task.num_classes, run.task.ordinal,
        n_resamples=n_resamples, seed=seed, y_pred=predicted, class_names=run.task.classes,
    )
    entry = {
        "split": split,
        "n_images": int(len(rows)),
        "n_patients": int(rows["patient_id"].nunique()),
        "classes": list(run.task.classes),
        "positive_class": run.task.classes[1] if run.task.is_binary else None,
        "threshold": operating,
        "metrics": metrics,
        "patient_metrics": patient_metrics(
            y_true, probabilities, rows["patient_id"].to_numpy(), run, operating["value"] if operating else None,
            n_resamples, seed,
        ),
        "confusion_matrix": confusion(y_true, predicted, run.task.num_classes),
        "calibration": {"temperature": temperature, "fitted_on": "val" if temperature else None,
                        "reliability": reliability(y_true, probabilities)},
        "bootstrap": {"resamples": n_resamples, "seed": seed, "unit": "patient"},
        "reading_time_s": round(predictions.seconds, 4),
        "images_per_s": round(predictions.images_per_s, 2),
    }
    write_split_figures(run, split, y_true, probabilities, entry)
    table = predictions_table(rows, probabilities, run, split, predicted)
    fileio.write_csv(run.paths.predictions, merge_predictions(run.paths.predictions, table, split))
    all_metrics = json.loads(run.paths.metrics.read_text()) if run.paths.metrics.is_file() else {}
    all_metrics[split] = entry
    fileio.write_json(run.paths.metrics, all_metrics)
    return entry


def patient_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, patients: np.ndarray, run: RunInfo, threshold: float | None,
    n_resamples: int, seed: int,
) -> dict | None:
    """Metrics with the patient as the unit: each patient's mean probability, cut at the same threshold.

    None when a patient has images of two labels (no single truth per patient).
    """
    grouped = patient_level(y_true, probabilities, patients)
    if grouped is None:
        return None
    labels, mean_probabilities, ids = grouped
    predicted = (
        apply_threshold(mean_probabilities, threshold) if threshold is not None else mean_probabilities.argmax(1)
    )
    return compute_metrics(
        labels, mean_probabilities, ids, run.task.num_classes, run.task.ordinal, n_resamples=n_resamples, seed=seed,
        y_pred=predicted, class_names=run.task.classes, unit="patient",
    )


def write_split_figures(run: RunInfo, split: str, y_true: np.ndarray, probabilities: np.ndarray, entry: dict) -> None:
    """ROC (one-vs-rest for several classes), PR (binary), confusion matrix and reliability diagram in figures/."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    from proctovision.reporting import figures

    curves = {}
    for index, name in enumerate(run.task.classes):
        if run.task.is_binary and index == 0:
            continue
        positive = y_true == index
        if 0 < positive.sum() < len(positive):
            fpr, tpr, _ = roc_curve(positive, probabilities[:, index])
            key = "roc_auc" if run.task.is_binary else f"roc_auc_{name}"
            curves[name] = (fpr, tpr, entry["metrics"].get(key, {}).get("value") or float("nan"))
    if curves:
        figures.roc_curves(curves, run.paths.figures / f"roc_{split}.png", f"ROC, {split} split")
    positive = y_true == 1
    if run.task.is_binary and 0 < positive.sum() < len(positive):
        precision, recall, _ = precision_recall_curve(positive, probabilities[:, 1])
        average_precision = entry["metrics"].get("average_precision", {}).get("value") or float("nan")
        figures.pr_curves({run.task.classes[1]: (recall, precision, average_precision)},
                          run.paths.figures / f"pr_{split}.png", float(positive.mean()),
                          f"Precision-recall, {split} split")
    figures.confusion_matrix_figure(entry["confusion_matrix"], list(run.task.classes),
                                    run.paths.figures / f"confusion_{split}.png")
    figures.reliability_diagram(entry["calibration"]["reliability"], run.paths.figures / f"reliability_{split}.png",
                                f"Calibration, {split} split")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
