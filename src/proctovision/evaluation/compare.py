"""Models and human readers side by side on the same images, with CIs and paired tests between every two."""
from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.core.errors import UserError
from proctovision.evaluation.metrics import auc_by_ranks, compute_metrics, metric_values
from proctovision.core.decision import decide
from proctovision.evaluation import reader_study
from proctovision.evaluation import reading_times
from proctovision.evaluation.readers import match_cases, no_match_example, participant_name, read_readers, written_bare
from proctovision.evaluation.score import classes_of, read_predictions, task_for
from proctovision.evaluation.stats import bootstrap_difference, delong_test, mcnemar_test
from proctovision.artefacts.runs import read_run
from proctovision.core.tables import frame_keys, key_paths, markdown_table, read_table
from proctovision.core.tasks import BUILTIN_TASKS, Task

STUDY_METRICS = ("accuracy", "recall", "precision", "f1")
READER_METRICS = {"accuracy", "precision", "recall", "specificity", "f1", "sensitivity", "ppv", "npv",
                  "quadratic_kappa"}
SCORE_METRICS = {"roc_auc", "average_precision"}  # what a reader's scores (binary task) add to their labels


class CompareError(UserError, ValueError):
    """Runs or readers that cannot be compared; the message says why."""


@dataclass
class Participant:
    name: str
    kind: str
    predicted: np.ndarray
    probabilities: np.ndarray | None
    reading_time_s: float | None
    scores: np.ndarray | None = None
    condition: str = ""
    per_image_s: float | None = None  # models: the evaluation's reading time over its images


def load_model(source: Path, split: str, truth: Path | None = None) -> tuple[Participant, pd.DataFrame, Task]:
    """A model participant from a run folder (its predictions.csv) or from any predictions CSV file.

    Rows are indexed by one key, the absolute path and the frame, so readers, models and truth pair up per
    image and per frame of multi-frame DICOM, wherever each file's relative paths started from.
    """
    source = Path(source)
    reading_time = n_evaluated = None
    if source.is_dir():
        run = read_run(source)
        if not run.paths.predictions.is_file() or not run.paths.metrics.is_file():
            raise CompareError(f"{source}: no predictions yet; run `proctovision evaluate {source} --split {split}`")
        metrics = json.loads(run.paths.metrics.read_text())
        if split not in metrics:
            raise CompareError(f"{source}: split {split!r} not evaluated; run `proctovision evaluate` first")
        reading_time = metrics[split].get("reading_time_s")
        n_evaluated = metrics[split].get("n_images")
        table = read_predictions(run.paths.predictions, truth)
        base = Path(truth).resolve().parent if truth else Path(run.config.data.split).resolve().parent
        task = run.task
    elif source.is_file():
        table = read_predictions(source, truth)
        base = Path(truth or source).resolve().parent
        task = task_for(classes_of(table, source))
    else:
        raise CompareError(f"{source}: neither a run folder nor a predictions CSV file")
    if "split" in table.columns and (table["split"].astype(str) == split).any():
        table = table[table["split"].astype(str) == split]
    table = table.assign(_key=image_keys(table, base)).drop_duplicates("_key").set_index("_key")
    probabilities = table[[f"prob_{name}" for name in task.classes]].to_numpy(float)
    if "predicted" in table.columns:
        predicted = np.array([task.classes.index(label) for label in table["predicted"].astype(str)])
    else:
        predicted = decide(probabilities, 0.5 if task.is_binary else None)
    name = source.name if source.is_dir() else source.stem
    per_image = reading_time / n_evaluated if reading_time and n_evaluated else None
    return Participant(name, "model", predicted, probabilities, reading_time, per_image_s=per_image), table, task


def task_of_labels(labels: set[str], source: Path) -> Task:
    """The built-in task whose classes are exactly these labels: the class order readers alone cannot give."""
    for known in BUILTIN_TASKS.values():
        if set(known.classes) == labels:
            return known
    raise CompareError(f"{source}: labels {sorted(labels)} are not the classes of a built-in task; give --task "
                       "(a task name or YAML) so the class order, and the positive class, are known")


