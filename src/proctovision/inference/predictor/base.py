"""What every predictor shares: the card's preprocessing and decision rule, batching over inputs, the
out-of-distribution and quality guard, and the prediction records it returns."""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from proctovision.core.decision import threshold_value
from proctovision.core.decision import decide, logistic, scale
from proctovision.imaging.preprocessing import Preprocessing
from proctovision.inference.ood import OodDetector, load_detector, read_summary
from proctovision.inference.predictor.inputs import (
    InputKey,
    Progress,
    auto_workers,
    decoded,
    expand_frames,
    load_checked_input,
    load_input,
)


@dataclass
class Prediction:
    path: str
    predicted: str
    probabilities: dict[str, float]
    threshold: float | None
    frame: int | None = None
    guard: dict | None = None

    def flat_guard(self) -> dict:
        """The OOD and quality fields as flat columns for predictions.csv."""
        return flat_guard(self.guard)


@dataclass
class PredictionBatch:
    predictions: list[Prediction] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return len(self.predictions) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RowPredictions:
    """Probabilities aligned with the inputs given; rows that could not be read are NaN and listed in ``errors``
    as ``(index, reason)``."""

    probabilities: np.ndarray
    errors: list[tuple[int, str]]
    seconds: float
    features: np.ndarray | None = None
    ood_scores: np.ndarray | None = None
    quality: list[dict | None] | None = None

    @property
    def images_per_s(self) -> float:
        done = len(self.probabilities) - len(self.errors)
        return done / self.seconds if self.seconds > 0 else float("inf")


