"""Fitting a run's out-of-distribution guard: features of every split through the predictor, the detector fitted
on training and thresholded on validation, its summary and figure written into the run folder; beside it the
model's own blur cut, the 1st percentile of its training images' sharpness (see :mod:`proctovision.imaging.quality`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from proctovision.artefacts.runs import read_run
from proctovision.imaging.quality import BLUR_QUANTILE, blur_cut
from proctovision.inference.ood import DEFAULT_QUANTILE, METHOD, distribution, fit_detector
from proctovision.inference.predictor import load_predictor, row_keys
from proctovision.reporting import figures
from proctovision.artefacts.runs import split_rows


def fit_run_ood(run_dir: str | Path, quantile: float = DEFAULT_QUANTILE, batch_size: int = 32,
                workers: int | None = None) -> dict:
    """Fit the run's detector on its training split, threshold it on validation, and describe every split.

    Written to the run folder as ood.npz + ood.json and a figure of the score distributions; returns the summary.
    """
    run = read_run(run_dir)
    predictor = load_predictor(run.paths.root, backend="torch")
    features: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("train", "val", "test"):
        try:
            rows = split_rows(run, split)
        except Exception:  # noqa: BLE001 - a split file without a test split still gets a detector
            if split == "test":
                continue
            raise
        keys = row_keys(rows)
        result = predictor.predict_keys(keys, batch_size=batch_size, workers=workers, calibrated=False,
                                        with_features=True, checks=True)
        readable = np.setdiff1d(np.arange(len(keys)), [index for index, _ in result.errors])
        features[split] = (result.features[readable], rows["label"].to_numpy()[readable])
        if split == "train":
            sharpness = [quality["sharpness"] for quality in result.quality if quality]
    detector = fit_detector(*features["train"], features["val"][0], quantile)
    summary = {
        "method": METHOD, "quantile": quantile, "threshold": detector.threshold,
        "feature_dim": int(detector.means.shape[1]),
        "splits": {split: distribution(detector.scores(values), detector.threshold)
                   for split, (values, _) in features.items()},
        "quality": {"blur_variance": blur_cut(sharpness), "quantile": BLUR_QUANTILE,
                    "rule": "blurred below this sharpness (variance of the Laplacian): the given quantile of the "
                            "training images' sharpness"},
    }
    detector.save(run.paths.root, summary)
    figures.ood_score_figure(summary, run.paths.figures / "ood_scores.png")
    return summary
