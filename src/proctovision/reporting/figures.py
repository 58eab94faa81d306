"""Matplotlib figures in the shape of the hemorrhoid study's Fig. 2-4, plus ROC and reliability plots."""
from __future__ import annotations

import contextlib
import warnings
from contextvars import ContextVar
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from matplotlib import font_manager  # noqa: E402

from proctovision.core import fileio, i18n  # noqa: E402

MODEL_COLOUR, READER_COLOUR = "#3c78c3", "#d9822b"
# Fonts with Simplified Chinese glyphs, best first: Debian's fonts-noto-cjk, Adobe's Source Han, WenQuanYi.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "Noto Sans CJK JP",
             "Noto Serif CJK SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback")


class MissingFontWarning(UserWarning):
    """No font with Chinese glyphs is installed: figures fall back to English labels."""


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The first installed font, by family name, that draws Simplified Chinese; None when there is none."""
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


@contextlib.contextmanager
def figure_language(language: str | None) -> Iterator[Callable[[str], str]]:
    """Draw figures in ``language``: yields its gettext, with a CJK font in use for Chinese.

    Without a CJK font every Chinese label would be drawn as empty boxes, so the labels stay English and a
    warning says which package to install.
    """
    language = i18n.normalise(language)
    if language == "en":
        yield i18n.gettext_for("en")
        return
    font = cjk_font()
    if font is None:
        warnings.warn(
            "no font with Chinese glyphs found (looked for " + ", ".join(CJK_FONTS[:3]) + "); figure labels stay "
            "English. Install one, e.g. `apt-get install fonts-noto-cjk`.", MissingFontWarning, stacklevel=3,
        )
        yield i18n.gettext_for("en")
        return
    with plt.rc_context({"font.family": "sans-serif",
                         "font.sans-serif": [font, *plt.rcParams["font.sans-serif"]],
                         "axes.unicode_minus": False}):
        yield i18n.gettext_for(language)


# Set by ``paper.paper_style``: a figure drawn inside is saved for a journal (PDF, SVG, 300 dpi PNG) instead.
SAVER: ContextVar[Callable[[plt.Figure, Path], Path] | None] = ContextVar("figure_saver", default=None)


def save(figure: plt.Figure, path: Path) -> Path:
    saver = SAVER.get()
    if saver is not None:
        return saver(figure, path)
    figure.tight_layout()
    fileio.write_with(path, lambda target: figure.savefig(target, format="png", dpi=130))
    plt.close(figure)
    return path


def metric_bars(
    table: list[dict], metrics: tuple[str, ...], path: Path, title: str = "", _: Callable[[str], str] = str,
) -> Path:
    """One panel per metric: a bar per model (blue) and reader (orange), with its 95% CI; ``_`` names metrics."""
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.6), sharey=True)
    axes = np.atleast_1d(axes)
    names = [row["participant"] for row in table]
    colours = [MODEL_COLOUR if row["kind"] == "model" else READER_COLOUR for row in table]
    for axis, metric in zip(axes, metrics):
        values = [row.get(metric) or 0.0 for row in table]
        lows = [value - (row.get(f"{metric}_ci_low") or value) for value, row in zip(values, table)]
        highs = [(row.get(f"{metric}_ci_high") or value) - value for value, row in zip(values, table)]
        axis.bar(range(len(names)), values, color=colours, yerr=[lows, highs], capsize=3)
        for position, value in enumerate(values):
            axis.text(position, value / 2, f"{value:.3f}", ha="center", va="center", rotation=90, color="white",
                      fontsize=8)
        axis.set_title(_(metric))
        axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        axis.set_ylim(0, 1.05)
    if title:
        figure.suptitle(title)
    return save(figure, path)


def reading_time_bars(table: list[dict], path: Path, _: Callable[[str], str] = str) -> Path:
    """Total seconds to read the set, models against readers; a log axis when they differ by orders."""
    rows = [row for row in table if row.get("reading_time_s")]
    figure, axis = plt.subplots(figsize=(max(4, 0.9 * len(rows) + 2), 3.6))
    values = [row["reading_time_s"] for row in rows]
    axis.bar([row["participant"] for row in rows], values,
             color=[MODEL_COLOUR if row["kind"] == "model" else READER_COLOUR for row in rows])
    if values and max(values) / max(min(values), 1e-9) > 30:
        axis.set_yscale("log")
    for position, value in enumerate(values):
        axis.text(position, value, f"{value:.1f} s", ha="center", va="bottom", fontsize=8)
    axis.set_ylabel(_("reading time (s)"))
    axis.tick_params(axis="x", rotation=45)
    return save(figure, path)


def reading_time_per_case(rows: list[dict], path: Path, _: Callable[[str], str] = str) -> Path:
    """Median reading time per case with its 95% CI: each reader per arm, each arm over its readers, and each
    model's time per image (a point without a CI); a log axis when they differ by orders of magnitude."""
    arm_names = {"unaided": _("unaided"), "aided": _("aided")}

    def label(row: dict) -> str:
        condition = arm_names.get(row["condition"], row["condition"])
        name = _("all readers") if row["kind"] == "arm" else row["reader"] if row["kind"] == "reader" else \
            row["participant"]
        return f"{name} ({condition})" if condition else name

    order = {"reader": 0, "arm": 1, "model": 2}
    rows = sorted(rows, key=lambda row: (order.get(row["kind"], 3), row["condition"], row["participant"]))
    colours = {"reader": READER_COLOUR, "arm": "#8a4b12", "model": MODEL_COLOUR}
    figure, axis = plt.subplots(figsize=(5.2, max(2.2, 0.42 * len(rows) + 1.1)))
    for position, row in enumerate(rows):
        median, low, high = row["median_s"], row.get("ci_low"), row.get("ci_high")
        error = None if low is None else [[median - low], [high - median]]
        axis.errorbar(median, position, xerr=error, fmt="D" if row["kind"] != "reader" else "o", capsize=3,
                      color=colours.get(row["kind"], "grey"))
        axis.annotate(f"{median:.3g} s", (median, position), textcoords="offset points", xytext=(0, 6),
                      ha="center", fontsize=7)
    axis.set_yticks(range(len(rows)), [label(row) for row in rows], fontsize=8)
    axis.invert_yaxis()
    values = [value for row in rows for value in (row["median_s"], row.get("ci_low"), row.get("ci_high"))
              if value is not None and value > 0]
    if values and max(values) / min(values) > 30:
        axis.set_xscale("log")
    axis.set_xlabel(_("reading time per case (s): median, 95% CI"))
    return save(figure, path)