def image_keys(table: pd.DataFrame, base: Path) -> list[str]:
    return [f"{path}|{frame}" for path, frame in zip(key_paths(table["path"], base), frame_keys(table))]


def read_truth(truth: Path, split: str, task: Task | None = None) -> tuple[pd.DataFrame, Task]:
    """The reference labels indexed by image key (the split's rows where it has them), and the task (from the
    labels when not given). ``compare`` and ``plan reader-study --pilot`` read the truth through this."""
    reference = read_table(truth, ("path", "label"), CompareError)
    reference = reference.assign(_key=image_keys(reference, Path(truth).resolve().parent)).set_index("_key")
    if "split" in reference.columns and (reference["split"] == split).any():
        reference = reference[reference["split"] == split]
    if task is None:
        task = task_of_labels(set(reference["label"].astype(str).str.strip()), truth)
    return reference, task


def read_reader_sheet(readers: Path, classes: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, float]]:
    """readers.csv keyed (``_key``) as the truth is, and reading times: the readers of ``compare`` and
    ``plan reader-study --pilot``."""
    reader_frame, reader_times = read_readers(readers, classes)
    return reader_frame.assign(_key=[f"{p}|{f}" for p, f in zip(reader_frame["path"], reader_frame["frame"])]), \
        reader_times


def shared_images(reference: pd.DataFrame, frames: list[pd.DataFrame], reader_frame: pd.DataFrame | None,
                  ) -> list[str]:
    """Image keys the truth, every model and every reader (per condition) share, sorted."""
    common = set(reference.index)
    for frame in frames:
        common &= set(frame.index)
    if reader_frame is not None:
        for _, rows in reader_frame.groupby(["reader", "condition"]):
            common &= set(rows["_key"])
    return sorted(common)


