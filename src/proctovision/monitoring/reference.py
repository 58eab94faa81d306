"""The reference profile of a deployed model: its own validation split, read from the run or the export folder
(so the clinic's machine needs no training image).

It holds the validation answers' scores, the mix of predicted classes, the OOD scores and the share flagged, the
quality-flag shares where the model folder recorded them, the images' appearance figures (``appearance_*`` columns), and the validation performance with Wilson CIs and the
calibration fit: what every monitoring signal is compared with.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.core.decision import threshold_value
from proctovision.evaluation import drift
from proctovision.monitoring.appearance import PATIENTS, reference_figures
from proctovision.monitoring.store import MonitorError

VALIDATION_CSV = "validation.csv"  # an export's copy of the run's validation predictions (no path, no patient)
QUALITY_FLAGS = ("too_dark", "overexposed", "blurred")
QUALITY_PRIOR = 0.01


def model_kind(folder: Path) -> str:
    """``run`` (a trained run folder) or ``export`` (an ONNX export folder); anything else is refused."""
    if (folder / "config.yaml").is_file():
        return "run"
    if (folder / "model.onnx").is_file() and (folder / "model_card.json").is_file():
        return "export"
    raise MonitorError(f"{folder}: neither a run folder (config.yaml) nor an export folder (model.onnx and "
                       "model_card.json)")


def model_file(folder: Path) -> Path:
    """The file whose sha256 names the model version: the run's checkpoint or the export's model.onnx, as the
    predictor and the audit trail name it."""
    folder = Path(folder)
    if model_kind(folder) == "export":
        return folder / "model.onnx"
    from proctovision.artefacts.runs import read_run

    return read_run(folder).checkpoint()


def model_sha256(folder: str | Path) -> str:
    from proctovision.monitoring.versions import version_sha256  # the weights' sha256, with a recalibration's point

    return version_sha256(folder)


def _card(folder: Path) -> dict:
    if model_kind(folder) == "export":
        return json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
    from proctovision.artefacts.card import build_card
    from proctovision.artefacts.runs import read_run

    return build_card(read_run(folder))


def validation_rows(folder: Path) -> pd.DataFrame:
    """The validation predictions (label, predicted, prob_<class>); refused, with the reason, when there are none."""
    if model_kind(folder) == "export":
        source = folder / VALIDATION_CSV
        hint = "export it again from a run that `proctovision evaluate` has scored"
    else:
        source = folder / "predictions.csv"
        hint = f"run `proctovision evaluate {folder}` first: it predicts the validation split"
    if not source.is_file():
        raise MonitorError(f"{folder}: the model has no validation predictions ({source.name} is missing); {hint}")
    rows = pd.read_csv(source)
    if "split" in rows.columns:
        rows = rows[rows["split"].astype(str) == "val"]
    if rows.empty or "label" not in rows.columns:
        raise MonitorError(f"{folder}: the model has no validation predictions ({source.name} holds no labelled "
                           f"val rows); {hint}")
    return rows.reset_index(drop=True)


def validation_units(rows: pd.DataFrame) -> int | None:
    """The validation split's number of patients, a count and never who they are: the figure ``evaluate`` writes,
    else the distinct patients of a run's predictions; None where neither is known (an older export)."""
    if PATIENTS in rows.columns and pd.to_numeric(rows[PATIENTS], errors="coerce").notna().any():
        return int(pd.to_numeric(rows[PATIENTS], errors="coerce").max())
    if "patient_id" in rows.columns and rows["patient_id"].notna().any():
        return int(rows["patient_id"].nunique())
    return None


def answer_score(probabilities: np.ndarray, decided: np.ndarray) -> np.ndarray:
    """The number a chart follows per answer: P(positive class) for two classes, else P(decided class)."""
    if probabilities.shape[1] == 2:
        return probabilities[:, 1]
    return probabilities[np.arange(len(decided)), decided]


def _ood(folder: Path) -> dict | None:
    summary = folder / "ood.json"
    if not summary.is_file():
        return None
    data = json.loads(summary.read_text(encoding="utf-8"))
    val = (data.get("splits") or {}).get("val") or {}
    return {"method": data.get("method"), "threshold": data.get("threshold"), "quantile": data.get("quantile"),
            "share_flagged": val.get("share_flagged"), "scores": val.get("scores") or []}


def validation_quality(folder: Path) -> dict | None:
    """Quality-flag shares of a run's validation images, read as the predictor reads them; None when the images
    are not at hand (an export, or a clinic machine without the training data)."""
    if model_kind(folder) != "run":
        return None
    from proctovision.artefacts.runs import read_run, split_rows
    from proctovision.imaging.quality import assess_quality
    from proctovision.inference.predictor import read_checked_image, row_keys

    try:
        run = read_run(folder)
        flags = [assess_quality(read_checked_image(key, run.preprocessing)).to_dict()
                 for key in row_keys(split_rows(run, "val"))]
    except (OSError, ValueError):
        return None
    return {flag: float(np.mean([bool(item.get(flag)) for item in flags])) for flag in QUALITY_FLAGS} if flags else None


def build_reference(folder: str | Path) -> dict:
    """The reference profile (JSON-ready) of the model in ``folder``."""
    folder = Path(folder).resolve()
    kind = model_kind(folder)
    card = _card(folder)
    classes = list(card["classes"])
    rows = validation_rows(folder)
    columns = [f"prob_{name}" for name in classes]
    missing = [column for column in columns + ["predicted"] if column not in rows.columns]
    if missing:
        raise MonitorError(f"{folder}: the validation predictions lack the columns {', '.join(missing)}")
    probabilities = rows[columns].to_numpy(float)
    decided = np.array([classes.index(name) for name in rows["predicted"].astype(str)])
    labels = rows["label"].astype(str)
    known = labels.isin(classes).to_numpy()
    truth = np.array([classes.index(name) for name in labels[known]])
    scores = answer_score(probabilities, decided)
    quality = validation_quality(folder) or {
        flag: (float(rows[flag].astype(str).str.lower().eq("true").mean()) if flag in rows.columns else None)
        for flag in QUALITY_FLAGS}
    positive = 1 if len(classes) == 2 else None
    return {
        "format": "proctovision-reference/1",
        "model": {"kind": kind, "folder": str(folder), "sha256": model_sha256(folder), "task": card["task"]["name"],
                  "name": "/".join(str(card.get(key)) for key in ("backbone", "mode") if card.get(key)),
                  "classes": classes, "threshold": threshold_value(card), "temperature": card.get("temperature")},
        "n": int(len(rows)),
        "units": validation_units(rows),
        "scores": [round(float(value), 6) for value in scores],
        "class_mix": {name: float((decided == index).mean()) for index, name in enumerate(classes)},
        "label_mix": {name: float((labels == name).mean()) for name in classes},
        "ood": _ood(folder),
        "quality": quality,
        "quality_note": None if all(value is not None for value in quality.values()) else
        f"the model folder records no quality flags for its validation images: a prior of {QUALITY_PRIOR:.0%} is used",
        "appearance": reference_figures(rows),
        "performance": drift.observed_performance(truth, decided[known], positive or 1) if len(truth) else None,
        "calibration": drift.calibration_fit((truth == 1), probabilities[known, 1]) if positive else None,
        "estimated": {key: value for key, value in drift.cbpe(probabilities, decided, positive or 1).items()
                      if key != "assumptions"},
    }