def roc_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: Path, title: str = "ROC",
    _: Callable[[str], str] = str,
) -> Path:
    """Several ROC curves on one figure: name → (fpr, tpr, auc)."""
    figure, axis = plt.subplots(figsize=(4.6, 4.4))
    for name, (fpr, tpr, auc) in curves.items():
        axis.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axis.set_xlabel(_("1 - specificity"))
    axis.set_ylabel(_("sensitivity"))
    axis.set_title(title)
    axis.legend(fontsize=7, loc="lower right")
    return save(figure, path)


def pr_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: Path, prevalence: float | None = None,
    title: str = "Precision-recall", _: Callable[[str], str] = str,
) -> Path:
    """Several precision-recall curves on one figure: name → (recall, precision, average precision).

    ``prevalence`` draws the no-skill line: a PR curve only means something against the positive share.
    """
    figure, axis = plt.subplots(figsize=(4.6, 4.4))
    for name, (recall, precision, average_precision) in curves.items():
        axis.step(recall, precision, where="post", label=f"{name} (AP {average_precision:.3f})")
    if prevalence is not None:
        axis.axhline(prevalence, color="grey", linestyle=":", label=_("prevalence {value:.2f}").format(value=prevalence))
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.05)
    axis.set_xlabel(_("recall (sensitivity)"))
    axis.set_ylabel(_("precision (PPV)"))
    axis.set_title(title)
    axis.legend(fontsize=7, loc="lower left")
    return save(figure, path)


def reliability_diagram(table: dict, path: Path, title: str = "Calibration", _: Callable[[str], str] = str) -> Path:
    figure, axis = plt.subplots(figsize=(4.4, 4.2))
    points = [(c, a) for c, a in zip(table["confidence"], table["accuracy"]) if c is not None]
    if points:
        confidence, accuracy = zip(*points)
        axis.plot(confidence, accuracy, marker="o")
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axis.set_xlabel(_("confidence"))
    axis.set_ylabel(_("accuracy"))
    axis.set_title(title)
    return save(figure, path)


