"""The monitoring figures, drawn once here for both the /monitor page (as inline SVG) and the surveillance report
(PNG and PDF): volume, the OOD share's CUSUM against its limit, the class mix, and estimated against observed
accuracy with Wilson CIs. Input is monitoring.summary.chart_data's dictionary."""
from __future__ import annotations

import io
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from proctovision.reporting.figures import figure_language

FIGURES = ("volume", "ood_cusum", "class_mix", "accuracy")
MAX_BARS = 92  # a quarter of days; a longer period is drawn as one filled step line (a bar each would take seconds)


def _empty(axis: plt.Axes, _: Callable[[str], str]) -> None:
    axis.text(0.5, 0.5, _("No answers recorded yet"), ha="center", va="center", transform=axis.transAxes)
    axis.set_axis_off()


def _columns(axis: plt.Axes, periods: pd.Series, values: np.ndarray, bottom: np.ndarray | float, freq: str,
             **style: object) -> None:
    """One bar per period, or for more than MAX_BARS periods one filled step line over the same periods."""
    if len(periods) <= MAX_BARS:
        axis.bar(periods, values, bottom=bottom, width=0.03 if freq == "h" else 0.8, **style)
        return
    step = pd.Timedelta(hours=1) if freq == "h" else pd.Timedelta(days=1)
    edges = np.append(periods.to_numpy(), (periods.iloc[-1] + step).to_datetime64())
    axis.stairs(np.asarray(bottom) + values, edges, baseline=bottom, fill=True, **style)


def draw(name: str, data: dict, _: Callable[[str], str] = str) -> plt.Figure:
    """One figure by name (see FIGURES)."""
    figure, axis = plt.subplots(figsize=(6.4, 2.8))
    table = data["timeline"]
    if name == "ood_cusum":
        chart = data.get("ood_chart")
        if not chart or not chart["statistic"]:
            _empty(axis, _)
        else:
            steps = np.linspace(1, chart.get("answers", len(chart["statistic"])), len(chart["statistic"]))
            axis.plot(steps, chart["statistic"], color="#1f5fa8",
                      label=_("CUSUM of the OOD share"))
            axis.axhline(chart["limit"], color="#b3261e", linestyle="--", label=_("limit"))
            axis.set_xlabel(_("answers"))
            axis.legend(loc="upper left", fontsize=8)
        axis.set_title(_("Out-of-distribution share: CUSUM"))
    elif table is None or table.empty:
        _empty(axis, _)
    elif name == "volume":
        _columns(axis, table["period"], table["answers"].to_numpy(float), 0.0, data["freq"], color="#1f5fa8")
        axis.set_title(_("Answers per hour") if data["freq"] == "h" else _("Answers per day"))
    elif name == "class_mix":
        bottom = np.zeros(len(table))
        for cls in data["classes"]:
            _columns(axis, table["period"], table[f"share_{cls}"].to_numpy(float), bottom, data["freq"], label=_(cls))
            bottom = bottom + table[f"share_{cls}"].to_numpy(float)
        axis.set_ylim(0, 1)
        axis.legend(loc="upper left", fontsize=8)
        axis.set_title(_("Mix of predicted classes"))
    elif name == "accuracy":
        axis.plot(table["period"], table["estimated_accuracy"], marker="o", label=_("estimated (CBPE)"))
        if "observed_accuracy" in table and table["observed_accuracy"].notna().any():
            seen = table[table["observed_accuracy"].notna()]
            axis.errorbar(seen["period"], seen["observed_accuracy"], fmt="s", color="#b3261e", capsize=3,
                          yerr=[seen["observed_accuracy"] - seen["observed_low"],
                                seen["observed_high"] - seen["observed_accuracy"]],
                          label=_("observed on confirmed cases (95% CI)"))
        axis.set_ylim(0, 1.02)
        axis.legend(loc="lower left", fontsize=8)
        axis.set_title(_("Accuracy: estimated and observed"))
    figure.autofmt_xdate() if name != "ood_cusum" else None
    figure.tight_layout()
    return figure


def svg(name: str, data: dict, language: str | None = None) -> str:
    """The figure as an inline SVG element (for a page)."""
    with figure_language(language) as _:
        figure = draw(name, data, _)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg")
        plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def write_all(data: dict, folder: "Path", language: str | None = None, pdf_path: "Path | None" = None,  # noqa: F821
              first_page: "Callable[[Callable[[str], str]], plt.Figure] | None" = None) -> dict[str, "Path"]:  # noqa: F821
    """Every figure as PNG in ``folder`` and all of them in one PDF (matplotlib's PdfPages; ``figures.pdf`` in
    ``folder`` unless ``pdf_path``), after ``first_page`` when given (a text page, drawn in the same language)."""
    from matplotlib.backends.backend_pdf import PdfPages

    from proctovision.core import fileio

    written = {}
    with figure_language(language) as _:
        figures = {name: draw(name, data, _) for name in FIGURES}
        opening = [first_page(_)] if first_page is not None else []
        for name, figure in figures.items():
            written[name] = fileio.write_with(folder / f"{name}.png",
                                              lambda target, f=figure: f.savefig(target, format="png", dpi=130))

        def pdf(target: "Path") -> None:  # noqa: F821
            with PdfPages(target) as pages:
                for figure in (*opening, *figures.values()):
                    pages.savefig(figure)

        written["pdf"] = fileio.write_with(pdf_path or folder / "figures.pdf", pdf)
        for figure in (*opening, *figures.values()):
            plt.close(figure)
    return written
