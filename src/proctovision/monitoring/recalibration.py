"""Recalibration, the first and smallest update (Van Calster et al. 2019; Davis et al. 2020): the weights stay, the
temperature (or a logistic intercept and slope) and the operating threshold are refitted on confirmed cases, and a
new model version is written whose card names its parent, the data window and the method."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from proctovision.artefacts.card import CARD_NAME, VERSION_NAME, write_card
from proctovision.artefacts.runs import read_run
from proctovision.core import fileio
from proctovision.core.decision import logistic, scale
from proctovision.core.errors import UserError
from proctovision.evaluation.calibration import check_threshold_rule, choose_threshold, fit_temperature, \
    logistic_calibration
from proctovision.monitoring.versions import is_export, model_card, version_sha256

COPIED_WITH_RUN = ("history.csv", "metrics.json", "ood.npz", "ood.json")


class RecalibrationError(UserError, ValueError):
    """Confirmed cases or a parent model that a recalibration cannot use; the message says why."""


def confirmed_arrays(confirmed: pd.DataFrame, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Labels as class indices and the recorded (already calibrated) probabilities of the confirmed cases."""
    missing = [f"prob_{name}" for name in classes if f"prob_{name}" not in confirmed.columns]
    if missing or "label" not in confirmed.columns:
        raise RecalibrationError(f"confirmed cases lack column(s) {', '.join(missing or ['label'])}")
    unknown = sorted(set(confirmed["label"].astype(str)) - set(classes))
    if unknown:
        raise RecalibrationError(f"confirmed labels {unknown[:5]} are not classes of the model ({', '.join(classes)})")
    labels = np.array([classes.index(str(label)) for label in confirmed["label"]])
    return labels, confirmed[[f"prob_{name}" for name in classes]].to_numpy(float)


def threshold_rule(card: dict, wanted: str | None) -> str:
    """The plan's rule, else the parent's own (youden when the parent's was a default or a fixed number)."""
    if wanted:
        return check_threshold_rule(wanted)
    rule = str((card.get("threshold") or {}).get("rule") or "youden")
    try:
        return check_threshold_rule(rule)
    except UserError:
        return "youden"


def refit(card: dict, labels: np.ndarray, recorded: np.ndarray, method: str, rule: str | None) -> dict:
    """The new operating point; ``recorded`` are the parent's calibrated outputs, so fits compose with the parent's."""
    binary = len(card["classes"]) == 2
    parent_logistic = card.get("logistic")
    if method == "temperature":
        if parent_logistic:
            raise RecalibrationError("the parent carries a logistic recalibration; refit with recalibration: logistic")
        factor = fit_temperature(labels, recorded)
        refitted, temperature, fitted = scale(recorded, factor), (card.get("temperature") or 1.0) * factor, None
    elif method == "logistic":
        if not binary:
            raise RecalibrationError("logistic recalibration is for binary tasks; use recalibration: temperature")
        step = logistic_calibration(labels, recorded[:, 1])
        a0, b0 = (parent_logistic["intercept"], parent_logistic["slope"]) if parent_logistic else (0.0, 1.0)
        fitted = {"intercept": step["intercept"] + step["slope"] * a0, "slope": step["slope"] * b0}
        refitted, temperature = logistic(recorded, step["intercept"], step["slope"]), card.get("temperature")
    else:
        raise RecalibrationError(f"unknown recalibration method {method!r}: use temperature or logistic")
    threshold = None
    if binary:
        chosen = threshold_rule(card, rule)
        threshold = {"value": choose_threshold(labels, refitted[:, 1], chosen), "rule": chosen,
                     "chosen_on": "confirmed cases"}
    return {"temperature": temperature, "logistic": fitted, "threshold": threshold}


def recalibrate(
    parent: str | Path, confirmed: pd.DataFrame, out: str | Path, method: str = "temperature",
    rule: str | None = None, window: dict | None = None,
) -> dict:
    """Write ``out``: the parent's weights with the refitted operating point; returns the version record.

    ``confirmed``: one row per confirmed case with ``label`` and the recorded ``prob_<class>`` columns.
    """
    parent, out = Path(parent), Path(out)
    if out.exists() and any(out.iterdir()):
        raise RecalibrationError(f"{out}: already exists and is not empty; choose another --out")
    card = model_card(parent)
    labels, recorded = confirmed_arrays(confirmed, tuple(card["classes"]))
    if len(np.unique(labels)) < 2:
        raise RecalibrationError(f"the {len(labels)} confirmed cases hold one class only; both are needed to refit")
    record = {**refit(card, labels, recorded, method, rule), "lineage": {
        "parent_sha256": version_sha256(parent, card), "parent": str(parent.resolve()), "method": method,
        "window": {"from": None, "to": None, **(window or {}), "n_confirmed": int(len(labels))}}}
    copy_version(parent, out, record)
    record["sha256"] = version_sha256(out)
    return record


def copy_version(parent: Path, out: Path, record: dict) -> None:
    """The parent's files under ``out`` with the new operating point; written beside, then moved in whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    if is_export(parent):
        shutil.copytree(parent, staging)
        card = {**json.loads((parent / CARD_NAME).read_text(encoding="utf-8")), **version_record_overlay(record)}
        fileio.write_json(staging / VERSION_NAME, record)
        write_card(staging, card)
    else:
        copy_run(parent, staging, out)
        fileio.write_json(staging / VERSION_NAME, record)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)


def version_record_overlay(record: dict) -> dict:
    return {"threshold": record["threshold"], "temperature": record["temperature"], "logistic": record["logistic"],
            "version": record["lineage"]}


def copy_run(parent: Path, staging: Path, out: Path) -> None:
    """A run folder's checkpoint and records, its split path rewritten so the copy still finds its data."""
    run = read_run(parent)
    checkpoint = run.checkpoint()
    (staging / "checkpoints").mkdir(parents=True)
    shutil.copyfile(checkpoint, staging / "checkpoints" / checkpoint.name)
    for name in COPIED_WITH_RUN:
        if (parent / name).is_file():
            shutil.copyfile(parent / name, staging / name)
    config = yaml.safe_load(run.paths.config.read_text(encoding="utf-8"))
    split = Path(run.config.data.split).resolve()
    config["data"]["split"] = str(split)
    lineage = (config.get("resolved") or {}).get("lineage")
    if lineage:
        lineage["split"] = os.path.relpath(split, out.resolve())
    fileio.write_text(staging / "config.yaml", yaml.safe_dump(config, sort_keys=False))
