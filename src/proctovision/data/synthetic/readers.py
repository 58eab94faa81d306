"""Simulated human readers for the demo whose mistakes fall on the hard images, as people's do.

Each reader gets a number of errors set against the model's test accuracy (the senior one makes
fewer errors than the model, the junior one more), and those errors are drawn without
replacement with weights that grow steeply with each image's difficulty, so readers miss the
ambiguous frames far more often than the clear ones and tend to miss the same ones.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.core import fileio

DIFFICULTY_WEIGHT = 4.0


@dataclass(frozen=True)
class SimulatedReader:
    name: str
    errors_vs_model: int
    seconds_per_image: float


SENIOR = SimulatedReader("senior", -1, 12.0)
JUNIOR = SimulatedReader("junior", +1, 16.0)


def load_difficulty(path: str | Path) -> dict[str, float]:
    """Absolute image path → difficulty (0 clear .. 1 coin toss) from the generator's ``difficulty.csv``."""
    path = Path(path)
    if not path.is_file():
        return {}
    frame = pd.read_csv(path)
    pairs = zip(frame["path"], frame["difficulty"])
    return {os.path.realpath(path.parent / entry): float(value) for entry, value in pairs}


def error_count(images: int, model_errors: int, reader: SimulatedReader, margin: float = 0.06) -> int:
    """Errors for a reader: about ``margin`` of the images fewer (senior) or more (junior) than the model,
    and always at least one fewer or one more when the images allow it."""
    shift = max(1, round(margin * images))
    wanted = model_errors + reader.errors_vs_model * shift
    return int(np.clip(wanted, 0, images))


def pick_errors(rng: np.random.Generator, difficulty: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` images to get wrong, drawn with weights exp(k * difficulty)."""
    if count <= 0:
        return np.array([], dtype=int)
    weights = np.exp(DIFFICULTY_WEIGHT * difficulty)
    return rng.choice(len(difficulty), size=count, replace=False, p=weights / weights.sum())


def wrong_label(rng: np.random.Generator, classes: tuple[str, ...], label: str) -> str:
    """Another class; for three or more (ordinal grades) a neighbouring one."""
    index = classes.index(label)
    neighbours = [i for i in (index - 1, index + 1) if 0 <= i < len(classes)]
    return classes[int(rng.choice(neighbours))]


def simulate_readers(
    truth: pd.DataFrame, classes: tuple[str, ...], difficulty: dict[str, float], model_errors: int,
    out: str | Path, seed: int = 0, readers: tuple[SimulatedReader, ...] = (SENIOR, JUNIOR),
) -> Path:
    """Write readers.csv (path, reader, label, score, reading_time_s, simulated) for ``truth`` (absolute paths,
    labels). Names say "(simulated)" and a ``simulated`` column marks them, so no table passes them off as people.
    Binary tasks get a 1-5 confidence score agreeing with the label, less sure on hard images."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    paths = [os.path.realpath(entry) for entry in truth["path"]]
    hardness = np.array([difficulty.get(path, 0.5) for path in paths], dtype=float)
    labels = list(truth["label"])
    rows = []
    for reader in readers:
        wrong = set(pick_errors(rng, hardness, error_count(len(paths), model_errors, reader)).tolist())
        total = round(reader.seconds_per_image * len(paths) * float(rng.uniform(0.9, 1.1)), 1)
        for index, (entry, label) in enumerate(zip(truth["path"], labels)):
            given = wrong_label(rng, classes, label) if index in wrong else label
            row = {"path": os.path.relpath(entry, out.parent), "reader": f"{reader.name} (simulated)",
                   "label": given, "reading_time_s": total, "simulated": "yes"}
            if len(classes) == 2:
                sure = int(hardness[index] < 0.5)
                row["score"] = 4 + sure if given == classes[1] else 2 - sure
            rows.append(row)
    fileio.write_csv(out, pd.DataFrame(rows))
    return out
