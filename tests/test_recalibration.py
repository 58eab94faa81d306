"""Recalibration into a new model version: logistic intercept and slope (pinned to scikit-learn's unpenalised
logistic regression), temperatures that compose with the parent's, and a predictor that applies the new point."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from monitoring_fixtures import evaluated_run  # noqa: F401
from proctovision.core.decision import logistic
from proctovision.evaluation.calibration import logistic_calibration
from proctovision.monitoring.recalibration import RecalibrationError, recalibrate
from proctovision.monitoring.versions import model_card, version_sha256


def overconfident(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose true log-odds are 0.4 + 0.5 * logit(p): an overconfident model (slope < 1)."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(0, 3, n)
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.4 + 0.5 * logit)))).astype(int)
    return y, p


def test_logistic_calibration_matches_scikit_learn() -> None:
    y, p = overconfident()
    fitted = logistic_calibration(y, p)
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(np.log(p / (1 - p))[:, None], y)
    assert fitted["slope"] == pytest.approx(reference.coef_[0, 0], abs=1e-5)
    assert fitted["intercept"] == pytest.approx(reference.intercept_[0], abs=1e-5)
    assert 0.3 < fitted["slope"] < 0.7


def confirmed_frame(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"label": np.where(y == 1, "hemorrhoid", "normal"), "prob_normal": 1 - p,
                         "prob_hemorrhoid": p})


def test_logistic_recalibration_writes_a_version_the_predictor_applies(evaluated_run: Path, tmp_path: Path) -> None:
    from proctovision.inference.predictor import load_predictor

    y, p = overconfident()
    record = recalibrate(evaluated_run, confirmed_frame(y, p), tmp_path / "v2", method="logistic",
                         window={"from": "2026-01-01", "to": "2026-03-31"})
    card = model_card(tmp_path / "v2")
    assert card["logistic"] == record["logistic"] and card["version"]["method"] == "logistic"
    assert card["version"]["window"] == {"from": "2026-01-01", "to": "2026-03-31", "n_confirmed": 400}
    assert card["version"]["parent_sha256"] == version_sha256(evaluated_run) != record["sha256"]
    parent = load_predictor(evaluated_run)
    child = load_predictor(tmp_path / "v2")
    raw = np.array([[0.3, 0.7], [0.9, 0.1]])
    expected = logistic(parent.calibrate(raw), record["logistic"]["intercept"], record["logistic"]["slope"])
    assert np.allclose(child.calibrate(raw), expected)
    from proctovision.artefacts.card import card_markdown

    assert "Recalibrated (logistic) from parent " + record["lineage"]["parent_sha256"][:12] in card_markdown(card)


def test_temperature_composes_with_the_parents_and_refusals(evaluated_run: Path, tmp_path: Path) -> None:
    y, p = overconfident(seed=1)
    parent_temperature = model_card(evaluated_run).get("temperature") or 1.0
    record = recalibrate(evaluated_run, confirmed_frame(y, p), tmp_path / "t")
    factor = record["temperature"] / parent_temperature
    assert factor > 1.2  # overconfident scores are softened
    with pytest.raises(RecalibrationError, match="already exists"):
        recalibrate(evaluated_run, confirmed_frame(y, p), tmp_path / "t")
    with pytest.raises(RecalibrationError, match="one class only"):
        recalibrate(evaluated_run, confirmed_frame(np.ones(10, int), p[:10]), tmp_path / "one")
    with pytest.raises(RecalibrationError, match=r"labels \['fissure'\]"):
        recalibrate(evaluated_run, confirmed_frame(y, p).assign(label="fissure"), tmp_path / "bad")
