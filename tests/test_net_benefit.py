"""Net benefit on a case worked by hand, and the decision-curve figure."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from proctovision.evaluation import net_benefit
from proctovision.reporting.split_figures import decision_curve_figure

Y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
P = np.array([0.9, 0.6, 0.2, 0.7, 0.3, 0.1, 0.1, 0.05, 0.5, 0.15])


def test_net_benefit_worked_by_hand():
    # p_t = 0.2: treated 0,1,2,3,4,8 -> TP 3, FP 3: 3/10 - 3/10 * 0.25 = 0.225
    # p_t = 0.5: treated 0,1,3,8 -> TP 2, FP 2: 2/10 - 2/10 * 1 = 0
    # p_t = 0.8: treated 0 -> TP 1, FP 0: 0.1
    assert net_benefit.net_benefit(Y, P, np.array([0.2, 0.5, 0.8])) == pytest.approx([0.225, 0.0, 0.1])
    # treat all: prevalence 0.3 - 0.7 * p_t/(1 - p_t)
    assert net_benefit.treat_all(Y, np.array([0.2, 0.5])) == pytest.approx([0.125, -0.4])


def test_decision_curve_payload_and_figure(tmp_path: Path):
    result = net_benefit.decision_curve(Y, {"model": P, "perfect": Y.astype(float)})
    assert len(result["thresholds"]) == len(result["models"]["model"]) == len(result["treat_all"]) == 99
    assert result["prevalence"] == pytest.approx(0.3)
    assert result["models"]["perfect"] == pytest.approx([0.3] * 99), "a perfect model's net benefit is prevalence"
    low, high = result["useful_range"]["model"]
    assert low <= 0.2 <= high
    path = decision_curve_figure(result, tmp_path / "decision_curve.png")
    with Image.open(path) as figure:
        assert np.asarray(figure).std() > 5
