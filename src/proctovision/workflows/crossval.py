"""k-fold cross-validation: one run per fold, out-of-fold predictions, and metrics per fold, mean ± SD and pooled.

For fold k: test = fold k; validation = a patient-level stratified slice (``val`` of the patients) of the other
folds; train = the rest. Each fold's threshold (and temperature) is fitted on its own validation rows and decides
its own test rows, so the pooled out-of-fold metrics never refit a cut on the rows they score. Finished folds
(DONE marker and test metrics) are never redone; an interrupted fold resumes from its last checkpoint.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.core import fileio
from proctovision.core.config import RunConfig
from proctovision.data.manifest import read_manifest, write_manifest
from proctovision.data.split import SplitError, kfold_split, leaking_patients, patient_labels
from proctovision.evaluation.score import ROW_THRESHOLD, ScoreOptions, read_predictions, score_table
from proctovision.reporting.split_figures import fold_roc_figure, write_split_figures
from proctovision.artefacts.runs import RunPaths, is_done, mark_done
from proctovision.core.tables import read_table
from proctovision.core.tasks import Task, load_task

VALIDATION_SCHEME = ("validation = a patient-level slice of the other folds, stratified by label (share `val` of "
                     "each class's patients, at least one; seed = seed + 1000 x repeat + fold); train = the rest")


@dataclass(frozen=True)
class CrossvalSettings:
    """How folds are validated and scored; ``repeats`` > 1 re-draws the k folds with seeds seed+1, seed+2, ..."""

    val: float = 0.2
    repeats: int = 1
    seed: int = 0
    threshold: str = "youden"
    temperature_scaling: bool = False
    resamples: int = 1000
    batch_size: int = 32


@dataclass(frozen=True)
class FoldJob:
    """Everything one fold needs, picklable so a cluster job can run it alone."""

    repeat: int
    fold: int
    config: RunConfig
    settings: CrossvalSettings
    tracking: object | None = None

    @property
    def run_dir(self) -> Path:
        return Path(self.config.out)


def fold_numbers(frame: pd.DataFrame, source: object) -> list[int]:
    if "fold" not in frame.columns:
        raise SplitError(f"{source}: no fold column; make one with `proctovision split MANIFEST --folds K`")
    folds = pd.to_numeric(frame["fold"], errors="coerce")
    if folds.isna().any():
        raise SplitError(f"{source}: row {int(np.flatnonzero(folds.isna())[0]) + 2}: fold is not a number")
    numbers = sorted(int(value) for value in folds.unique())
    if len(numbers) < 2:
        raise SplitError(f"{source}: cross-validation needs at least 2 folds (found {len(numbers)})")
    leaks = leaking_patients(frame.assign(fold=folds.astype(int)), "fold")
    if leaks:
        raise SplitError(f"{source}: patient(s) {leaks[:5]} appear in more than one fold")
    return numbers


def validation_patients(frame: pd.DataFrame, val: float, seed: int) -> set[str]:
    """A stratified patient slice: share ``val`` of each class's patients, at least one per class and never all
    of them, so every fold's threshold is fitted on both classes and every class still trains."""
    labels = patient_labels(frame)
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    for label, patients in labels.groupby(labels):
        if len(patients) < 2:
            raise SplitError(f"class {label!r} has {len(patients)} patient(s) outside the test fold; validation "
                             "and training each need one (use fewer folds or more patients)")
        count = min(max(1, round(val * len(patients))), len(patients) - 1)
        chosen.update(rng.choice(np.array(sorted(patients.index), dtype=object), count, replace=False).tolist())
    return chosen


def fold_split(frame: pd.DataFrame, fold: int, val: float, seed: int) -> pd.DataFrame:
    """One fold as a hold-out split file: test = the fold, val = a stratified patient slice of the rest."""
    test = frame["fold"].astype(int) == fold
    chosen = validation_patients(frame[~test], val, seed)
    out = frame.copy()
    out["split"] = np.where(test, "test", np.where(out["patient_id"].isin(chosen), "val", "train"))
    return out


