"""Figures and tables as a journal takes them: every figure as vector PDF and SVG plus a 300 dpi PNG at a column
width (single 85 mm, double 175 mm), fonts embedded; every table as CSV, LaTeX (booktabs) and Word (.docx).

Fonts: PDFs embed TrueType outlines as Type 42 (``pdf.fonttype = 42``) and SVGs draw text as paths. Matplotlib
cannot embed a CFF-flavoured OpenType font (Noto Sans CJK, Source Han Sans: the CJK fonts Debian ships) as Type 42:
it writes the CFF data under ``/FontFile2``, which the PDF specification reserves for TrueType outlines
(matplotlib issues #2869 and #20870). A figure whose CJK font has CFF outlines is therefore embedded as Type 3
(subset glyph outlines, still embedded); a CJK font with TrueType outlines (WenQuanYi Zen Hei, Droid Sans Fallback)
keeps Type 42.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pandas as pd

from proctovision.core import fileio, i18n
from proctovision.reporting import figures

plt = figures.plt
DPI = 300
COLUMN_MM = {"single": 85.0, "double": 175.0}
MAX_HEIGHT_MM = 230.0  # a journal page's text height
FORMATS = ("pdf", "svg", "png")
PAPER_RC = {
    "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "path",
    "font.size": 7, "axes.titlesize": 8, "axes.labelsize": 7, "xtick.labelsize": 6.5, "ytick.labelsize": 6.5,
    "legend.fontsize": 6.5, "figure.titlesize": 8, "lines.linewidth": 1.2, "axes.linewidth": 0.6,
}


def column_inches(width: str) -> float:
    """The column width in inches, rounded so that the 300 dpi PNG is a whole number of pixels (85 mm: 1004 px)."""
    if width not in COLUMN_MM:
        raise ValueError(f"unknown column width {width!r}: use single or double")
    return round(COLUMN_MM[width] / 25.4 * DPI) / DPI


@lru_cache(maxsize=8)
def has_truetype_outlines(font_name: str) -> bool:
    from fontTools.ttLib import TTFont
    from matplotlib import font_manager

    path = font_manager.findfont(font_manager.FontProperties(family=font_name), fallback_to_default=False)
    with TTFont(path, fontNumber=0, lazy=True) as font:
        return "glyf" in font


def pdf_fonttype(language: str | None) -> int:
    """42 (TrueType embedded) unless the figure's CJK font has CFF outlines, which only Type 3 embeds correctly."""
    if i18n.normalise(language) == "en":
        return 42
    font = figures.cjk_font()
    return 42 if font is None or has_truetype_outlines(font) else 3


def save_figure(figure: plt.Figure, stem: Path, width: str = "single") -> dict[str, Path]:
    """``stem``.pdf, .svg and .png (300 dpi) at the column width, the figure's aspect ratio kept (at most a page
    high); the figure is closed. Returns the paths by format."""
    import warnings

    inches = column_inches(width)
    current_width, current_height = figure.get_size_inches()
    height = min(inches * current_height / current_width, MAX_HEIGHT_MM / 25.4)
    for _attempt in range(4):  # the column is narrower than the screen figure: grow in height until labels fit
        figure.set_size_inches(inches, height)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "tight_layout not applied": handled by growing
            figure.tight_layout()
        box = figure.get_tightbbox(figure.canvas.get_renderer())
        overflow = max(0.0, -box.y0) + max(0.0, box.y1 - height)
        if overflow < 0.01 or height >= MAX_HEIGHT_MM / 25.4:
            break
        height = min(height + overflow + 0.1, MAX_HEIGHT_MM / 25.4)
    stem = Path(stem).with_suffix("")
    written = {}
    for kind in FORMATS:
        written[kind] = fileio.write_with(stem.with_name(f"{stem.name}.{kind}"),
                                          lambda target, kind=kind: figure.savefig(target, format=kind, dpi=DPI))
    plt.close(figure)
    return written


@contextlib.contextmanager
def paper_style(width: str, language: str | None = "en") -> Iterator[None]:
    """Figures drawn inside are sized for a journal column and saved by :func:`save_figure` (``figures.save``
    routes to it), with small print sizes and the right font embedding for ``language``."""
    column_inches(width)
    fonttype = pdf_fonttype(language)
    # ps.fonttype follows: matplotlib 3.11's PDF writer fails on Type 3 CJK glyphs while ps.fonttype is 42
    with plt.rc_context({**PAPER_RC, "pdf.fonttype": fonttype, "ps.fonttype": fonttype}):
        token = figures.SAVER.set(lambda figure, path: save_figure(figure, path, width)["png"])
        try:
            yield
        finally:
            figures.SAVER.reset(token)


def write_table(frame: pd.DataFrame, stem: Path, caption: str = "") -> dict[str, Path]:
    """``stem``.csv, .tex (booktabs rules through pandas' Styler) and .docx (python-docx), cells as given."""
    import docx

    stem = Path(stem).with_suffix("")
    frame = frame.reset_index(drop=True)
    text = frame.astype(object).where(frame.notna(), "-").astype(str)
    written = {"csv": fileio.write_csv(stem.with_name(stem.name + ".csv"), frame)}
    styler = text.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    latex = styler.to_latex(hrules=True, caption=caption.replace("%", r"\%") or None, position="htbp")
    written["tex"] = fileio.write_text(stem.with_name(stem.name + ".tex"), latex)
    document = docx.Document()
    if caption:
        document.add_paragraph(caption)
    table = document.add_table(rows=1, cols=len(text.columns))
    table.style = "Table Grid"
    for cell, name in zip(table.rows[0].cells, text.columns):
        cell.text = str(name)
    for row in text.itertuples(index=False):
        for cell, value in zip(table.add_row().cells, row):
            cell.text = value
    written["docx"] = fileio.write_with(stem.with_name(stem.name + ".docx"), lambda target: document.save(str(target)))
    return written
