"""Retraining, the larger update: the parent run's own training data plus the confirmed kept images, trained with
the parent's settings. Every patient of the locked test set is taken out first (by patient id where known,
otherwise by image sha256), so the candidate can still be judged on it."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from proctovision.artefacts.runs import RunError, RunPaths, read_run
from proctovision.core import fileio
from proctovision.core.config import apply_overrides, validate_config
from proctovision.data.manifest import read_manifest, write_manifest
from proctovision.monitoring.leakage import has_patients, image_digests, locked_rows
from proctovision.monitoring.versions import is_export, version_sha256

RECORD_NAME = "retrain.json"


def exclude_locked(frame: pd.DataFrame, locked: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """``frame`` without the locked test set's patients (by id where both sides carry ids) and images (by hash)."""
    drop = pd.Series(False, index=frame.index)
    by_patient = 0
    if has_patients(locked) and has_patients(frame):
        drop |= frame["patient_id"].astype(str).isin(set(locked["patient_id"].astype(str)))
        by_patient = int(drop.sum())
    locked_digests = set(image_digests(locked)) - {""}
    drop |= pd.Series([digest in locked_digests for digest in image_digests(frame)], index=frame.index)
    return frame[~drop].reset_index(drop=True), {"by_patient_id": by_patient, "by_image": int(drop.sum()) - by_patient}


def retrain_rows(parent_split: Path, kept: pd.DataFrame, locked: pd.DataFrame, batch_size: int = 0,
                 ) -> tuple[pd.DataFrame, dict]:
    """The parent's split rows plus the kept confirmed images as training rows, the locked test set taken out.

    When the training rows would leave a last batch of one image (BatchNorm cannot train on it), the newest kept
    image waits for the next update, and the record says so."""
    rows = read_manifest(parent_split)
    kept = kept.assign(split="train")[["path", "label", "patient_id", "split"]]
    combined = pd.concat([rows, kept], ignore_index=True).fillna("")
    cleaned, excluded = exclude_locked(combined, locked)
    held_back = 0
    kept_left = cleaned["patient_id"].astype(str).isin(set(kept["patient_id"].astype(str)))
    if batch_size > 1 and (cleaned["split"] == "train").sum() % batch_size == 1 and kept_left.any():
        cleaned, held_back = cleaned.drop(index=kept_left[kept_left].index[-1]).reset_index(drop=True), 1
    counts = {"parent_rows": int(len(rows)), "kept_images": int(kept_left.sum()) - held_back, "excluded": excluded,
              "held_back_for_a_full_batch": held_back}
    return cleaned, counts


def retrain(
    parent: str | Path, out: str | Path, kept: pd.DataFrame, locked_test: Path, overrides: dict | None = None,
    progress: bool = False, evaluate: bool = True, n_resamples: int = 1000,
) -> dict:
    """Train ``out`` from ``parent``'s settings; ``kept``: confirmed kept images (path, label, patient_id).

    ``overrides``: dotted config keys (``trainer.epochs``) as ``train`` accepts them. With ``evaluate`` the new run is
    evaluated as its parent was, so it carries a threshold fitted on its own validation split.
    """
    from proctovision.workflows.evaluate import evaluate_run
    from proctovision.workflows.training import train

    parent, out = Path(parent), Path(out)
    if is_export(parent) or not (parent / "config.yaml").is_file():
        raise RunError(f"{parent}: retraining needs the run folder (its settings and training data), not an export")
    run = read_run(parent)
    if RunPaths(out).last.exists():
        raise RunError(f"{out} already holds a trained run; choose another --out")
    batch_size = int((overrides or {}).get("data.batch_size", run.config.data.batch_size))
    rows, counts = retrain_rows(Path(run.config.data.split), kept, locked_rows(locked_test), batch_size)
    split = out / "data" / "split.csv"
    write_manifest(rows, split)
    data = apply_overrides(run.config.model_dump(mode="json"), {**(overrides or {}), "data.split": str(split),
                                                               "out": str(out), "data.fold": None})
    config = validate_config(data, f"{parent}/config.yaml")
    record = {"parent_sha256": version_sha256(parent), "parent": str(parent.resolve()), "method": "retrain",
              "locked_test_sha256": fileio.sha256(locked_test), **counts, "overrides": overrides or {}}
    fileio.write_json(out / RECORD_NAME, record)
    train(config, progress=progress)
    if evaluate:
        metrics = run.paths.metrics
        split_name = "test" if (rows["split"] == "test").any() else "val"
        threshold, temperature = _parent_operating(metrics)
        evaluate_run(out, split=split_name, threshold=threshold, temperature_scaling=temperature,
                     n_resamples=n_resamples)
    return record


def _parent_operating(metrics: Path) -> tuple[str, bool]:
    """The parent's threshold rule and whether it was temperature-scaled, so the child decides the same way."""
    import json

    from proctovision.evaluation.calibration import check_threshold_rule

    entries = json.loads(metrics.read_text()) if metrics.is_file() else {}
    entry = next((entries[name] for name in ("test", "val", *entries) if name in entries), {})
    rule = str((entry.get("threshold") or {}).get("rule") or "youden")
    try:
        rule = check_threshold_rule(rule)
    except ValueError:
        rule = "youden"
    return rule, bool((entry.get("calibration") or {}).get("temperature"))