def confusion_matrix_figure(
    matrix: list[list[int]], classes: list[str], path: Path, _: Callable[[str], str] = str,
) -> Path:
    figure, axis = plt.subplots(figsize=(3.8, 3.4))
    values = np.array(matrix)
    axis.imshow(values, cmap="Blues")
    for (row, column), count in np.ndenumerate(values):
        axis.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > values.max() / 2 else "black")
    names = [_(name) for name in classes]
    axis.set_xticks(range(len(classes)), names)
    axis.set_yticks(range(len(classes)), names)
    axis.set_xlabel(_("predicted"))
    axis.set_ylabel(_("true"))
    return save(figure, path)


def reader_study_roc(
    models: dict[str, tuple[np.ndarray, np.ndarray, float]], readers: dict[str, tuple[float, float]], path: Path,
    reader_curves: dict[str, tuple[np.ndarray, np.ndarray, float]] | None = None, title: str = "Model and readers",
    conditions: dict[str, str] | None = None, _: Callable[[str], str] = str,
) -> Path:
    """Each model's ROC curve, each reader's operating point (and ROC curve when readers gave scores), and the
    readers' mean operating point per reading condition: where the panel stands against the model at a glance."""
    figure, axis = plt.subplots(figsize=(5, 5))
    translate = _
    for name, (fpr, tpr, auc) in models.items():
        axis.plot(fpr, tpr, color=MODEL_COLOUR, lw=2, label=f"{name} (AUC {auc:.3f})")
    conditions = conditions or {}
    groups = sorted(set(conditions.get(name, "") for name in readers))
    markers = dict(zip(groups, "osv^P*"))
    shades = dict(zip(groups, [READER_COLOUR, "#8c564b", "#9467bd", "#e377c2", "#7f7f7f", "#bcbd22"]))
    for name, (fpr, tpr, _auc) in (reader_curves or {}).items():
        axis.plot(fpr, tpr, color=shades.get(conditions.get(name, ""), READER_COLOUR), lw=1, alpha=0.5)
    labelled: dict[tuple[float, float], int] = {}
    for name, (fpr, tpr) in readers.items():
        group = conditions.get(name, "")
        axis.scatter([fpr], [tpr], color=shades[group], marker=markers[group], edgecolor="black", zorder=3, s=40)
        stack = labelled.get((round(fpr, 3), round(tpr, 3)), 0)
        labelled[(round(fpr, 3), round(tpr, 3))] = stack + 1
        axis.annotate(name, (fpr, tpr), textcoords="offset points", xytext=(6, -10 - 10 * stack), fontsize=7)
    for group in groups:
        names = [name for name in readers if conditions.get(name, "") == group]
        points = np.array([readers[name] for name in names])
        label = translate("readers' mean") + (f" ({translate(group)})" if group else "")
        curves = [reader_curves[name][2] for name in names if reader_curves and name in reader_curves]
        if curves:
            label += f", AUC {np.mean(curves):.3f}"
        axis.scatter([points[:, 0].mean()], [points[:, 1].mean()], marker="D", s=70, color=shades[group],
                     edgecolor="black", zorder=4, label=label)
    axis.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    axis.set_xlabel(translate("1 - specificity"))
    axis.set_ylabel(translate("sensitivity"))
    axis.set_xlim(-0.02, 1.02)
    axis.set_ylim(-0.02, 1.02)
    axis.set_title(title)
    axis.legend(loc="lower right", fontsize=8)
    return save(figure, path)


def forest_plot(rows: list[dict], path: Path, metric: str, overall: float | None = None, title: str = "",
                _: Callable[[str], str] = str) -> Path:
    """One line per subgroup: the value and its 95% CI; the overall value as a dashed line.

    ``rows``: dicts with ``label``, ``value``, ``ci95`` and optionally ``n``.
    """
    shown = [row for row in rows if row.get("value") is not None]
    figure, axis = plt.subplots(figsize=(6, 0.45 * len(shown) + 1.4))
    for position, row in enumerate(reversed(shown)):
        low, high = row.get("ci95") or (None, None)
        if low is not None and high is not None:
            axis.plot([low, high], [position, position], color=MODEL_COLOUR, lw=2)
        axis.scatter([row["value"]], [position], color=MODEL_COLOUR, marker="s", zorder=3)
    labels = [f"{row['label']} (n={row['n']})" if row.get("n") is not None else str(row["label"])
              for row in reversed(shown)]
    axis.set_yticks(range(len(shown)), labels, fontsize=8)
    if overall is not None:
        axis.axvline(overall, color="grey", ls="--", lw=1, label=_("overall"))
        axis.legend(loc="best", fontsize=8)
    axis.set_xlabel(_(metric))
    axis.set_title(title or _("{metric} by subgroup").format(metric=_(metric)))
    return save(figure, path)


