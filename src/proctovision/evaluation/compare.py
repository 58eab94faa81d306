"""Models and human readers side by side on the same images, with CIs and paired tests between every two."""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from proctovision import fileio
from proctovision.errors import UserError
from proctovision.evaluation.metrics import compute_metrics
from proctovision.evaluation.readers import read_readers
from proctovision.evaluation.stats import bootstrap_difference, delong_test, mcnemar_test
from proctovision.reporting import figures
from proctovision.runs import read_run

STUDY_METRICS = ("accuracy", "recall", "precision", "f1")
READER_METRICS = {"accuracy", "precision", "recall", "specificity", "f1", "sensitivity", "ppv", "npv",
                  "quadratic_kappa"}


class CompareError(UserError, ValueError):
    """Runs or readers that cannot be compared; the message says why."""


@dataclass
class Participant:
    name: str
    kind: str
    predicted: np.ndarray
    probabilities: np.ndarray | None
    reading_time_s: float | None


def load_model(run_dir: Path, split: str, classes: tuple[str, ...] | None) -> tuple[Participant, pd.DataFrame, tuple]:
    run = read_run(run_dir)
    if classes is not None and run.task.classes != classes:
        raise CompareError(f"{run_dir}: task classes {run.task.classes} differ from {classes}")
    if not run.paths.predictions.is_file() or not run.paths.metrics.is_file():
        raise CompareError(f"{run_dir}: no predictions yet; run `proctovision evaluate {run_dir} --split {split}`")
    metrics = json.loads(run.paths.metrics.read_text())
    if split not in metrics:
        raise CompareError(f"{run_dir}: split {split!r} not evaluated; run `proctovision evaluate` first")
    rows = pd.read_csv(run.paths.predictions, dtype={"path": str, "label": str, "predicted": str, "patient_id": str})
    rows = rows[rows["split"] == split].set_index("path")
    probabilities = rows[[f"prob_{name}" for name in run.task.classes]].to_numpy(float)
    predicted = np.array([run.task.classes.index(label) for label in rows["predicted"]])
    participant = Participant(run_dir.name, "model", predicted, probabilities, metrics[split].get("reading_time_s"))
    return participant, rows, run.task


def compare(
    runs: list[Path], out: Path, readers: Path | None = None, split: str = "test", n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """Write comparison.csv/.md/.json, tests.csv and figures/ to ``out``; returns the JSON payload."""
    if not runs:
        raise CompareError("give at least one run folder")
    first, truth_rows, task = load_model(Path(runs[0]), split, None)
    models = [first] + [load_model(Path(run), split, task.classes)[0] for run in runs[1:]]
    names = _unique([model.name for model in models])
    for model, name in zip(models, names):
        model.name = name
    frames = [load_model(Path(run), split, task.classes)[1] for run in runs]
    common = set(truth_rows.index)
    for frame in frames[1:]:
        common &= set(frame.index)
    reader_frame, reader_times = (read_readers(readers, task.classes) if readers else (None, {}))
    if reader_frame is not None:
        for _, rows in reader_frame.groupby("reader"):
            common &= set(rows["path"])
    paths = sorted(common)
    if not paths:
        raise CompareError("the runs and readers share no image of the split; were they evaluated on the same data?")
    participants = []
    for model, frame in zip(models, frames):
        positions = [frame.index.get_loc(path) for path in paths]
        model.predicted, model.probabilities = model.predicted[positions], model.probabilities[positions]
        participants.append(model)
    if reader_frame is not None:
        for reader, rows in reader_frame.groupby("reader"):
            labels = rows.drop_duplicates("path").set_index("path").loc[paths, "label"]
            predicted = np.array([task.classes.index(label) for label in labels])
            participants.append(Participant(str(reader), "reader", predicted, None, reader_times.get(str(reader))))
    y_true = np.array([task.classes.index(label) for label in truth_rows.loc[paths, "label"]])
    patients = truth_rows.loc[paths, "patient_id"].astype(str).to_numpy()
    table, details = [], {}
    for participant in participants:
        probabilities = participant.probabilities
        if probabilities is None:
            probabilities = np.eye(task.num_classes)[participant.predicted]
        metrics = compute_metrics(
            y_true, probabilities, patients, task.num_classes, task.ordinal, n_resamples=n_resamples, seed=seed,
            y_pred=participant.predicted, class_names=task.classes,
            include=None if participant.kind == "model" else READER_METRICS,
        )
        details[participant.name] = metrics
        row = {"participant": participant.name, "kind": participant.kind, "n_images": len(paths),
               "reading_time_s": participant.reading_time_s,
               "images_per_s": len(paths) / participant.reading_time_s if participant.reading_time_s else None}
        for metric, item in metrics.items():
            row[metric], (row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]) = item["value"], item["ci95"]
        table.append(row)
    tests = pairwise_tests(participants, y_true, patients, task.is_binary, n_resamples, seed)
    out.mkdir(parents=True, exist_ok=True)
    written = write_outputs(out, table, tests, participants, y_true, task, split, len(paths))
    return {"split": split, "n_images": len(paths), "n_patients": int(len(set(patients))), "table": table,
            "tests": tests, "files": written}


