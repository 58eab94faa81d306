"""The surveillance report's pages: HTML from a Jinja2 template and a PDF through matplotlib's PdfPages (a text
page, then the monitoring figures), both in the report's language."""
from __future__ import annotations

import textwrap
from pathlib import Path

import jinja2
import matplotlib.pyplot as plt

from proctovision.core import i18n
from proctovision.reporting import monitoring_figures


def figures(data: dict, folder: Path, language: str | None, pdf_path: Path, document: dict, period: dict,
            methods: list[str]) -> dict[str, Path]:
    """The figures as PNG, and the report's PDF: a text page, then the same figures."""
    width = 55 if i18n.normalise(language) == "zh-CN" else 110

    def text_page(_: object) -> plt.Figure:
        page = plt.figure(figsize=(8.27, 11.69))
        page.text(0.06, 0.97, "\n".join(_lines(document, period, methods, _, width)), va="top", ha="left", fontsize=8)
        return page

    return monitoring_figures.write_all(data, folder, language, pdf_path, text_page)


def html(document: dict, period: dict, methods: list[str], figure_paths: dict[str, str], language: str | None) -> str:
    environment = i18n.environment(jinja2.PackageLoader("proctovision", "reporting/templates"), language)
    return environment.get_template("monitoring_report.html.j2").render(
        status=document, period=period, methods=methods, figures=figure_paths,
        ci_label=i18n.gettext_for(language)("95% CI"))


def _interval(entry: dict) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    return f"{entry['value']:.3f} ({entry['ci'][0]:.3f}-{entry['ci'][1]:.3f})"


def _lines(document: dict, period: dict, methods: list[str], _: object, width: int) -> list[str]:
    """The PDF's text page, line by line."""
    lines = [_("Post-market surveillance report"), "",
             _("Period: {since} to {until}").format(since=period["since"] or "-", until=period["until"] or "-"),
             _("{n} answers recorded").format(n=document["predictions"]), "", _("Alarms")]
    for alarm in document["alarms"] + document["acknowledged"]:
        state = (_("acknowledged {when}: {note}").format(when=alarm["acknowledged_at"], note=alarm["note"])
                 if alarm["acknowledged_at"] else _("open"))
        lines.append(f"  {_(alarm['signal'])}: {alarm['first_at']} ({alarm['after_predictions']}); {state}")
    if not document["alarms"] + document["acknowledged"]:
        lines.append("  " + _("No open alarm."))
    lines += ["", _("Performance") + f" ({_('confirmed cases')} / {_('validation')} / {_('estimated (CBPE)')})"]
    for name in ("accuracy", "sensitivity", "specificity"):
        seen = document["confirmed"].get(name) or {}
        reference = (document["validation"]["performance"] or {}).get(name) or {}
        estimate = document["estimated"].get(name)
        lines.append(f"  {_(name)}: {_interval(seen)} / {_interval(reference)} / "
                     + (f"{estimate:.3f}" if estimate is not None else "-"))
    override = (document.get("team") or {}).get("override") or {}
    if override.get("n"):
        lines += ["", _("Clinicians and the model"), f"  {_('override rate, all clinicians')}: {_interval(override)}"]
    versions = document.get("versions") or []
    if versions:
        lines += ["", _("Model versions")] + [f"  {v['sha256'][:12]} {v['method']} {v['created_at'][:10]} "
                                               f"{v['approved_by'] or ''}" for v in versions]
    lines += ["", _("Methods")]
    for sentence in methods:
        lines += textwrap.wrap(sentence, width)
    return lines