class Predictor:
    """Shared logic: preprocessing from the spec, the decision rule of the card, batching over inputs."""

    classes: tuple[str, ...]
    card: dict
    backend: str = ""
    model_file: Path | None = None  # the file whose bytes make the answers, named by audits and DICOM reports

    @property
    def spec(self) -> Preprocessing:
        pre = self.card["preprocessing"]
        return Preprocessing.from_dict(pre, pre.get("window"))

    def raw_probabilities(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def raw_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and penultimate features (None where the model does not expose them)."""
        return self.raw_probabilities(batch), None

    @property
    def ood_detector(self) -> OodDetector | None:
        """The out-of-distribution detector stored beside the model (ood.npz), loaded once."""
        if not hasattr(self, "_ood_detector"):
            folder = getattr(self, "folder", None)
            self._ood_detector = load_detector(folder) if folder is not None else None
        return self._ood_detector

    def ood_scores(self, features: np.ndarray | None) -> np.ndarray | None:
        detector = self.ood_detector
        return None if detector is None or features is None else detector.scores(features)

    @property
    def blur_variance(self) -> float | None:
        """The model's own blur cut (fitted beside its OOD detector on its training images), or None."""
        if not hasattr(self, "_blur_variance"):
            folder = getattr(self, "folder", None)
            summary = read_summary(folder) if folder is not None else None
            self._blur_variance = ((summary or {}).get("quality") or {}).get("blur_variance")
        return self._blur_variance

    def guard(self, score: float | None, quality: dict | None) -> dict:
        """``in_distribution`` (None when the model has no detector), the score and threshold, the quality flags;
        blur judged by the model's own cut where it has one."""
        if quality and self.blur_variance is not None and quality.get("sharpness") is not None:
            quality = {**quality, "blurred": bool(quality["sharpness"] < self.blur_variance)}
        detector = self.ood_detector
        known = detector is not None and score is not None and np.isfinite(score)
        return {
            "in_distribution": bool(score <= detector.threshold) if known else None,
            "ood_score": round(float(score), 4) if known else None,
            "ood_threshold": round(detector.threshold, 4) if detector is not None else None,
            "quality": quality,
        }

    @property
    def threshold(self) -> float | None:
        """Binary tasks: probability of the second class at or above which it is called."""
        return threshold_value(self.card)

    @property
    def temperature(self) -> float | None:
        value = self.card.get("temperature")
        return float(value) if value else None

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        """Probabilities as evaluation reported them: temperature-scaled when the card says so, then the logistic
        recalibration a new model version may carry."""
        probabilities = scale(probabilities, self.temperature) if self.temperature else probabilities
        refit = self.card.get("logistic")
        return logistic(probabilities, refit["intercept"], refit["slope"]) if refit else probabilities

    def prepare(self, image: Image.Image) -> np.ndarray:
        return self.spec.to_array(image)

    def decide(self, probabilities: np.ndarray) -> str:
        return self.classes[int(decide(np.asarray(probabilities)[None], self.threshold)[0])]

    def heatmap_png(self, image: Image.Image, class_index: int) -> bytes | None:
        """A Grad-CAM overlay as PNG bytes; only a run folder (PyTorch) can make one."""
        return None

    def predict_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.calibrate(self.raw_probabilities(np.stack([self.prepare(image) for image in images])))

    def predict_keys(
        self, keys: Sequence[InputKey], batch_size: int = 32, workers: int | None = None, calibrated: bool = True,
        progress: Progress | None = None, with_features: bool = False, checks: bool = False,
    ) -> RowPredictions:
        """Probabilities for every ``(path, frame)``; unreadable inputs become NaN rows with their reason.

        ``with_features`` also keeps the penultimate features; ``checks`` adds the OOD scores and the
        image-quality measures. The wall time covers reading files and inference, as a reader's time covers
        looking and deciding.
        """
        workers = auto_workers(len(keys)) if workers is None else workers
        probabilities = np.full((len(keys), len(self.classes)), np.nan, dtype=np.float64)
        features: np.ndarray | None = None
        quality: list[dict | None] = [None] * len(keys)
        errors: list[tuple[int, str]] = []
        start = time.perf_counter()
        arrays: list[np.ndarray] = []
        slots: list[int] = []
        loader = load_checked_input if checks else load_input
        for index, item in enumerate(decoded(keys, self.spec, workers, loader)):
            if isinstance(item, str):
                errors.append((index, item))
            else:
                if checks:
                    item, quality[index] = item
                arrays.append(item)
                slots.append(index)
            if len(arrays) == batch_size or (index == len(keys) - 1 and arrays):
                output, batch_features = self.raw_outputs(np.stack(arrays)) if (with_features or checks) else (
                    self.raw_probabilities(np.stack(arrays)), None)
                probabilities[slots] = self.calibrate(output) if calibrated else output
                if batch_features is not None:
                    if features is None:
                        features = np.full((len(keys), batch_features.shape[1]), np.nan, dtype=np.float32)
                    features[slots] = batch_features
                arrays, slots = [], []
            if progress:
                progress(index + 1, len(keys))
        return RowPredictions(probabilities, errors, time.perf_counter() - start, features,
                              self.ood_scores(features) if checks else None, quality if checks else None)

    def predict_files(self, paths: Iterable[Path], batch_size: int = 16, workers: int | None = None,
                      checks: bool = True) -> PredictionBatch:
        """Files and every frame of multi-frame DICOM; unreadable files are reported with the reason.

        With ``checks`` each prediction carries its guard: in distribution or not, and the quality flags.
        """
        keys, errors = expand_frames(paths)
        rows = self.predict_keys(keys, batch_size, workers, checks=checks)
        failed = dict(rows.errors)
        result = PredictionBatch(errors=errors + [(keys[i][0], reason) for i, reason in rows.errors],
                                 seconds=rows.seconds)
        for index, ((path, frame), row) in enumerate(zip(keys, rows.probabilities)):
            if index not in failed:
                guard = None
                if checks:
                    score = None if rows.ood_scores is None else float(rows.ood_scores[index])
                    guard = self.guard(score, rows.quality[index])
                result.predictions.append(Prediction(
                    path, self.decide(row), {c: round(float(p), 6) for c, p in zip(self.classes, row)},
                    self.threshold, frame, guard))
        return result


GUARD_COLUMNS = ("in_distribution", "ood_score", "too_dark", "overexposed", "blurred")


def flat_guard(guard: dict | None) -> dict:
    """``in_distribution``, ``ood_score`` and one column per quality flag; empty where not measured."""
    guard = guard or {}
    quality = guard.get("quality") or {}
    flat = {"in_distribution": guard.get("in_distribution"), "ood_score": guard.get("ood_score")}
    flat.update({name: quality.get(name) for name in ("too_dark", "overexposed", "blurred")})
    return {key: "" if value is None else value for key, value in flat.items()}
