"""Out-of-distribution guard: Mahalanobis distance to the class means on the model's penultimate features.

The detector of Lee, Lee, Lee and Shin, "A Simple Unified Framework for Detecting Out-of-Distribution
Samples and Adversarial Attacks" (NeurIPS 2018): class means and one covariance shared by all classes,
fitted on the training split's features; an input's score is its smallest squared Mahalanobis distance to a
class mean. With few images and hundreds of feature dimensions the sample covariance is singular, so the
shared covariance is the Ledoit-Wolf shrinkage estimate (Ledoit and Wolf, J. Multivariate Anal. 2004,
scikit-learn's ``LedoitWolf``). The threshold is a quantile (default the 99th) of the validation split's
scores, so about 1% of in-distribution images are flagged by construction.

The detector lives beside the model, in the run folder and in the export, as ``ood.npz`` (the arrays) and
``ood.json`` (what it is, its threshold, and the score distributions of the evaluated splits).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proctovision.core import fileio

ARRAYS = "ood.npz"
SUMMARY = "ood.json"
DEFAULT_QUANTILE = 0.99
METHOD = "mahalanobis (Lee et al. 2018), shared Ledoit-Wolf covariance, penultimate features"


@dataclass(frozen=True)
class OodDetector:
    means: np.ndarray
    precision: np.ndarray
    threshold: float
    quantile: float

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Smallest squared Mahalanobis distance to a class mean, one per row of ``features``."""
        features = np.asarray(features, dtype=np.float64)
        distances = []
        for mean in self.means:
            centred = features - mean
            distances.append(np.einsum("nd,de,ne->n", centred, self.precision, centred))
        return np.min(np.stack(distances, axis=1), axis=1)

    def in_distribution(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) <= self.threshold

    def save(self, folder: Path, summary: dict) -> None:
        def write(path: Path) -> None:
            with open(path, "wb") as stream:
                np.savez(stream, means=self.means.astype(np.float32), precision=self.precision.astype(np.float32),
                         threshold=np.float64(self.threshold), quantile=np.float64(self.quantile))

        fileio.write_with(Path(folder) / ARRAYS, write)
        fileio.write_json(Path(folder) / SUMMARY, summary)


def fit_detector(features: np.ndarray, labels: np.ndarray, val_features: np.ndarray,
                 quantile: float = DEFAULT_QUANTILE) -> OodDetector:
    """Class means and shared covariance from training features; the threshold from validation features."""
    from sklearn.covariance import LedoitWolf

    if not 0 < quantile < 1:
        raise ValueError(f"OOD quantile must lie between 0 and 1, not {quantile}")
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    means = np.stack([features[labels == label].mean(axis=0) for label in classes])
    centred = features - means[np.searchsorted(classes, labels)]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    detector = OodDetector(means, precision, threshold=float("inf"), quantile=quantile)
    threshold = float(np.quantile(detector.scores(val_features), quantile))
    return OodDetector(means, precision, threshold, quantile)


def load_detector(folder: str | Path) -> OodDetector | None:
    """The detector stored beside a model, or None when the model has none (older runs and exports)."""
    path = Path(folder) / ARRAYS
    if not path.is_file():
        return None
    with np.load(path) as data:
        return OodDetector(data["means"].astype(np.float64), data["precision"].astype(np.float64),
                           float(data["threshold"]), float(data["quantile"]))


def read_summary(folder: str | Path) -> dict | None:
    path = Path(folder) / SUMMARY
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def distribution(scores: np.ndarray, threshold: float) -> dict:
    """What a split's scores look like against the threshold: for the report and the model card."""
    scores = np.asarray(scores, dtype=np.float64)
    quantiles = np.quantile(scores, [0.05, 0.25, 0.5, 0.75, 0.95]) if scores.size else [np.nan] * 5
    return {
        "n_images": int(scores.size), "share_flagged": float((scores > threshold).mean()) if scores.size else None,
        "quantiles": dict(zip(("p05", "p25", "p50", "p75", "p95"), (round(float(q), 4) for q in quantiles))),
        "scores": [round(float(value), 4) for value in scores],
    }
