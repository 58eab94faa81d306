"""The report's figures and tables for a paper, written into ``paper/`` beside the HTML with a README.md index.

Everything is redrawn from the files the runs, `compare` and `crossval` left (metrics.json with its subgroups,
predictions.csv, history.csv, cams/, ood.json, comparison.json with its "curves", cv_metrics.json,
oof_predictions.csv), in the report's language, through :mod:`paper`.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from proctovision.core import fileio, i18n
from proctovision.reporting import figures, paper, translated
from proctovision.reporting.comparison import curve_figures
from proctovision.reporting.split_figures import fold_roc_figure, forest_plots, write_split_figures

SPLIT_KINDS = {"roc": "ROC curve", "pr": "Precision-recall curve", "confusion": "Confusion matrix",
               "reliability": "Calibration (reliability diagram)", "decision_curve": "Decision curve: net benefit"}

CURVE_KINDS = {"roc": "ROC curves of the models", "pr": "Precision-recall curves of the models",
               "readers_roc": "each reader's operating point (and ROC curve) beside the models' ROC curves"}


class PaperIndex:
    """What has been written, for README.md: (relative stem, description, formats)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.figures: list[tuple[str, str, str]] = []
        self.tables: list[tuple[str, str]] = []
        self.texts: list[tuple[str, str]] = []

    def text(self, written: Path, paragraph: str) -> None:
        self.texts.append((Path(written).relative_to(self.folder).as_posix(), paragraph))

    def figure(self, written: Path | None, description: str, width: str) -> None:
        if written is not None:
            self.figures.append((Path(written).with_suffix("").relative_to(self.folder).as_posix(), description,
                                 width))

    def table(self, frame: pd.DataFrame, stem: Path, caption: str) -> None:
        if frame is not None and len(frame):
            paper.write_table(frame, stem, caption)
            self.tables.append((stem.relative_to(self.folder).as_posix(), caption))

    def write(self, title: str) -> Path:
        lines = [f"# {title}: figures and tables for a paper", "",
                 "Figures: vector PDF (fonts embedded) and SVG (text as paths), and PNG at 300 dpi; single column "
                 "85 mm (1004 px), double column 175 mm (2067 px). Tables: CSV, LaTeX (booktabs: `\\usepackage"
                 "{booktabs}`; CJK text needs XeLaTeX or LuaLaTeX with a CJK font) and Word (.docx).", "",
                 "## Figures", "", "| files | figure | width |", "|---|---|---|"]
        lines += [f"| `{stem}.pdf` `{stem}.svg` `{stem}.png` | {text} | {width} column |"
                  for stem, text, width in self.figures]
        lines += ["", "## Tables", "", "| files | table |", "|---|---|"]
        lines += [f"| `{stem}.csv` `{stem}.tex` `{stem}.docx` | {text} |" for stem, text in self.tables]
        for name, paragraph in self.texts:
            lines += ["", "## Sample size (methods; STARD 2015 item 18, CLAIM)", "", f"`{name}`:", "", paragraph]
        return fileio.write_text(self.folder / "README.md", "\n".join(lines) + "\n")


def safe(name: str) -> str:
    return "".join(character if character.isalnum() or character in "-_." else "_" for character in str(name))


def metric_table(entry: dict, _=str) -> pd.DataFrame:
    rows = []
    for name, item in entry["metrics"].items():
        if item.get("value") is None:
            continue
        low, high = item.get("ci95") or (None, None)
        rows.append({_("metric"): _(name), _("value"): round(item["value"], 3),
                     _("95% CI low"): None if low is None else round(low, 3),
                     _("95% CI high"): None if high is None else round(high, 3), _("unit"): _(item.get("unit", "image"))})
    return pd.DataFrame(rows)


