"""``predict``'s outputs: one row per image (per frame) written as predictions.csv or .json, and the Grad-CAM
overlays beside them. Files on disk and studies from a PACS write through the same function."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from proctovision.core import fileio
from proctovision.imaging.images import read_image
from proctovision.inference.predictor import GUARD_COLUMNS


def prediction_rows(predictions: list) -> list[dict]:
    """Rows of predictions.csv: path, frame, decision, threshold, one probability per class, the guard's flags."""
    return [
        {"path": item.path, "frame": "" if item.frame is None else item.frame, "predicted": item.predicted,
         "threshold": item.threshold,
         **{f"prob_{name}": value for name, value in item.probabilities.items()}, **item.flat_guard()}
        for item in predictions
    ]


def record_rows(watcher: object, batch: object, rows: list[dict]) -> list[dict]:
    """Record a batch's answers in an open monitoring folder (closed after); each row gains its prediction_id."""
    from proctovision.inference.recording import answer_from_prediction

    latency = batch.seconds / max(len(batch.predictions), 1)
    with watcher:
        recorder = watcher.recorder("predict", watcher.model_sha256)
        ids = recorder.record([answer_from_prediction(item, latency) for item in batch.predictions])
        recorder.close()
    return [{"prediction_id": ident, **row} for ident, row in zip(ids, rows)]


def write_predictions(out: Path, classes: tuple[str, ...], rows: list[dict], errors: list[tuple[str, str]],
                      guarded: bool = True) -> Path:
    """``.json``: classes, predictions and errors (path, reason); otherwise a CSV in a fixed column order."""
    if out.suffix.lower() == ".json":
        return fileio.write_json(out, {"classes": list(classes), "predictions": rows,
                                       "errors": [{"path": path, "reason": reason} for path, reason in errors]})
    columns = ["path", "frame", "predicted", "threshold"] + [f"prob_{name}" for name in classes]
    if rows and "prediction_id" in rows[0]:
        columns.insert(0, "prediction_id")  # recorded in a monitoring folder: outcomes link back by this id
    return fileio.write_csv(out, pd.DataFrame(rows, columns=columns + (list(GUARD_COLUMNS) if guarded else [])))


def write_heatmaps(predictor: object, predictions: list, folder: Path) -> bool:
    """One Grad-CAM overlay PNG per image into ``folder``; False when the model has no gradients (ONNX)."""
    window = (predictor.card.get("preprocessing") or {}).get("window")
    for number, item in enumerate(predictions):
        png = predictor.heatmap_png(read_image(item.path, frame=item.frame, window=window),
                                    predictor.classes.index(item.predicted))
        if png is None:
            return False
        suffix = "" if item.frame is None else f"_f{item.frame}"
        fileio.write_bytes(folder / f"{number:05d}_{Path(item.path).stem}{suffix}.png", png)
    return True