def pairwise_tests(
    participants: list[Participant], y_true: np.ndarray, patients: np.ndarray, binary: bool, n_resamples: int,
    seed: int,
) -> list[dict]:
    tests = []
    for first, second in itertools.combinations(participants, 2):
        right_a, right_b = first.predicted == y_true, second.predicted == y_true
        entry = {
            "a": first.name, "b": second.name,
            "mcnemar": mcnemar_test(right_a, right_b),
            "accuracy_difference": bootstrap_difference(
                lambda index: right_a[index].mean(), lambda index: right_b[index].mean(), patients, n_resamples, seed
            ),
            "delong": None,
        }
        if binary and first.probabilities is not None and second.probabilities is not None:
            entry["delong"] = delong_test(y_true, first.probabilities[:, 1], second.probabilities[:, 1])
        tests.append(entry)
    return tests


def write_outputs(
    out: Path, table: list[dict], tests: list[dict], participants: list[Participant], y_true: np.ndarray,
    task: object, split: str, n_images: int,
) -> dict[str, str]:
    frame = pd.DataFrame(table)
    fileio.write_csv(out / "comparison.csv", frame)
    test_rows = [{
        "a": test["a"], "b": test["b"], "accuracy_difference": test["accuracy_difference"]["difference"],
        "difference_ci_low": test["accuracy_difference"]["ci95"][0],
        "difference_ci_high": test["accuracy_difference"]["ci95"][1],
        "mcnemar_p": test["mcnemar"]["p_value"], "mcnemar_exact": test["mcnemar"]["exact"],
        "delong_auc_difference": test["delong"]["difference"] if test["delong"] else None,
        "delong_p": test["delong"]["p_value"] if test["delong"] else None,
    } for test in tests]
    fileio.write_csv(out / "tests.csv", pd.DataFrame(test_rows))
    fileio.write_json(out / "comparison.json", {"split": split, "n_images": n_images, "table": table, "tests": tests})
    fileio.write_text(out / "comparison.md", markdown(table, test_rows, split, n_images))
    figure_dir = out / "figures"
    files = {
        "metrics": str(figures.metric_bars(table, STUDY_METRICS, figure_dir / "metrics.png", f"{split} split")),
        "reading_time": str(figures.reading_time_bars(table, figure_dir / "reading_time.png")),
    }
    if task.is_binary:
        curves = {}
        for participant in participants:
            if participant.probabilities is not None:
                fpr, tpr, _ = roc_curve(y_true, participant.probabilities[:, 1])
                row = next(item for item in table if item["participant"] == participant.name)
                curves[participant.name] = (fpr, tpr, row.get("roc_auc") or float("nan"))
        if curves:
            files["roc"] = str(figures.roc_curves(curves, figure_dir / "roc.png"))
    return files


def markdown(table: list[dict], tests: list[dict], split: str, n_images: int) -> str:
    metrics = [name for name in ("accuracy", "sensitivity", "recall", "specificity", "precision", "f1", "roc_auc",
                                 "quadratic_kappa") if any(name in row for row in table)]
    lines = [f"# Models and readers on the {split} split ({n_images} images)", "",
             "| participant | kind | " + " | ".join(metrics) + " | reading time (s) |",
             "|---|---|" + "---|" * len(metrics) + "---|"]
    for row in table:
        cells = []
        for name in metrics:
            value = row.get(name)
            cells.append("-" if value is None else f"{value:.3f} ({row[f'{name}_ci_low']:.3f}-{row[f'{name}_ci_high']:.3f})")
        time = f"{row['reading_time_s']:.1f}" if row.get("reading_time_s") else "-"
        lines.append(f"| {row['participant']} | {row['kind']} | " + " | ".join(cells) + f" | {time} |")
    lines += ["", "| a | b | accuracy a-b (95% CI) | McNemar p | DeLong p |", "|---|---|---|---|---|"]
    for test in tests:
        delong = "-" if test["delong_p"] is None else f"{test['delong_p']:.4f}"
        lines.append(f"| {test['a']} | {test['b']} | {test['accuracy_difference']:+.3f} "
                     f"({test['difference_ci_low']:+.3f} to {test['difference_ci_high']:+.3f}) | "
                     f"{test['mcnemar_p']:.4f}{' (exact)' if test['mcnemar_exact'] else ''} | {delong} |")
    return "\n".join(lines) + "\n"


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return result
