"""One self-contained HTML report per run (or several runs): every figure embedded, opens with no network."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pandas as pd

from proctovision import __version__, fileio
from proctovision.data.manifest import read_manifest
from proctovision.reporting import figures
from proctovision.runs import RunInfo, read_run

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


def history_figure(run: RunInfo, path: Path) -> Path | None:
    import matplotlib.pyplot as plt

    if not run.paths.history.is_file():
        return None
    history = pd.read_csv(run.paths.history)
    figure, (loss, accuracy) = plt.subplots(1, 2, figsize=(8, 3.2))
    for column, axis in (("loss", loss), ("accuracy", accuracy)):
        for stage in ("train", "val"):
            if f"{stage}_{column}" in history:
                axis.plot(history["epoch"], history[f"{stage}_{column}"], marker=".", label=stage)
        axis.set_xlabel("epoch")
        axis.set_title(column)
        axis.legend()
    return figures.save(figure, path)


def pr_figure(predictions: pd.DataFrame, classes: list[str], split: str, path: Path) -> Path | None:
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    rows = predictions[predictions["split"] == split]
    if rows.empty:
        return None
    figure, axis = plt.subplots(figsize=(4.6, 4.4))
    for index, name in enumerate(classes):
        if len(classes) == 2 and index == 0:
            continue
        truth = (rows["label"] == name).to_numpy()
        if 0 < truth.sum() < len(truth):
            precision, recall, _ = precision_recall_curve(truth, rows[f"prob_{name}"].astype(float))
            axis.plot(recall, precision, label=name)
    axis.set_xlabel("recall (sensitivity)")
    axis.set_ylabel("precision (PPV)")
    axis.set_title(f"Precision-recall, {split} split")
    axis.legend(fontsize=7)
    return figures.save(figure, path)


def cam_gallery(
    run: RunInfo, split: str, folder: Path, limit: int = 24, road_sample: int = 6
) -> tuple[Path | None, str]:
    """Grad-CAM on up to ``limit`` images of the split, wrong cases first; returns the grid and a summary line."""
    from proctovision.evaluation.evaluate import load_module, split_rows
    from proctovision.explain import cases_grid, explain_frame

    rows = split_rows(run, split)
    if run.paths.predictions.is_file():
        predictions = pd.read_csv(run.paths.predictions, dtype=str)
        predictions = predictions[predictions["split"] == split].set_index("path")["predicted"]
        wrong = rows["path"].map(predictions).ne(rows["label"])
        rows = pd.concat([rows[wrong], rows[~wrong]]).head(limit).reset_index(drop=True)
    else:
        rows = rows.head(limit)
    table = explain_frame(load_module(run), run, rows, folder, "gradcam", "predicted", 8, None, road_sample)
    grid = cases_grid(table, folder, run.task.classes, folder / "grid.png")
    scored = table["road"].dropna()
    summary = (f"Grad-CAM on {len(table)} {split} images (wrong cases first); ROAD faithfulness on {len(scored)} "
               f"of them: mean {scored.mean():.3f} (higher: the map marks what the model uses).")
    return grid, summary


def claim_items(run: RunInfo, frame: pd.DataFrame, qc: dict | None, splits: dict, synthetic: bool, cams: bool) -> list:
    config = run.config
    resolved = run.resolved
    sides = frame["split"].value_counts().to_dict() if "split" in frame else {}
    leaks = frame.groupby("patient_id")["split"].nunique().gt(1).sum() if "split" in frame else 0
    test = splits.get("test") or next(iter(splits.values()), None)
    return [
        ("Data source", ("SYNTHETIC demo data generated by ProctoVision; no patient data. " if synthetic else "")
         + f"Split file {config.data.split.name}; {len(frame)} images from {frame['patient_id'].nunique()} patients"
         + (f"; {len(qc.get('excluded', []))} files excluded at ingest with reasons (qc.json)" if qc else "")),
        ("Partitioning", f"Patient-level stratified split: {sides}; patients on more than one side: {leaks}."),
        ("Ground truth", "Labels as given in the manifest (state the reference standard and who labelled)."),
        ("Model", f"{config.model.backbone} ({resolved.get('timm_name')}), mode {config.model.mode}, start weights "
                  f"{resolved.get('weights_source')}, head {config.model.head}."),
        ("Training", f"{config.trainer.epochs} epochs, {config.optim.optimizer} lr {config.optim.lr}, batch "
                     f"{config.data.batch_size}, augmentation {config.data.augmentation} (training split only), "
                     f"seed {config.trainer.seed}; versions {resolved.get('versions')}."),
        ("Metrics with CIs", (f"{test['split']} split: {test['n_images']} images, {test['n_patients']} patients; 95% CIs "
                              f"by patient bootstrap ({test['bootstrap']['resamples']} resamples).") if test else
         "Not evaluated yet: run `proctovision evaluate`."),
        ("Operating point", (f"threshold {test['threshold']['value']:.3f} ({test['threshold']['rule']}, chosen on "
                             f"{test['threshold']['chosen_on']})") if test and test.get("threshold") else
         "argmax over classes"),
        ("Calibration", "Brier score, ECE and reliability diagram reported per split." if test else "-"),
        ("Saliency", "Grad-CAM maps with ROAD faithfulness scores (gallery below)." if cams else "Not computed."),
        ("Failure analysis", "Wrong cases shown first in the Grad-CAM grid; confusion matrix per split." if cams else
         "Confusion matrix per split."),
    ]


def run_section(run_dir: Path, figure_dir: Path, cams: bool) -> RunSection:
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
    )
    history = history_figure(run, figure_dir / "history.png")
    if history:
        section.images["Training curves"] = embed(history)
    predictions = pd.read_csv(run.paths.predictions, dtype={"path": str}) if run.paths.predictions.is_file() else None
    for split in metrics:
        for label, name in (("ROC", f"roc_{split}.png"), ("Confusion matrix", f"confusion_{split}.png"),
                            ("Calibration", f"reliability_{split}.png")):
            if (run.paths.figures / name).is_file():
                section.images[f"{label} ({split})"] = embed(run.paths.figures / name)
        if predictions is not None:
            pr = pr_figure(predictions, section.classes, split, figure_dir / f"pr_{split}.png")
            if pr:
                section.images[f"Precision-recall ({split})"] = embed(pr)
    if cams and metrics:
        split = "test" if "test" in metrics else next(iter(metrics))
        grid, section.cam_summary = cam_gallery(run, split, figure_dir / "cams")
        if grid:
            section.images["Grad-CAM: right and wrong cases"] = embed(grid)
        section.cam_method = "gradcam"
    section.claim = claim_items(run, frame, qc, metrics, synthetic, cams)
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


def build_report(runs: list[Path], out: Path, comparison: Path | None = None, cams: bool = True) -> Path:
    """Render every run (and an optional `compare` folder) into one HTML file at ``out``."""
    work = out.parent / f".{out.stem}_figures"
    sections = [run_section(Path(run), work / Path(run).name, cams) for run in runs]
    compare_block = None
    if comparison and (comparison / "comparison.md").is_file():
        compare_block = {
            "markdown": (comparison / "comparison.md").read_text(encoding="utf-8"),
            "images": {name.stem: embed(name) for name in sorted((comparison / "figures").glob("*.png"))},
        }
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("proctovision", "reporting/templates"), autoescape=True,
    )
    environment.filters["metric_rows"] = metric_rows
    html = environment.get_template("report.html.j2").render(
        sections=sections, comparison=compare_block, version=__version__,
        synthetic=any(section.synthetic for section in sections), headline=HEADLINE_METRICS,
        summary=summary_rows(sections),
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