def run_paper(index: PaperIndex, run: object, cams: bool, language: str, label: str) -> None:
    """A run's training curves, per-split figures, Grad-CAM panel and metric tables, in ``paper/<label>/``."""
    _ = i18n.gettext_for(language)
    folder = index.folder / safe(label)
    metrics = json.loads(run.paths.metrics.read_text()) if run.paths.metrics.is_file() else {}
    with paper.paper_style("double", language):
        index.figure(translated.history_figure(run, folder / "training_curves.png", language),
                     f"{run.paths.root.name}: training curves (loss, accuracy)", "double")
    for split, entry in metrics.items():
        with paper.paper_style("single", language):
            drawn = write_split_figures(entry, translated.split_predictions(run, split), run.task.classes, folder,
                                        split, language)
        for kind, path in drawn.items():
            index.figure(path, f"{run.paths.root.name}: {SPLIT_KINDS.get(kind, kind)} ({split} split)", "single")
        if entry.get("subgroups"):
            overall = {name: item["value"] for name, item in entry["metrics"].items()}
            with paper.paper_style("single", language), figures.figure_language(language) as translate:
                drawn = forest_plots(entry["subgroups"], folder / f"subgroups_{safe(split)}", overall=overall,
                                     _=translate)
            for key, path in drawn.items():
                column, metric = key.split(":", 1)
                index.figure(Path(path), f"{run.paths.root.name}: subgroups, {metric} by {column} with 95% CIs "
                                         f"({split} split)", "single")
        index.table(metric_table(entry, _), folder / f"metrics_{safe(split)}",
                    _("{run}: metrics with 95% CIs ({split} split)").format(run=run.paths.root.name, split=_(split)))
    ood = run.paths.root / "ood.json"
    if ood.is_file():
        with paper.paper_style("double", language), figures.figure_language(language) as translate:
            drawn = figures.ood_score_figure(json.loads(ood.read_text(encoding="utf-8")), folder / "ood_scores.png",
                                             translate)
        index.figure(drawn, f"{run.paths.root.name}: out-of-distribution scores per split, with the threshold",
                     "double")
    split = "test" if "test" in metrics else next(iter(metrics), None)
    cam_folder = run.paths.root / "cams" / str(split)
    if cams and split and (cam_folder / "cams.csv").is_file():
        table = pd.read_csv(cam_folder / "cams.csv", dtype={"label": str, "predicted": str})
        with paper.paper_style("double", language), figures.figure_language(language) as translate:
            grid = figures.cases_grid(table, cam_folder, run.task.classes, folder / f"gradcam_{safe(split)}.png",
                                      _=translate)
        index.figure(grid, f"{run.paths.root.name}: Grad-CAM panel, right and wrong cases ({split} split)", "double")


def comparison_paper(index: PaperIndex, folder: Path, name: str, comparison: dict, language: str) -> None:
    """Models and readers per metric (the studies' Fig. 2 and 3), reading time (Fig. 4) and the tables."""
    from proctovision.evaluation.compare import STUDY_METRICS

    _ = i18n.gettext_for(language)
    target = index.folder / safe(name)
    payload = json.loads((folder / "comparison.json").read_text(encoding="utf-8"))
    table = payload.get("table", [])
    with paper.paper_style("double", language), figures.figure_language(language) as translate:
        index.figure(figures.metric_bars(table, STUDY_METRICS, target / "models_and_readers.png",
                                         translate(str(payload.get("split", ""))), translate),
                     f"{name}: accuracy, recall, precision and F1 of models and readers with 95% CIs", "double")
    if any(row.get("reading_time_s") for row in table):
        with paper.paper_style("single", language), figures.figure_language(language) as translate:
            index.figure(figures.reading_time_bars(table, target / "reading_time.png", translate),
                         f"{name}: reading time of models and readers", "single")
    with paper.paper_style("single", language), figures.figure_language(language) as translate:
        drawn = curve_figures(payload.get("curves"), target, translate)
    for kind, path in drawn.items():
        index.figure(path, f"{name}: {CURVE_KINDS[kind]}", "single")
    per_case = (payload.get("reading_times") or {}).get("rows")
    if per_case:
        with paper.paper_style("single", language), figures.figure_language(language) as translate:
            index.figure(figures.reading_time_per_case(per_case, target / "reading_time_per_case.png", translate),
                         f"{name}: " + _("Reading time per case: median and 95% CI per reader and arm, per arm "
                                         "over its readers, and the model's time per image"), "single")
    headers = [_("participant"), _("kind"), *[_(metric) for metric in comparison["metrics"]], _("reading time (s)")]
    rows = [[row["participant"], _(row["kind"]), *row["cells"], row["reading_time"]] for row in comparison["rows"]]
    index.table(pd.DataFrame(rows, columns=headers), target / "comparison",
                _("{name}: models and readers, value (95% CI)").format(name=name))
    if comparison["paired"]:
        paired = pd.DataFrame([{"a": row["a"], "b": row["b"], _("accuracy a-b (95%% CI)") % {}: row["accuracy"],
                                _("McNemar p"): row["mcnemar"] + (" (exact)" if row["exact"] else ""),
                                _("DeLong p"): row["delong"]} for row in comparison["paired"]])
        index.table(paired, target / "paired_tests", _("{name}: paired tests").format(name=name))
    if comparison["difference_metrics"]:
        columns = ["a", "b", *[_("%(metric)s a-b (95%% CI)") % {"metric": _(metric)}
                               for metric in comparison["difference_metrics"]]]
        rows = [[row["a"], row["b"], *row["cells"]] for row in comparison["differences"]]
        index.table(pd.DataFrame(rows, columns=columns), target / "differences",
                    _("{name}: paired bootstrap differences").format(name=name))
    if comparison["mrmc_rows"]:
        mrmc = pd.DataFrame([{_("comparison"): _(str(row.get("design"))) + (f" ({row['condition']})" if row["condition"] else ""),
                              _("figure of merit"): _(str(row.get("fom"))), "a": row["a"], "b": row["b"],
                              _("difference a-b (95%% CI)") % {}: row["difference"], "df": row["df"], "p": row["p"]}
                             for row in comparison["mrmc_rows"]])
        index.table(mrmc, target / "mrmc", _("{name}: multi-reader multi-case analysis (OR-H)").format(name=name))


