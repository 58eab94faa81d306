"""``evaluate`` = predict + score: the run's model over a split (and validation, where thresholds are fitted),
then the same scoring that ``proctovision score`` applies to any predictions file."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.core import fileio
from proctovision.data.manifest import read_manifest
from proctovision.evaluation.score import ScoreOptions, decided, score_table
from proctovision.reporting.split_figures import write_split_figures
from proctovision.workflows.score import add_subgroups
from proctovision.inference.predictor import Progress, TorchPredictor, load_predictor, row_keys
from proctovision.artefacts.runs import RunError, RunInfo, read_run, split_rows  # noqa: F401 - split_rows: evaluate's API
from proctovision.core.tables import frame_keys


RESERVED_NAMES = ("train", "val", "test", "all")


def manifest_paths(rows: pd.DataFrame, split_file: Path) -> list[str]:
    """The manifest's own (relative) paths: a predictions file keeps them, so a moved project stays usable."""
    root = Path(split_file).resolve().parent
    return [os.path.relpath(path, root) for path in rows["path"]]


def predictions_table(
    rows: pd.DataFrame, probabilities: np.ndarray, run: RunInfo, split: str, keep: tuple[str, ...] = (),
    manifest: Path | None = None,
) -> pd.DataFrame:
    table = pd.DataFrame({
        "path": manifest_paths(rows, manifest or run.config.data.split),
        "frame": frame_keys(rows),
        "patient_id": rows["patient_id"].astype(str),
        "split": split,
        "label": rows["label"].astype(str),
    })
    for column in dict.fromkeys(("study_id", "site", "centre", "device", *keep)):
        if column in rows.columns and column not in table.columns:
            table[column] = rows[column]
    for index, name in enumerate(run.task.classes):
        table[f"prob_{name}"] = probabilities[:, index]
    return table


def predict_split(
    predictor: TorchPredictor, run: RunInfo, split: str, batch_size: int, workers: int | None,
    progress: Progress | None = None, keep: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, dict]:
    """Raw (uncalibrated) probabilities of one split as a predictions table, and the reading time."""
    return predict_rows(predictor, run, split_rows(run, split), split, batch_size, workers, progress, keep=keep)


def predict_rows(
    predictor: TorchPredictor, run: RunInfo, rows: pd.DataFrame, split: str, batch_size: int, workers: int | None,
    progress: Progress | None = None, manifest: Path | None = None, keep: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, dict]:
    """Raw probabilities of manifest rows (paths absolute) labelled ``split``; unreadable rows left out, listed."""
    keys = row_keys(rows)
    result = predictor.predict_keys(keys, batch_size=batch_size, workers=workers, calibrated=False, progress=progress)
    table = predictions_table(rows, result.probabilities, run, split, keep, manifest)
    if split == "val":
        table = with_appearance(table, keys, predictor.spec, workers)
    failed = [index for index, _ in result.errors]
    timing = {
        "reading_time_s": round(result.seconds, 4),
        "images_per_s": round(result.images_per_s, 2),
        "unreadable": [{"path": table["path"].iloc[index], "reason": reason} for index, reason in result.errors],
    }
    return table.drop(index=failed).reset_index(drop=True), timing


def with_appearance(table: pd.DataFrame, keys: list, spec: object, workers: int | None) -> pd.DataFrame:
    """The validation images' appearance figures (the lit area's mean red, green and blue levels, read as a deployed
    answer's are) and the number of patients they come from: the reference of the monitoring's appearance signal,
    carried by predictions.csv and the export."""
    from proctovision.imaging.quality import CHANNELS, channel_means
    from proctovision.inference.predictor import auto_workers, decoded, or_reason, read_checked_image

    def measure(key: object, spec: object) -> tuple | str:
        return or_reason(lambda: channel_means(read_checked_image(key, spec)))

    workers = auto_workers(len(keys)) if workers is None else workers
    figures = [item if isinstance(item, tuple) else (np.nan,) * 3 for item in decoded(keys, spec, workers, measure)]
    values = np.array(figures, dtype=np.float64).reshape(-1, 3).round(4)
    table = table.copy()
    for index, channel in enumerate(CHANNELS):
        table[f"appearance_{channel}"] = values[:, index]
    measured = np.isfinite(values).all(axis=1)
    table["appearance_patients"] = int(table.loc[measured, "patient_id"].nunique())  # a count: the CIs' unit
    return table


def merge_predictions(existing: Path, fresh: pd.DataFrame, splits: set[str]) -> pd.DataFrame:
    """Keep other splits' rows already in predictions.csv; replace these splits'."""
    if not existing.is_file():
        return fresh
    old = pd.read_csv(existing, dtype=str, keep_default_na=False)
    old = old[~old["split"].isin(splits)] if "split" in old.columns else old.iloc[0:0]
    return pd.concat([old, fresh.astype(str)], ignore_index=True)


