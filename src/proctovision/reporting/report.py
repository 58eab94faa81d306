"""One self-contained HTML report per run (or several runs): every figure embedded, opens with no network."""
from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pandas as pd

from proctovision import __version__

from proctovision.core import fileio, i18n
from proctovision.data.manifest import read_manifest
from proctovision.core.i18n import N_
from proctovision.reporting import figures, translated
from proctovision.reporting.split_figures import write_split_figures
from proctovision.reporting.comparison import read_comparison
from proctovision.artefacts.runs import RunInfo, read_run

HEADLINE_METRICS = ("accuracy", "sensitivity", "specificity", "precision", "recall", "f1", "roc_auc",
                    "average_precision", "quadratic_kappa", "brier", "ece")


@dataclass
class RunSection:
    name: str
    task: str
    classes: list[str]
    config_yaml: str
    data_table: list[dict]
    qc: dict | None
    splits: dict[str, dict]
    images: dict[str, str] = field(default_factory=dict)
    claim: list[tuple[str, str]] = field(default_factory=list)
    synthetic: bool = False
    cam_method: str = ""
    cam_summary: str = ""
    class_labels: list[str] = field(default_factory=list)


def embed(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def find_upwards(start: Path, name: str, levels: int = 3) -> Path | None:
    for folder in [start, *list(start.parents)[:levels]]:
        if (folder / name).exists():
            return folder / name
    return None


def is_synthetic(frame: pd.DataFrame, split_path: Path) -> bool:
    marked = "synthetic" in frame.columns and frame["synthetic"].astype(str).str.lower().eq("yes").any()
    return bool(marked or find_upwards(split_path.parent, ".proctovision-demo"))


def data_table(frame: pd.DataFrame) -> list[dict]:
    column = "split" if "split" in frame.columns else "fold"
    table = frame.groupby([column, "label"]).agg(images=("path", "size"), patients=("patient_id", "nunique"))
    return [{"split": str(s), "label": label, **values} for (s, label), values in table.to_dict("index").items()]


def history_figure(run: RunInfo, path: Path, language: str = "en") -> Path | None:
    import matplotlib.pyplot as plt

    if not run.paths.history.is_file():
        return None
    history = pd.read_csv(run.paths.history)
    with figures.figure_language(language) as _:
        figure, (loss, accuracy) = plt.subplots(1, 2, figsize=(8, 3.2))
        for column, axis in ((N_("loss"), loss), (N_("accuracy"), accuracy)):
            for stage in ("train", "val"):
                if f"{stage}_{column}" in history:
                    axis.plot(history["epoch"], history[f"{stage}_{column}"], marker=".", label=_(stage))
            axis.set_xlabel(_("epoch"))
            axis.set_title(_(column))
            axis.legend()
        return figures.save(figure, path)


def cam_gallery(run: RunInfo, split: str, _=str) -> tuple[Path | None, str]:
    """The Grad-CAM gallery that evaluate/explain wrote into the run folder (cams/<split>/): the grid and a line.

    The report draws nothing itself and never loads a checkpoint; it embeds what is there.
    """
    folder = run.paths.root / "cams" / split
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        return None, _("No Grad-CAM gallery in this run folder for the {split} split: run `proctovision evaluate "
                       "{run} --split {split} --cams`.").format(split=split, run=run.paths.root)
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    grid = folder / summary["grid"] if summary.get("grid") else None
    text = _("{method} on {n} images of the {split} split, wrong cases first ({wrong} wrong at the operating "
             "threshold).").format(method=summary["method"], n=summary["n_images"], split=_(split),
                                   wrong=summary["n_wrong"])
    if summary.get("road_mean") is not None:
        text += " " + _("ROAD faithfulness on {scored} of them: mean {mean:.3f} (higher: the map marks what the "
                        "model uses).").format(scored=summary["road_scored"], mean=summary["road_mean"])
    return (grid if grid and grid.is_file() else None), text


def claim_items(
    run: RunInfo, frame: pd.DataFrame, qc: dict | None, splits: dict, synthetic: bool, cams: bool, _=str,
) -> list:
    """The CLAIM items this run can fill, worded in the report's language (``_`` is its gettext)."""
    term = _  # names that arrive as data, listed in i18n.TERMS
    config = run.config
    resolved = run.resolved
    sides = frame["split"].value_counts().to_dict() if "split" in frame else {}
    sides = ", ".join(f"{term(str(name))} {count}" for name, count in sides.items())
    leaks = frame.groupby("patient_id")["split"].nunique().gt(1).sum() if "split" in frame else 0
    test = splits.get("test") or next(iter(splits.values()), None)
    source = _("Split file {file}; {images} images from {patients} patients").format(
        file=config.data.split.name, images=len(frame), patients=frame["patient_id"].nunique())
    if synthetic:
        source = _("SYNTHETIC demo data generated by ProctoVision; no patient data.") + " " + source
    if qc:
        source += _("; {count} files excluded at ingest with reasons (qc.json)").format(
            count=len(qc.get("excluded", [])))
    metrics = _("Not evaluated yet: run `proctovision evaluate`.")
    if test:
        metrics = _("{split} split: {images} images, {patients} patients; 95% CIs by patient bootstrap "
                    "({resamples} resamples).").format(split=term(test["split"]), images=test["n_images"],
                                                       patients=test["n_patients"],
                                                       resamples=test["bootstrap"]["resamples"])
    operating = _("argmax over classes")
    if test and test.get("threshold"):
        threshold = test["threshold"]
        operating = _("threshold {value:.3f} ({rule}, chosen on {split})").format(
            value=threshold["value"], rule=term(str(threshold["rule"])), split=term(str(threshold["chosen_on"])))
    return [
        (_("Data source"), source),
        (_("Partitioning"), _("Patient-level stratified split: {sides}; patients on more than one side: {leaks}.")
         .format(sides=sides, leaks=leaks)),
        (_("Ground truth"), _("Labels as given in the manifest (state the reference standard and who labelled).")),
        (_("Model"), _("{backbone} ({timm}), mode {mode}, start weights {weights}, head {head}.").format(
            backbone=config.model.backbone, timm=resolved.get("timm_name"), mode=config.model.mode,
            weights=resolved.get("weights_source"), head=config.model.head)),
        (_("Training"), _("{epochs} epochs, {optimizer} lr {lr}, batch {batch}, augmentation {augmentation} "
                          "(training split only), seed {seed}; versions {versions}.").format(
            epochs=config.trainer.epochs, optimizer=config.optim.optimizer, lr=config.optim.lr,
            batch=config.data.batch_size, augmentation=config.data.augmentation, seed=config.trainer.seed,
            versions=resolved.get("versions"))),
        (_("Metrics with CIs"), metrics),
        (_("Operating point"), operating),
        (_("Calibration"), _("Brier score, ECE and reliability diagram reported per split.") if test else "-"),
        (_("Saliency"), _("Grad-CAM maps with ROAD faithfulness scores (gallery below).") if cams else
         _("Not computed.")),
        (_("Failure analysis"), _("Wrong cases shown first in the Grad-CAM grid; confusion matrix per split.") if cams
         else _("Confusion matrix per split.")),
    ]


FIGURE_CAPTIONS = (("ROC", N_("ROC curve ({split})"), "roc_{split}.png"),
                   ("Precision-recall", N_("Precision-recall ({split})"), "pr_{split}.png"),
                   ("Confusion matrix", N_("Confusion matrix ({split})"), "confusion_{split}.png"),
                   ("Calibration", N_("Calibration ({split})"), "reliability_{split}.png"),
                   ("Decision curve: net benefit", N_("Decision curve: net benefit ({split})"),
                    "decision_curve_{split}.png"))


def run_section(run_dir: Path, figure_dir: Path, cams: bool, language: str = "en") -> RunSection:
    _ = i18n.gettext_for(language)
    run = read_run(run_dir)
    frame = read_manifest(run.config.data.split)
    qc_path = find_upwards(Path(run.config.data.split).parent, "qc.json", levels=1)
    qc = json.loads(qc_path.read_text()) if qc_path else None
    metrics = json.loads(run.paths.metrics.read_text()) if run.paths.metrics.is_file() else {}
    synthetic = is_synthetic(frame, Path(run.config.data.split))
    config_text = run.paths.config.read_text(encoding="utf-8")
    section = RunSection(
        name=run_dir.name, task=run.task.name, classes=list(run.task.classes), config_yaml=config_text,
        data_table=data_table(frame), qc=qc, splits=metrics, synthetic=synthetic,
        class_labels=[_(name) for name in run.task.classes],
    )
    history = history_figure(run, figure_dir / "history.png", language)
    if history:
        section.images[_("Training curves")] = embed(history)
    for split in metrics:
        redrawn = {} if language == "en" else {path.name: path for path in write_split_figures(
            metrics[split], translated.split_predictions(run, split), run.task.classes, figure_dir / "figures",
            split, language).values()}
        for english, caption, name in FIGURE_CAPTIONS:
            path = redrawn.get(name.format(split=split), run.paths.figures / name.format(split=split))
            if path.is_file():
                label = f"{english} ({split})" if language == "en" else _(caption).format(split=_(split))
                section.images[label] = embed(path)
        for key, name in (metrics[split].get("subgroup_figures") or {}).items():
            path = run.paths.figures / f"subgroups_{split}" / name
            if path.is_file():
                column, metric = key.split(":", 1)
                caption = _("Subgroups: {metric} by {column} ({split})")
                section.images[caption.format(metric=_(metric), column=column, split=_(split))] = embed(path)
    grid = None
    if cams and metrics:
        split = "test" if "test" in metrics else next(iter(metrics))
        grid, section.cam_summary = cam_gallery(run, split, _)
        if grid:
            section.images[_("Grad-CAM: right and wrong cases")] = embed(grid)
            section.cam_method = "gradcam"
    if (run.paths.figures / "ood_scores.png").is_file():
        section.images[_("Out-of-distribution scores (validation, test)")] = embed(run.paths.figures / "ood_scores.png")
    section.claim = claim_items(run, frame, qc, metrics, synthetic, grid is not None, _)
    return section


def metric_rows(split: dict) -> list[dict]:
    rows = []
    for name, item in split["metrics"].items():
        if item["value"] is None:
            continue
        low, high = item["ci95"]
        rows.append({"name": name, "value": f"{item['value']:.3f}",
                     "ci": "-" if low is None else f"{low:.3f} - {high:.3f}", "unit": item.get("unit", "image")})
    return rows


COMPARISON_CAPTIONS = {"metrics": N_("Accuracy, recall, precision and F1 of models and readers"),
                       "reading_time": N_("Reading time"), "roc": N_("ROC curves"),
                       "pr": N_("Precision-recall curves"), "roc_all": N_("ROC of every run"),
                       "readers_roc": N_("Each reader's operating point beside the model's ROC curve")}


def comparison_sections(folders: list[Path], out: Path, work: Path, language: str) -> list[dict]:
    """Each `compare` folder's tables and figures, figures embedded and captioned in the report's language.

    The bar charts are drawn again from comparison.json in the report's language; curves are embedded as drawn.
    """
    _ = i18n.gettext_for(language)
    comparisons = []
    for index, folder in enumerate(folders):
        title = folder.parent.name if folder.parent != out.parent else ""
        comparison = read_comparison(folder, title)
        if not comparison:
            continue
        paths = comparison.pop("image_paths")
        if language != "en":
            paths.update(translated.comparison_bars(folder, work / f"comparison_{index}", language))
        comparison["images"] = {_(COMPARISON_CAPTIONS.get(name, name)): embed(path) for name, path in paths.items()}
        comparisons.append(comparison)
    return comparisons


STUDY_TERMS = (N_("measured"), N_("published"), N_("paper"), N_("{task}: measured (95% CI) beside published"),
               N_("Reproduction: {study}"))


def study_tables(extras: list[tuple[str, object]], _=str) -> list[dict]:
    """A study's measured-beside-published tables (task, DataFrame) as HTML tables in the report's language; a
    (heading, text) pair stays preformatted text."""
    tables = []
    for name, table in extras:
        if isinstance(table, str):
            tables.append({"heading": name, "text": table})
            continue
        headers = []
        for column in table.columns:
            metric, _space, kind = str(column).rpartition(" ")
            headers.append(f"{_(metric)} {_(kind)}" if kind in ("measured", "published") else _(str(column)))
        rows = [[_(str(cell)) if column == "kind" else str(cell) for column, cell in zip(table.columns, row)]
                for row in table.itertuples(index=False)]
        tables.append({"heading": _("{task}: measured (95% CI) beside published").format(task=_(name)),
                       "headers": headers, "rows": rows})
    return tables


def build_report(
    runs: list[Path], out: Path, comparison: Path | list[Path] | None = None, cams: bool = True,
    extras: list[tuple[str, object]] | None = None, title: str | None = None, lang: str | None = None,
    crossval: list[Path] | None = None,
) -> Path:
    """Render every run, optional `compare` folders and extra tables into one HTML file at ``out``;
    ``crossval`` folders (from `proctovision crossval`) add a cross-validation section each.

    ``lang`` (``en``, ``zh-CN``) picks the catalogue; none given means the installation's default language.
    """
    language = i18n.resolve(lang)
    _ = i18n.gettext_for(language)
    work = out.parent / f".{out.stem}_figures"
    sections = [run_section(Path(run), work / f"{index}_{Path(run).name}", cams, language)
                for index, run in enumerate(runs)]
    folders = [comparison] if isinstance(comparison, Path) else list(comparison or [])
    environment = i18n.environment(jinja2.PackageLoader("proctovision", "reporting/templates"), language)
    environment.filters["metric_rows"] = metric_rows
    html = environment.get_template("report.html.j2").render(
        sections=sections, comparisons=comparison_sections([Path(f) for f in folders], out, work, language),
        version=__version__, title=title or _("ProctoVision report"), extras=study_tables(extras or [], _),
        synthetic=any(section.synthetic for section in sections), headline=HEADLINE_METRICS,
        summary=summary_rows(sections), generated=i18n.format_timestamp(dt.datetime.now(), language),
        validation=[block for block in (validation_block(section) for section in sections) if block],
        crossvalidations=[crossval_block(Path(folder)) for folder in crossval or []],
    )
    fileio.write_text(out, html)
    return out


def summary_rows(sections: list[RunSection]) -> list[dict]:
    rows = []
    for section in sections:
        test = section.splits.get("test")
        if test:
            rows.append({"run": section.name, **{k: test["metrics"].get(k, {}).get("value") for k in HEADLINE_METRICS}})
    return rows



INTERNAL_SPLITS = ("train", "val", "test")


def interval(item: dict | None) -> str:
    if not item or item.get("value") is None:
        return "-"
    low, high = item.get("ci95") or (None, None)
    return f"{item['value']:.3f}" + ("" if low is None else f" ({low:.3f}-{high:.3f})")


def validation_block(section: RunSection) -> dict | None:
    """Internal test beside every external data set the run was evaluated on (evaluate --data --name)."""
    external = [name for name, entry in section.splits.items() if name not in INTERNAL_SPLITS and entry.get("external")]
    if not external:
        return None
    names = (["test"] if "test" in section.splits else []) + external
    columns = [{"name": name, "kind": "external" if name in external else "internal",
                "n_images": section.splits[name]["n_images"], "n_patients": section.splits[name]["n_patients"]}
               for name in names]
    metrics = [name for name in HEADLINE_METRICS if any(name in section.splits[split]["metrics"] for split in names)]
    rows = [{"metric": metric, "cells": [interval(section.splits[split]["metrics"].get(metric)) for split in names]}
            for metric in metrics]
    return {"run": section.name, "columns": columns, "rows": rows}


def crossval_block(folder: Path) -> dict:
    """cv_metrics.json of a `crossval` folder as tables, with its fold ROC and pooled figures embedded."""
    result = json.loads((folder / "cv_metrics.json").read_text(encoding="utf-8"))
    pooled = result.get("pooled")
    metrics = [name for name in HEADLINE_METRICS if name in result["mean_sd"]]
    rows = []
    for name in metrics:
        stats = result["mean_sd"][name]
        sd = "" if stats["sd"] is None else f" ± {stats['sd']:.3f}"
        rows.append({"metric": name, "mean_sd": f"{stats['mean']:.3f}{sd}",
                     "range": f"{stats['min']:.3f} - {stats['max']:.3f}",
                     "pooled": interval(pooled["metrics"].get(name)) if pooled else ""})
    fold_metrics = [name for name in ("accuracy", "sensitivity", "specificity", "roc_auc", "quadratic_kappa")
                    if name in result["mean_sd"]]
    folds = [{"repeat": fold["repeat"], "fold": fold["fold"], "n_images": fold["n_images"],
              "n_patients": fold["n_patients"],
              "threshold": "-" if not fold.get("threshold") else f"{fold['threshold']['value']:.3f}",
              "cells": [interval(fold["metrics"].get(name)) for name in fold_metrics]} for fold in result["folds"]]
    images = []
    for item in result["per_repeat"]:
        for key, caption in (("roc_folds", N_("ROC per fold, mean ROC and ±1 SD band")),
                             ("roc", N_("Pooled out-of-fold ROC")),
                             ("confusion", N_("Pooled out-of-fold confusion matrix")),
                             ("reliability", N_("Pooled out-of-fold calibration"))):
            if key in item["figures"] and (folder / item["figures"][key]).is_file():
                images.append({"caption": caption, "repeat": item["repeat"] if result["repeats"] > 1 else None,
                               "source": embed(folder / item["figures"][key])})
    return {"name": folder.name, "k": result["k"], "repeats": result["repeats"], "validation": result["validation"],
            "pooled": pooled, "rows": rows, "fold_metrics": fold_metrics, "folds": folds, "images": images}
