"""Patient-level splits: stratified by label, grouped by patient, so no patient is ever on two sides."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from proctovision.core import fileio
from proctovision.core.errors import UserError

SPLITS = ("train", "val", "test")


class SplitError(UserError, ValueError):
    """A split that cannot be honoured; the message says why."""


def patient_labels(frame: pd.DataFrame) -> pd.Series:
    """One label per patient for stratification: the patient's most frequent label."""
    return frame.groupby("patient_id")["label"].agg(lambda labels: labels.value_counts().index[0]).sort_index()


def refuse_unlabelled(frame: pd.DataFrame) -> None:
    """An image without a label cannot be stratified or trained on: name the rows instead of splitting them."""
    labels = frame["label"]
    empty = labels.isna() | (labels.astype(str).str.strip() == "")
    if empty.any():
        paths = [str(path) for path in frame.loc[empty, "path"]]
        shown = ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
        raise SplitError(f"{len(paths)} row(s) have an empty label: {shown}; label or remove them, then split again")


def _check_enough_patients(labels: pd.Series, needed: int, what: str) -> None:
    counts = labels.value_counts()
    short = {str(name): int(count) for name, count in counts.items() if count < needed}
    if short:
        detail = ", ".join(f"{name}: {count}" for name, count in sorted(short.items()))
        raise SplitError(
            f"cannot make {what}: every class needs at least {needed} patients so that each split gets one, "
            f"but {detail} patient(s)"
        )


def holdout_split(frame: pd.DataFrame, val: float, test: float, seed: int) -> pd.DataFrame:
    """Add a ``split`` column (train/val/test) assigned per patient, stratified by patient label."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise SplitError(f"--val ({val}) and --test ({test}) must be in [0, 1) and add up to less than 1")
    refuse_unlabelled(frame)
    labels = patient_labels(frame)
    parts = 1 + (val > 0) + (test > 0)
    _check_enough_patients(labels, parts, f"a {parts}-way patient split")
    assignment = pd.Series("train", index=labels.index)
    remaining = labels
    try:
        if test > 0:
            rest, test_ids = train_test_split(
                remaining.index.to_numpy(), test_size=test, stratify=remaining.to_numpy(), random_state=seed
            )
            assignment[test_ids] = "test"
            remaining = labels[rest]
        if val > 0:
            _, val_ids = train_test_split(
                remaining.index.to_numpy(),
                test_size=val / (1 - test),
                stratify=remaining.to_numpy(),
                random_state=seed,
            )
            assignment[val_ids] = "val"
    except ValueError as error:
        raise SplitError(
            f"cannot honour val={val}, test={test} with {len(labels)} patients in "
            f"{labels.nunique()} classes: {error}"
        ) from error
    out = frame.copy()
    out["split"] = out["patient_id"].map(assignment)
    return out


def kfold_split(frame: pd.DataFrame, folds: int, seed: int) -> pd.DataFrame:
    """Add a ``fold`` column (0..K-1): stratified K-fold grouped by patient."""
    if folds < 2:
        raise SplitError(f"--folds must be at least 2, got {folds}")
    refuse_unlabelled(frame)
    labels = patient_labels(frame)
    _check_enough_patients(labels, folds, f"{folds} folds")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold = pd.Series(-1, index=frame.index)
    for number, (_, held_out) in enumerate(splitter.split(frame, frame["label"], groups=frame["patient_id"])):
        fold.iloc[held_out] = number
    out = frame.copy()
    out["fold"] = fold.astype(int)
    return out


def fold_to_split(frame: pd.DataFrame, fold: int) -> pd.DataFrame:
    """View a k-fold file as a hold-out split: fold ``fold`` is validation and test, the rest train."""
    if "fold" not in frame.columns:
        raise SplitError("this split file has no fold column")
    out = frame.copy()
    folds = out["fold"].astype(int)
    out["split"] = ["val" if value == fold else "train" for value in folds]
    return out


def leaking_patients(frame: pd.DataFrame, column: str = "split") -> list[str]:
    """Patients found on more than one side: must always be empty."""
    sides = frame.groupby("patient_id")[column].nunique()
    return sorted(str(patient) for patient, count in sides.items() if count > 1)


def duplicate_leaks(frame: pd.DataFrame, column: str = "split", max_distance: int = 4) -> list[dict]:
    """Exact or near-duplicate image pairs that sit on two different sides: the same picture seen twice."""
    from proctovision.data.ingest import near_duplicate_pairs

    frame = frame.reset_index(drop=True)
    leaks = []
    if "sha256" in frame.columns:
        for _, group in frame[frame["sha256"] != ""].groupby("sha256"):
            if group[column].nunique() > 1:
                leaks.append({"paths": sorted(group["path"]), "sides": sorted(map(str, set(group[column]))),
                              "kind": "exact"})
    for first, second, distance in near_duplicate_pairs(frame, max_distance):
        if frame[column].iloc[first] != frame[column].iloc[second]:
            leaks.append({"paths": [frame["path"].iloc[first], frame["path"].iloc[second]],
                          "sides": sorted({str(frame[column].iloc[first]), str(frame[column].iloc[second])}),
                          "kind": f"near (hash distance {distance})"})
    return leaks


def split_summary(frame: pd.DataFrame, column: str, classes: tuple[str, ...]) -> pd.DataFrame:
    """Images and patients per side and class, for the screen and the report."""
    table = frame.groupby([column, "label"]).agg(images=("path", "size"), patients=("patient_id", "nunique"))
    return table.reset_index()


def write_lineage(manifest: Path, out: Path, seed: int, folds: int | None, val: float, test: float) -> Path:
    """``<split>.lineage.json`` beside the split: which manifest (by hash) and which settings made it."""
    target = out.with_name(out.name + ".lineage.json")
    fileio.write_json(target, {
        "manifest": os.path.relpath(manifest.resolve(), out.resolve().parent), "manifest_sha256": fileio.sha256(manifest),
        "seed": seed, "folds": folds, "val": None if folds else val, "test": None if folds else test})
    return target