def evaluate_run(
    run_dir: str | Path, split: str = "test", n_resamples: int = 1000, seed: int = 0, batch_size: int = 32,
    progress: Progress | None = None, threshold: str = "youden", temperature_scaling: bool = False,
    workers: int | None = None, cams: bool = False, by: list[str] | None = None,
) -> dict:
    """Predict the split (and validation, where thresholds and temperatures are fitted), score it, and write
    predictions.csv, metrics.json and figures/ in the run folder; ``cams`` adds a Grad-CAM gallery of the split,
    ``by`` subgroups (manifest columns such as site or device) with forest plots.
    """
    from proctovision.evaluation.calibration import check_threshold_rule

    check_threshold_rule(threshold)
    run = read_run(run_dir)
    predictor = load_predictor(run.paths.root, backend="torch")
    keep = tuple(by or ())
    table, timing = predict_split(predictor, run, split, batch_size, workers, progress, keep)
    tables = [table]
    if split != "val":
        tables.append(predict_split(predictor, run, "val", batch_size, workers, keep=keep)[0])
    raw = pd.concat(tables, ignore_index=True)
    options = ScoreOptions(threshold, temperature_scaling, n_resamples, seed)
    entry, scored = score_table(raw, split, options, run.task, run.paths.predictions)
    entry.update(timing)
    entry["lineage"] = run.resolved.get("lineage")
    write_split_figures(entry, scored, run.task.classes, run.paths.figures, split)
    if by:
        add_subgroups(entry, scored, by, run.task, options, run.paths.figures / f"subgroups_{split}")
    written = decided(raw, run.task.classes, entry["threshold"], entry["calibration"]["temperature"])
    fileio.write_csv(run.paths.predictions, merge_predictions(run.paths.predictions, written, set(written["split"])))
    all_metrics = json.loads(run.paths.metrics.read_text()) if run.paths.metrics.is_file() else {}
    all_metrics[split] = entry
    fileio.write_json(run.paths.metrics, all_metrics)
    refresh_ood(run)
    if cams:
        from proctovision.workflows.explain import write_gallery
        from proctovision.artefacts.card import build_card

        predictor.card = build_card(run)  # the operating point just fitted: the gallery decides as predict will
        write_gallery(predictor, run, split)
    return entry


def refresh_ood(run: RunInfo) -> None:
    """Fit the out-of-distribution guard when the run has none, or one older than its checkpoint."""
    from proctovision.inference.ood import ARRAYS
    from proctovision.workflows.ood import fit_run_ood

    stored = run.paths.root / ARRAYS
    if not stored.is_file() or stored.stat().st_mtime < run.checkpoint().stat().st_mtime:
        fit_run_ood(run.paths.root)


def external_rows(data: Path, run: RunInfo, name: str) -> pd.DataFrame:
    """Another centre's manifest: every label must be one of the run's classes (nothing silently dropped)."""
    if name in RESERVED_NAMES or not name.replace("-", "").replace("_", "").isalnum():
        raise RunError(f"--name {name!r}: give a short name of letters, digits, - or _ other than "
                       f"{', '.join(RESERVED_NAMES)} (it becomes the split name in metrics.json and predictions.csv)")
    rows = read_manifest(data)
    if rows.empty:
        raise RunError(f"{data}: the manifest has no rows")
    unknown = sorted(set(rows["label"].astype(str)) - set(run.task.classes))
    if unknown:
        raise RunError(f"{data}: labels {unknown[:5]} are not classes of task {run.task.name} "
                       f"({', '.join(run.task.classes)})")
    return rows.reset_index(drop=True)


def evaluate_external(
    run_dir: str | Path, data: str | Path, name: str, n_resamples: int = 1000, seed: int = 0, batch_size: int = 32,
    progress: Progress | None = None, threshold: str = "youden", temperature_scaling: bool = False,
    workers: int | None = None,
) -> dict:
    """External validation: score another centre's manifest with the threshold and temperature fitted on the
    run's own validation split (as ``evaluate`` fits them), never refitted on the external rows.

    Stored in the run as ``metrics.json[name]`` and ``predictions.csv`` rows with ``split = name``.
    """
    from proctovision.evaluation.calibration import check_threshold_rule

    check_threshold_rule(threshold)
    run = read_run(run_dir)
    data = Path(data)
    rows = external_rows(data, run, name)
    predictor = load_predictor(run.paths.root, backend="torch")
    table, timing = predict_rows(predictor, run, rows, name, batch_size, workers, progress, manifest=data)
    validation = predict_split(predictor, run, "val", batch_size, workers)[0]
    raw = pd.concat([table, validation], ignore_index=True)
    options = ScoreOptions(threshold, temperature_scaling, n_resamples, seed)
    entry, scored = score_table(raw, name, options, run.task, data)
    entry.update(timing)
    entry["external"] = {"data": os.path.relpath(data.resolve(), run.paths.root.resolve()),
                         "sha256": fileio.sha256(data), "operating_point_from": "the run's val split"}
    entry["lineage"] = run.resolved.get("lineage")
    write_split_figures(entry, scored, run.task.classes, run.paths.figures, name)
    written = decided(raw, run.task.classes, entry["threshold"], entry["calibration"]["temperature"])
    fileio.write_csv(run.paths.predictions, merge_predictions(run.paths.predictions, written, set(written["split"])))
    all_metrics = json.loads(run.paths.metrics.read_text()) if run.paths.metrics.is_file() else {}
    all_metrics[name] = entry
    fileio.write_json(run.paths.metrics, all_metrics)
    return entry