def repeat_folds(frame: pd.DataFrame, repeat: int, settings: CrossvalSettings, k: int) -> pd.DataFrame:
    """Repeat 0 keeps the file's folds; later repeats draw new patient-level stratified folds."""
    if repeat == 0:
        return frame.assign(fold=frame["fold"].astype(int))
    return kfold_split(frame.drop(columns="fold"), k, settings.seed + repeat)


def repeat_dir(out: Path, repeat: int, repeats: int) -> Path:
    return out if repeats == 1 else out / f"repeat_{repeat}"


def plan(folds_csv: Path, base: RunConfig, out: Path, settings: CrossvalSettings,
         tracking: object | None = None) -> list[FoldJob]:
    """Write each fold's split file (under DIR/splits/) and the run config it trains with; one job per fold."""
    frame = read_manifest(folds_csv)
    numbers = fold_numbers(frame, folds_csv)
    jobs = []
    for repeat in range(settings.repeats):
        folds = repeat_folds(frame, repeat, settings, len(numbers))
        root = repeat_dir(out, repeat, settings.repeats)
        for fold in sorted(folds["fold"].unique()):
            split_path = root / "splits" / f"fold_{fold}.csv"
            if not split_path.is_file():
                seed = settings.seed + 1000 * repeat + int(fold)
                write_manifest(fold_split(folds, int(fold), settings.val, seed), split_path)
            data = base.data.model_copy(update={"split": split_path.resolve(), "fold": None})
            config = base.model_copy(update={"data": data, "out": (root / f"fold_{fold}").resolve()})
            jobs.append(FoldJob(repeat, int(fold), config, settings, tracking))
    return jobs


def run_fold(job: FoldJob) -> str:
    """Train, fit the operating point on validation, predict the held-out fold; a DONE marker when finished."""
    from proctovision.workflows.evaluate import evaluate_run
    from proctovision.workflows.training import train

    if is_done(job.run_dir):
        return "done before, skipped"
    resume = RunPaths(job.run_dir).last.is_file()
    logger = None
    if job.tracking is not None:
        from proctovision.workflows.tracking import training_logger

        logger = training_logger(job.tracking, job.run_dir, f"{job.run_dir.parent.name}/{job.run_dir.name}")
    train(job.config, resume=resume, progress=False, logger=logger)
    settings = job.settings
    evaluate_run(job.run_dir, "test", n_resamples=settings.resamples, seed=settings.seed,
                 batch_size=settings.batch_size, threshold=settings.threshold,
                 temperature_scaling=settings.temperature_scaling, workers=0)
    if job.tracking is not None:
        from proctovision.workflows.tracking import log_run

        log_run(job.tracking, job.run_dir)
    mark_done(job.run_dir)
    return "resumed and finished" if resume else "trained and evaluated"


def fold_rows(job: FoldJob, folder: Path) -> tuple[pd.DataFrame, dict]:
    """The fold's test rows as written by evaluate (decided at the fold's own threshold), paths relative to
    ``folder`` (where oof_predictions.csv lies), as any predictions file reads them."""
    paths = RunPaths(job.run_dir)
    entry = json.loads(paths.metrics.read_text())["test"]
    rows = read_table(paths.predictions)
    rows = rows[rows["split"] == "test"].reset_index(drop=True)
    split_root = Path(job.config.data.split).resolve().parent
    rows["path"] = [os.path.relpath(os.path.abspath(split_root / path), Path(folder).resolve())
                    for path in rows["path"]]
    rows.insert(rows.columns.get_loc("split") + 1, "fold", job.fold)
    threshold = (entry.get("threshold") or {}).get("value")
    rows[ROW_THRESHOLD] = "" if threshold is None else threshold
    return rows, entry