def compare_participants(
    runs: list[Path], readers: Path | None = None, split: str = "test", n_resamples: int = 1000,
    seed: int = 0, truth: Path | None = None, mrmc_covariance: str = "jackknife", simulated_readers: bool = False,
    task: Task | None = None,
) -> tuple[dict, list[Participant], np.ndarray, Task]:
    """Models and readers scored on the images they share, with pairwise tests and MRMC: the JSON payload of
    ``compare``, and what its figures need (participants, truth, task).

    ``runs`` are run folders or predictions CSV files; ``truth`` a manifest with the reference labels, needed
    when no model participant carries them (readers only, or predictions without labels). With two or more
    readers, an OR-H MRMC analysis (``mrmc_covariance``: jackknife or bootstrap) goes under "mrmc". Readers
    alone (conditions such as unaided and aided, no model) take their classes from ``task`` or, failing that,
    from the built-in task whose classes the truth's labels are.
    """
    if not runs and (truth is None or readers is None):
        raise CompareError("give at least one run folder or predictions file, or --readers with --truth")
    loaded = [load_model(Path(run), split, truth) for run in runs]
    task = loaded[0][2] if loaded else task
    if truth is not None:
        reference, task = read_truth(truth, split, task)
    else:
        reference = next((frame for _, frame, _ in loaded if "label" in frame.columns), None)
        if reference is None:
            raise CompareError("no participant carries labels: give --truth MANIFEST.csv")
    for participant, _, other in loaded[1:]:
        if tuple(other.classes) != tuple(task.classes):
            raise CompareError(f"{participant.name}: task classes {other.classes} differ from {task.classes}")
    models = [participant for participant, _, _ in loaded]
    for model, name in zip(models, _unique([model.name for model in models])):
        model.name = name
    frames = [frame for _, frame, _ in loaded]
    truth_rows = reference
    reader_frame, reader_times = (read_reader_sheet(readers, task.classes) if readers else (None, {}))
    keys, matched_by = match_sheets(truth, truth_rows, models, frames, readers, reader_frame)
    paths = shared_images(truth_rows, frames, reader_frame)
    missing = _missing_images(truth_rows.index, [model.name for model in models], frames, reader_frame)
    if not paths:
        raise CompareError("the runs and readers share no image of the split (for example, "
                           f"{no_match_example(keys)}); were they evaluated on the same data?")
    participants = []
    for model, frame in zip(models, frames):
        positions = [frame.index.get_loc(path) for path in paths]
        model.predicted, model.probabilities = model.predicted[positions], model.probabilities[positions]
        participants.append(model)
    if reader_frame is not None:
        for (reader, condition), rows in reader_frame.groupby(["reader", "condition"]):
            own = rows.set_index("_key").loc[paths]
            predicted = np.array([task.classes.index(label) for label in own["label"]])
            name = participant_name(str(reader), str(condition))
            scores = own["score"].to_numpy(float)
            kind = "simulated reader" if rows["simulated"].any() else "reader"
            participants.append(Participant(name, kind, predicted, None, reader_times.get(name),
                                            scores if np.isfinite(scores).all() else None, str(condition)))
    y_true = np.array([task.classes.index(str(label).strip()) for label in truth_rows.loc[paths, "label"]])
    patients = (truth_rows.loc[paths, "patient_id"].astype(str).to_numpy() if "patient_id" in truth_rows.columns
                else np.array(paths))
    table, details = [], {}
    for participant in participants:
        probabilities, include = participant.probabilities, None if participant.kind == "model" else READER_METRICS
        if probabilities is None and participant.scores is not None and task.is_binary:
            # a reader's confidence scores rank the images: AUC and average precision beside the label metrics
            probabilities = np.column_stack([-participant.scores, participant.scores])
            include = READER_METRICS | SCORE_METRICS
        elif probabilities is None:
            probabilities = np.eye(task.num_classes)[participant.predicted]
        metrics = compute_metrics(
            y_true, probabilities, patients, task.num_classes, task.ordinal, n_resamples=n_resamples, seed=seed,
            y_pred=participant.predicted, class_names=task.classes, include=include,
        )
        details[participant.name] = metrics
        row = {"participant": participant.name, "kind": participant.kind, "n_images": len(paths),
               "reading_time_s": participant.reading_time_s,
               "images_per_s": len(paths) / participant.reading_time_s if participant.reading_time_s else None}
        for metric, item in metrics.items():
            row[metric], (row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]) = item["value"], item["ci95"]
        table.append(row)
    tests = pairwise_tests(participants, y_true, patients, task.is_binary, n_resamples, seed, task.classes)
    mrmc = None
    if reader_frame is not None:
        simulated = simulated_readers or bool(reader_frame["simulated"].any())
        mrmc = reader_study.analyse(reader_frame.assign(path=reader_frame["_key"]), paths, y_true, patients,
                                    {model.name: (model.predicted, model.probabilities) for model in models},
                                    task.classes, mrmc_covariance, max(n_resamples, 200), seed, simulated)
    payload = {"split": split, "n_images": len(paths), "n_patients": int(len(set(patients))), "table": table,
               "tests": tests, "missing": missing, "mrmc": mrmc, "reading_times": None, "matched_by": matched_by}
    times = reading_times.case_times(readers) if readers else None
    if times is not None and len(times):
        payload["reading_times"] = reading_times.summarise(
            times, [(model.name, model.per_image_s) for model in models], max(n_resamples, 200), seed)
    return payload, participants, y_true, task


def match_sheets(truth: Path | None, truth_rows: pd.DataFrame, models: list[Participant], frames: list[pd.DataFrame],
             readers: Path | None, reader_frame: pd.DataFrame | None) -> tuple[dict[str, list[str]], str | None]:
    """Every sheet's rows keyed so that the same case meets itself (see ``readers.match_cases``); the sheets are
    re-keyed in place when their cases meet by file name only. Returns the keys by sheet and the note."""
    sheets: dict[str, tuple[pd.DataFrame, bool]] = {}
    if truth is not None:
        sheets[Path(truth).name] = (truth_rows, written_bare(truth_rows["path"]))
    for model, frame in zip(models, frames):
        sheets[model.name if model.name not in sheets else f"{model.name} (predictions)"] = (
            frame, written_bare(frame["path"]))
    if reader_frame is not None:  # its paths are absolute by now: bare ids are those that landed in its own folder
        folder = os.path.abspath(Path(readers).parent)
        sheets[Path(readers).name] = (reader_frame, all(os.path.dirname(path) == folder for path in reader_frame["path"]))
    keyed = {name: (list(frame["_key"] if "_key" in frame.columns else frame.index), bare)
             for name, (frame, bare) in sheets.items()}
    keys, note = match_cases(keyed)
    if note:
        for name, (frame, _) in sheets.items():
            if "_key" in frame.columns:
                frame["_key"] = keys[name]
            else:
                frame.index = pd.Index(keys[name])
    return keys, note