def decision_curve(curves: dict[str, tuple[np.ndarray, np.ndarray]], treat_all: tuple[np.ndarray, np.ndarray],
                   path: Path, title: str = "Decision curve") -> Path:
    """Net benefit over threshold probabilities: each model against treat-all and treat-none (Vickers 2006)."""
    figure, axis = plt.subplots(figsize=(6, 4))
    thresholds, benefit = treat_all
    axis.plot(thresholds, benefit, color="grey", lw=1, label="treat all")
    axis.axhline(0, color="black", lw=1, label="treat none")
    top = 0.0
    for name, (model_thresholds, model_benefit) in curves.items():
        axis.plot(model_thresholds, model_benefit, lw=2, label=name)
        top = max(top, float(np.nanmax(model_benefit)))
    top = max(top, float(np.nanmax(benefit)), 0.01)
    axis.set_ylim(-0.05 * top * 2, top * 1.1)
    axis.set_xlim(float(thresholds.min()), float(thresholds.max()))
    axis.set_xlabel("threshold probability")
    axis.set_ylabel("net benefit")
    axis.set_title(title)
    axis.legend(loc="upper right", fontsize=8)
    return save(figure, path)


def ood_score_figure(summary: dict, path: Path, _: Callable[[str], str] = str) -> Path:
    """Histograms of the OOD scores of each evaluated split, with the threshold: the report embeds it."""
    figure, axis = plt.subplots(figsize=(6, 3.2))
    for split, entry in summary["splits"].items():
        if split != "train" and entry["scores"]:
            axis.hist(entry["scores"], bins=30, alpha=0.55, label=f"{_(split)} ({entry['n_images']})")
    axis.axvline(summary["threshold"], color="black", linestyle="--",
                 label=_("threshold ({share} of validation)").format(share=f"{summary['quantile']:.0%}"))
    axis.set_xlabel(_("OOD score (squared Mahalanobis distance)"))
    axis.set_ylabel(_("images"))
    axis.legend(fontsize=8)
    if SAVER.get() is not None:
        return SAVER.get()(figure, path)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_with(path, lambda target: figure.savefig(target, format="png", dpi=110))
    plt.close(figure)
    return path


def cases_grid(table: pd.DataFrame, folder: Path, classes: tuple[str, ...], out: Path, per_cell: int = 4,
               _: Callable[[str], str] = str) -> Path | None:
    """Rows: true class × (right, wrong); up to ``per_cell`` overlays each: where the model looks when it errs."""
    if table.empty or "label" not in table or not table["label"].astype(bool).any():
        return None
    cells = [(name, outcome) for name in classes for outcome in ("right", "wrong")]
    figure, axes = plt.subplots(len(cells), per_cell, figsize=(2.0 * per_cell, 1.9 * len(cells)), squeeze=False)
    for row, (name, outcome) in enumerate(cells):
        wanted = table[(table["label"] == name) & ((table["label"] == table["predicted"]) == (outcome == "right"))]
        for column in range(per_cell):
            axis = axes[row, column]
            axis.axis("off")
            if column < len(wanted):
                with Image.open(folder / wanted["png"].iloc[column]) as strip:
                    width = strip.width // 3
                    axis.imshow(strip.crop((2 * width, 0, 3 * width, strip.height)))
                axis.set_title(f"→ {_(str(wanted['predicted'].iloc[column]))}", fontsize=7)
        axes[row, 0].text(-0.1, 0.5, f"{_(name)}\n{_(outcome)}", transform=axes[row, 0].transAxes, ha="right",
                          va="center", fontsize=8)
    if SAVER.get() is not None:
        return SAVER.get()(figure, out)
    figure.tight_layout()
    fileio.write_with(out, lambda target: figure.savefig(target, format="png", dpi=110))
    plt.close(figure)
    return out