def summary(entries: list[dict]) -> dict:
    """Mean ± SD (and the range) of each metric over folds: how much the estimate moves with the data."""
    names = [name for name in entries[0]["metrics"] if all(name in entry["metrics"] for entry in entries)]
    out = {}
    for name in names:
        values = np.array([entry["metrics"][name]["value"] for entry in entries], dtype=float)
        values = values[np.isfinite(values)]
        if len(values):
            out[name] = {"mean": round(float(values.mean()), 6),
                         "sd": round(float(values.std(ddof=1)), 6) if len(values) > 1 else None,
                         "min": round(float(values.min()), 6), "max": round(float(values.max()), 6),
                         "n_folds": int(len(values))}
    return out


def collect(jobs: list[FoldJob], folds_csv: Path, out: Path, task: Task, settings: CrossvalSettings) -> dict:
    """oof_predictions.csv, figures and pooled metrics per repeat; cv_metrics.json over all folds."""
    options = ScoreOptions("youden", False, settings.resamples, settings.seed)
    folds, repeats = [], []
    for repeat in range(settings.repeats):
        root = repeat_dir(out, repeat, settings.repeats)
        members = [job for job in jobs if job.repeat == repeat]
        parts = [fold_rows(job, root) for job in members]
        oof = pd.concat([rows for rows, _ in parts], ignore_index=True)
        oof_path = fileio.write_csv(root / "oof_predictions.csv", oof)
        table = read_predictions(oof_path)
        pooled, scored = score_table(table, "test", options, task, oof_path)
        pooled["split"] = "out-of-fold (pooled)"
        written = write_split_figures(pooled, scored, task.classes, root / "figures", "oof")
        roc = fold_roc_figure(table, task.classes, root / "figures" / "roc_folds.png",
                              "ROC per fold, mean ± 1 SD" + (f" (repeat {repeat})" if settings.repeats > 1 else ""))
        for job, (rows, entry) in zip(members, parts):
            folds.append({"repeat": repeat, "fold": job.fold, "run": os.path.relpath(job.run_dir, out.resolve()),
                          "n_images": entry["n_images"], "n_patients": entry["n_patients"],
                          "threshold": entry.get("threshold"),
                          "temperature": (entry.get("calibration") or {}).get("temperature"),
                          "metrics": entry["metrics"]})
        repeats.append({"repeat": repeat, "oof_predictions": os.path.relpath(oof_path, out),
                        "figures": {name: os.path.relpath(path, out) for name, path in
                                    {**written, **({"roc_folds": roc} if roc else {})}.items()},
                        "pooled": pooled})
    result = {
        "folds_file": os.path.relpath(Path(folds_csv).resolve(), out.resolve()),
        "k": len({job.fold for job in jobs}), "repeats": settings.repeats,
        "validation": VALIDATION_SCHEME, "val": settings.val,
        "threshold_rule": settings.threshold, "temperature_scaling": settings.temperature_scaling,
        "pooled_threshold": "each fold's own threshold (fitted on its validation) decides its rows",
        "folds": folds,
        "mean_sd": summary(folds),
        "per_repeat": repeats,
        "pooled": repeats[0]["pooled"] if settings.repeats == 1 else None,
    }
    fileio.write_json(out / "cv_metrics.json", result)
    return result


def crossval(folds_csv: Path, base: RunConfig, out: Path, settings: CrossvalSettings = CrossvalSettings(),
             executor: object | None = None, tracking: object | None = None, announce=print) -> dict:
    """Run every fold (through ``executor`` when given: local processes or SLURM jobs) and aggregate."""
    from proctovision.workflows.executor import run_all

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if settings.repeats < 1:
        raise SplitError(f"--repeats must be at least 1, got {settings.repeats}")
    task = load_task(base.task)
    jobs = plan(Path(folds_csv), base, out, settings, tracking)
    if tracking is not None:
        from proctovision.workflows.tracking import prepare_store

        prepare_store(tracking)
    for job in jobs:
        state = "finished before" if is_done(job.run_dir) else "to run"
        announce(f"fold {job.fold}" + (f" (repeat {job.repeat})" if settings.repeats > 1 else "") + f": {state}")
    run_all(run_fold, jobs, executor)
    result = collect(jobs, Path(folds_csv), out, task, settings)
    if tracking is not None:
        from proctovision.workflows.tracking import log_crossval

        log_crossval(tracking, out, result)
    return result