def _missing_images(
    split_paths: pd.Index, names: list[str], frames: list[pd.DataFrame], reader_frame: pd.DataFrame | None
) -> dict[str, int]:
    """Images of the first run's split that each participant lacks: they leave the paired comparison."""
    wanted = set(split_paths)
    missing = {name: len(wanted - set(frame.index)) for name, frame in zip(names, frames)}
    if reader_frame is not None:
        for (reader, condition), rows in reader_frame.groupby(["reader", "condition"]):
            missing[participant_name(str(reader), str(condition))] = len(wanted - set(rows["_key"]))
    return {name: count for name, count in missing.items() if count}


def pairwise_tests(
    participants: list[Participant], y_true: np.ndarray, patients: np.ndarray, binary: bool, n_resamples: int,
    seed: int, class_names: tuple[str, ...] = (),
) -> list[dict]:
    """Every two participants: McNemar on correctness, DeLong on AUC (models), paired bootstrap differences."""
    tests = []
    n_classes = len(class_names) if class_names else int(max(y_true.max(), 1)) + 1
    for first, second in itertools.combinations(participants, 2):
        right_a, right_b = first.predicted == y_true, second.predicted == y_true
        both_scored = first.probabilities is not None and second.probabilities is not None
        differences = {}
        for metric, function in DIFFERENCE_METRICS[binary].items():
            if metric == "roc_auc" and not both_scored:
                continue
            differences[metric] = bootstrap_difference(
                _indexed(function, y_true, first, n_classes), _indexed(function, y_true, second, n_classes), patients,
                n_resamples, seed,
            )
        entry = {
            "a": first.name, "b": second.name,
            "mcnemar": mcnemar_test(right_a, right_b),
            "accuracy_difference": differences["accuracy"],
            "differences": differences,
            "delong": None,
            "delong_per_class": None,
        }
        if binary and both_scored:
            entry["delong"] = delong_test(y_true, first.probabilities[:, 1], second.probabilities[:, 1])
        elif both_scored:
            entry["delong_per_class"] = {
                name: delong_test(y_true == index, first.probabilities[:, index], second.probabilities[:, index])
                for index, name in enumerate(class_names) if 0 < (y_true == index).sum() < len(y_true)
            }
        tests.append(entry)
    return tests


def _indexed(function, y_true: np.ndarray, participant: Participant, n_classes: int):
    """``index -> metric`` on one resample of one participant, as bootstrap_difference wants."""
    probabilities = participant.probabilities

    def metric(index: np.ndarray) -> float:
        scores = None if probabilities is None else probabilities[index]
        return function(y_true[index], participant.predicted[index], scores, n_classes)

    return metric


def _rate(hits: np.ndarray) -> float:
    return float(hits.mean()) if len(hits) else float("nan")


def _f1(y_true: np.ndarray, predicted: np.ndarray, _: object, n_classes: int) -> float:
    """F1 of the positive class (binary) or the macro mean over classes, as in metrics.json."""
    values = metric_values(y_true, predicted, np.zeros((len(y_true), n_classes)), n_classes)
    return values["f1"]


def _auc(y_true: np.ndarray, _: np.ndarray, probabilities: np.ndarray, __: int) -> float:
    positive = y_true == 1
    if positive.all() or not positive.any():
        return float("nan")
    return auc_by_ranks(probabilities[:, 1], positive)