def crossval_paper(index: PaperIndex, block: dict, language: str) -> None:
    _ = i18n.gettext_for(language)
    target = index.folder / f"crossval_{safe(block['name'])}"
    summary = pd.DataFrame([{_("metric"): _(row["metric"]), _("mean ± SD over folds"): row["mean_sd"],
                             _("min - max"): row["range"], _("pooled out-of-fold (95%% CI)") % {}: row["pooled"]} for row in block["rows"]])
    index.table(summary, target / "summary", _("{name}: {k}-fold cross-validation").format(name=block["name"],
                                                                                           k=block["k"]))
    folds = pd.DataFrame([[row["repeat"], row["fold"], row["n_images"], row["n_patients"], row["threshold"],
                           *row["cells"]] for row in block["folds"]],
                         columns=[_("repeat"), _("fold"), _("images"), _("patients"), _("threshold"),
                                  *[_(name) for name in block["fold_metrics"]]])
    index.table(folds, target / "folds", _("{name}: metrics per fold").format(name=block["name"]))
    if block.get("folder"):
        crossval_figures(index, Path(block["folder"]), target, language)


def crossval_figures(index: PaperIndex, folder: Path, target: Path, language: str) -> None:
    """Per repeat: each fold's ROC with the mean ROC and its band, and the pooled out-of-fold ROC, PR, confusion
    matrix and calibration, redrawn from cv_metrics.json and oof_predictions.csv."""
    result = json.loads((folder / "cv_metrics.json").read_text(encoding="utf-8"))
    for item in result.get("per_repeat", []):
        oof = folder / item["oof_predictions"]
        if not oof.is_file():
            continue
        table = pd.read_csv(oof, dtype={"label": str})
        classes = tuple(item["pooled"].get("classes") or ())
        where = target / (f"repeat_{item['repeat']}" if result.get("repeats", 1) > 1 else "")
        name = folder.name + (f", repeat {item['repeat']}" if result.get("repeats", 1) > 1 else "")
        with paper.paper_style("single", language), figures.figure_language(language) as translate:
            drawn = {"roc_folds": fold_roc_figure(table, classes, where / "roc_folds.png",
                                                  translate("ROC per fold, mean ROC and ±1 SD band"), translate)}
            drawn.update(write_split_figures(item["pooled"], table, classes, where, "oof", language))
        for kind, path in drawn.items():
            text = ("ROC per fold, mean ROC and ±1 SD band" if kind == "roc_folds"
                    else f"pooled out-of-fold {SPLIT_KINDS.get(kind, kind)}")
            index.figure(path, f"{name}: {text}", "single")


def write_paper(folder: Path, runs: list, cams: bool, comparisons: list[tuple[Path, str, dict]],
                extras: list[tuple[str, object]], crossvals: list[dict], title: str, language: str,
                sample_size: str | None = None) -> Path:
    """Every figure and table of the report into ``folder``, and the sample-size paragraph (a methods text, from
    `--plan`) as sample_size.md; returns its README.md."""
    index = PaperIndex(folder)
    if sample_size:
        index.text(fileio.write_text(folder / "sample_size.md", sample_size + "\n"), sample_size)
    names = [run.paths.root.name for run in runs]
    for run in runs:  # runs of one name (a grid's run under each task) are told apart by their task folder
        label = run.paths.root.name
        if names.count(label) > 1:
            label = f"{run.paths.root.parent.parent.name}_{label}"
        run_paper(index, run, cams, language, label)
    for source, name, comparison in comparisons:
        comparison_paper(index, source, name, comparison, language)
    for block in crossvals:
        crossval_paper(index, block, language)
    _ = i18n.gettext_for(language)
    for name, table in extras:
        if isinstance(table, pd.DataFrame):
            index.table(table, folder / safe(name) / "study_table",
                        _("{task}: measured (95% CI) beside published").format(task=_(name)))
    for extra in sorted(folder.glob("*/roc_all_backbones.pdf")):  # drawn by `reproduce` before the report
        index.figure(extra.with_suffix(".png"), f"{extra.parent.name}: ROC curves of all backbones (test split)",
                     "single")
    return index.write(title)
