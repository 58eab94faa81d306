"""The monitoring figures: a bar per period for a short report, one filled step line per series for a long one
(a year of days drawn as 1,095 bars took seconds per figure, and twice: PNG and PDF)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle, StepPatch

from proctovision.reporting import monitoring_figures


def data(days: int) -> dict:
    rng = np.random.default_rng(0)
    share = rng.uniform(0.2, 0.4, days)
    table = pd.DataFrame({"period": pd.date_range("2026-01-01", periods=days, freq="D"),
                          "answers": rng.integers(2000, 3000, days), "ood_share": 0.01,
                          "estimated_accuracy": 0.9, "share_normal": 1 - share, "share_hemorrhoid": share})
    return {"freq": "D", "classes": ["normal", "hemorrhoid"], "timeline": table, "ood_chart": None}


def test_a_year_is_drawn_as_one_step_line_per_series_and_a_fortnight_as_bars() -> None:
    year = data(365)
    for name, series in (("volume", 1), ("class_mix", 2)):
        long = monitoring_figures.draw(name, year)
        patches = long.axes[0].patches
        assert len(patches) == series and all(isinstance(patch, StepPatch) for patch in patches)
        top = patches[-1].get_data()
        assert len(top.edges) == 366
        if name == "volume":
            assert np.array_equal(top.values, year["timeline"]["answers"].to_numpy(float))
        else:  # stacked: the second class's band runs from the first class's share up to 1
            assert np.allclose(top.baseline, year["timeline"]["share_normal"]) and np.allclose(top.values, 1.0)
        short = monitoring_figures.draw(name, data(14))
        assert sum(isinstance(patch, Rectangle) for patch in short.axes[0].patches) == 14 * series
        plt.close(long)
        plt.close(short)