# Fast numpy forms (a bootstrap evaluates them thousands of times); tests pin them to scikit-learn.
DIFFERENCE_METRICS = {
    True: {
        "accuracy": lambda t, p, _, __: _rate(t == p),
        "sensitivity": lambda t, p, _, __: _rate(p[t == 1] == 1),
        "specificity": lambda t, p, _, __: _rate(p[t == 0] == 0),
        "f1": _f1,
        "roc_auc": _auc,
    },
    False: {
        "accuracy": lambda t, p, _, __: _rate(t == p),
        "f1": _f1,
    },
}


def test_row(test: dict) -> dict:
    """One line of tests.csv: McNemar, DeLong and every bootstrap difference with its CI."""
    row = {
        "a": test["a"], "b": test["b"], "accuracy_difference": test["accuracy_difference"]["difference"],
        "difference_ci_low": test["accuracy_difference"]["ci95"][0],
        "difference_ci_high": test["accuracy_difference"]["ci95"][1],
        "mcnemar_p": test["mcnemar"]["p_value"], "mcnemar_exact": test["mcnemar"]["exact"],
        "delong_auc_difference": test["delong"]["difference"] if test["delong"] else None,
        "delong_p": test["delong"]["p_value"] if test["delong"] else None,
    }
    for metric, item in test.get("differences", {}).items():
        if metric != "accuracy":
            row[f"{metric}_difference"] = item["difference"]
            row[f"{metric}_difference_ci_low"], row[f"{metric}_difference_ci_high"] = item["ci95"]
    for name, item in (test.get("delong_per_class") or {}).items():
        row[f"delong_p_{name}"] = item["p_value"]
    return row


def markdown(
    table: list[dict], tests: list[dict], split: str, n_images: int, missing: dict[str, int] | None = None
) -> str:
    metrics = [name for name in ("accuracy", "sensitivity", "recall", "specificity", "precision", "npv", "f1",
                                 "roc_auc", "quadratic_kappa") if any(name in row for row in table)]
    lines = [f"# Models and readers on the {split} split ({n_images} images)", "",
             "Each cell: value (95% CI, patient bootstrap); unit of analysis: image.", ""]
    lines += markdown_table(
        ["participant", "kind", *metrics, "reading time (s)"],
        [[row["participant"], row["kind"],
          *(_with_interval(row.get(name), row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")) for name in metrics),
          f"{row['reading_time_s']:.1f}" if row.get("reading_time_s") else "-"] for row in table])
    lines += ["", "## Paired tests", "",
              "McNemar and DeLong treat images as independent; the bootstrap differences resample patients.", ""]
    lines += markdown_table(
        ["a", "b", "accuracy a-b (95% CI)", "McNemar p", "DeLong p"],
        [[test["a"], test["b"],
          _with_interval(test["accuracy_difference"], test["difference_ci_low"], test["difference_ci_high"], "+.3f"),
          f"{test['mcnemar_p']:.4f}{' (exact)' if test['mcnemar_exact'] else ''}",
          "-" if test["delong_p"] is None else f"{test['delong_p']:.4f}"] for test in tests])
    others = [name for name in ("sensitivity", "specificity", "f1", "roc_auc")
              if any(f"{name}_difference" in test for test in tests)]
    if others:
        lines.append("")
        lines += markdown_table(
            ["a", "b", *(f"{name} a-b (95% CI)" for name in others)],
            [[test["a"], test["b"], *(_with_interval(test.get(f"{name}_difference"),
                                                     test.get(f"{name}_difference_ci_low"),
                                                     test.get(f"{name}_difference_ci_high"), "+.3f")
                                      for name in others)] for test in tests])
    if missing:
        lines += ["", "Left out of the paired comparison (images of the split a participant lacks): "
                  + ", ".join(f"{name} {count}" for name, count in missing.items()) + "."]
    return "\n".join(lines) + "\n"


def _with_interval(value: float | None, low: float | None, high: float | None, style: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if low is None or high is None:
        return f"{value:{style}}"
    return f"{value:{style}} ({low:{style}} to {high:{style}})"


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return result
