"""Run a study's grid end to end, resumably: ingest → split → train/evaluate each run → compare → report.

A finished run (DONE marker and test metrics) is never redone; an interrupted one resumes from its
last checkpoint. Progress says which run of how many is going and the time left.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from proctovision.core import fileio
from proctovision.core.console import console
from proctovision.data import ingest as ingest_lib
from proctovision.imaging.dicom import salt_for
from proctovision.data.manifest import read_manifest, write_manifest
from proctovision.data.split import holdout_split, kfold_split
from proctovision.core.errors import UserError
from proctovision.evaluation.readers import ReadersError
from proctovision.workflows.compare import compare
from proctovision.workflows.evaluate import evaluate_run
from proctovision.workflows.grid import GridConfig
from proctovision.core import i18n
from proctovision.reporting import figures, paper
from proctovision.artefacts.runs import DONE, RunPaths, is_done, mark_done  # noqa: F401 - DONE: the marker name
from proctovision.core.tables import markdown_table, read_table
from proctovision.core.tasks import load_task
from proctovision.workflows.training import train

@dataclass
class GridProgress:
    total: int
    started: float = field(default_factory=time.perf_counter)
    durations: list[float] = field(default_factory=list)
    position: int = 0

    def announce(self, name: str, state: str) -> None:
        self.position += 1
        remaining = self.total - self.position + 1
        eta = f", about {remaining * sum(self.durations) / len(self.durations) / 60:.1f} min left" if self.durations else ""
        console.print(f"[bold]run {self.position}/{self.total}[/] {name}: {state}{eta}")


@dataclass(frozen=True)
class GridJob:
    """One grid run as a unit a cluster job can run alone (picklable)."""

    grid: GridConfig
    run: object
    task: str
    split: Path
    run_dir: Path
    quick: bool
    resamples: int
    tracking: object | None = None


def run_grid_job(job: GridJob) -> str:
    return run_one(job.grid, job.run, job.task, job.split, job.run_dir, job.quick, job.resamples, job.tracking)


def predictions_of(run_dir: Path) -> Path:
    """A run's predictions, or a cross-validated run's pooled out-of-fold predictions."""
    if run_dir.is_file():
        return run_dir
    oof = run_dir / "oof_predictions.csv"
    return oof if oof.is_file() else RunPaths(run_dir).predictions


def prepare_split(grid: GridConfig, task_name: str, source: Path, folder: Path) -> Path:
    """Ingest and split once per task; later invocations reuse the split so runs stay comparable."""
    split_path = folder / ("folds.csv" if grid.split.folds else "split.csv")
    if split_path.is_file():
        return split_path
    task = load_task(task_name)
    if not source.exists():
        raise UserError(f"{source}: the grid expects this data source (see the grid's tasks: source)")
    result = ingest_lib.ingest(source, task, dicom_options=ingest_lib.DicomOptions(salt=salt_for(folder)))
    ingest_lib.write_outputs(result, task, source, folder / "manifest.csv")
    if result.manifest.empty:
        raise UserError(f"{source}: no usable image; see {folder / 'qc.md'}")
    manifest = read_manifest(folder / "manifest.csv")
    if grid.split.folds:
        split = kfold_split(manifest, grid.split.folds, grid.split.seed)
    else:
        split = holdout_split(manifest, grid.split.val, grid.split.test, grid.split.seed)
    write_manifest(split, split_path)
    return split_path


def run_one(grid: GridConfig, run, task: str, split: Path, run_dir: Path, quick: bool, resamples: int,
            tracking: object | None = None, executor: object | None = None) -> str:
    if is_done(run_dir):
        return "done before, skipped"
    config = grid.run_config(run, task, split, run_dir, quick)
    if grid.split.folds:
        from proctovision.workflows.crossval import CrossvalSettings, crossval

        settings = CrossvalSettings(val=grid.split.val, seed=grid.split.seed, resamples=resamples)
        crossval(split, config, run_dir, settings, executor=executor, tracking=tracking, announce=lambda line: None)
        mark_done(run_dir)
        return f"cross-validated ({grid.split.folds} folds)"
    resume = RunPaths(run_dir).last.is_file()
    logger = None
    if tracking is not None:
        from proctovision.workflows.tracking import training_logger

        logger = training_logger(tracking, run_dir, f"{task}/{run.name}")
    train(config, resume=resume, progress=False, logger=logger)
    evaluate_run(run_dir, "val", n_resamples=resamples)
    evaluate_run(run_dir, "test", n_resamples=resamples, cams=not quick)
    if tracking is not None:
        from proctovision.workflows.tracking import log_run

        log_run(tracking, run_dir)
    mark_done(run_dir)
    return "resumed and finished" if resume else "trained and evaluated"


def study_table(grid: GridConfig, task: str, table: list[dict]) -> pd.DataFrame:
    """Measured (with CI) beside published, one row per model or reader."""
    published = grid.published.get(task, {})
    labels = {run.name: run.label or run.name for run in grid.runs}
    rows = []
    for row in table:
        entry = {"participant": labels.get(row["participant"], row["participant"]), "kind": row["kind"]}
        for metric in grid.table_metrics:
            value, low, high = row.get(metric), row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
            entry[f"{metric} measured"] = (
                "-" if value is None or pd.isna(value) else f"{value:.3f} ({low:.3f}-{high:.3f})"
            )
            paper = published.get(row["participant"], {}).get(metric)
            entry[f"{metric} published"] = "-" if paper is None else f"{paper:.3f}"
        entry["reading time (s)"] = "-" if not row.get("reading_time_s") else f"{row['reading_time_s']:.2f}"
        rows.append(entry)
    for name, values in published.items():
        if name not in {row["participant"] for row in table}:
            entry = {"participant": f"{name} (published only)", "kind": "paper"}
            for metric in grid.table_metrics:
                entry[f"{metric} measured"] = "-"
                entry[f"{metric} published"] = "-" if metric not in values else f"{values[metric]:.3f}"
            rows.append(entry)
    return pd.DataFrame(rows)


def reproduction_title(study: str) -> str:
    """The report's title in the installation's language (the report itself follows the same default)."""
    from proctovision.core import i18n

    return i18n.gettext_for(i18n.resolve(None))("Reproduction: {study}").format(study=study)


def named_oof(cv_dir: Path, name: str) -> Path:
    """The cross-validation's out-of-fold predictions beside its folder as NAME.csv (paths rewritten for the new
    place), so `compare` names the participant after the grid run."""
    import os

    rows = read_table(cv_dir / "oof_predictions.csv")
    target = cv_dir.parent / f"{name}.csv"
    rows["path"] = [os.path.relpath(os.path.abspath(cv_dir / path), target.parent.resolve()) for path in rows["path"]]
    return fileio.write_csv(target, rows)


def roc_overlay(run_dirs: dict[str, Path], out: Path) -> Path | None:
    """All runs' test ROC curves on one figure (the fistula study's Fig. 3)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    curves = {}
    for label, run_dir in run_dirs.items():
        rows = read_table(predictions_of(run_dir))
        rows = rows[rows["split"] == "test"]
        classes = [column.removeprefix("prob_") for column in rows.columns if column.startswith("prob_")]
        if len(classes) != 2:
            return None
        truth = (rows["label"] == classes[1]).to_numpy()
        if 0 < truth.sum() < len(truth):
            scores = rows[f"prob_{classes[1]}"].astype(float)
            fpr, tpr, _ = roc_curve(truth, scores)
            curves[label] = (fpr, tpr, roc_auc_score(truth, scores))
    return figures.roc_curves(curves, out, "ROC, test split") if curves else None


def reproduce(
    grid: GridConfig, data: Path, out: Path, quick: bool = False, readers: Path | None = None,
    resamples: int = 1000, executor: object | None = None, tracking: object | None = None,
) -> dict:
    """Run every task × run of the grid; returns the paths of the tables, figures and report.

    With an ``executor`` (submitit: SLURM or local processes) every grid run is a job, all submitted at once;
    under ``folds: k`` each grid run is a cross-validation whose folds are the jobs.
    """
    from proctovision.reporting.report import build_report

    out.mkdir(parents=True, exist_ok=True)
    resamples = min(resamples, 200) if quick else resamples
    progress = GridProgress(total=len(grid.tasks) * len(grid.runs))
    if tracking is not None:
        from proctovision.workflows.tracking import prepare_store

        prepare_store(tracking)
    results: dict[str, dict] = {}
    all_runs: list[Path] = []
    cv_dirs: list[Path] = []
    extras: list[tuple[str, pd.DataFrame]] = []  # (task, measured beside published)
    comparisons: list[Path] = []
    if executor is not None and not grid.split.folds:
        from proctovision.workflows.executor import run_all

        jobs = [GridJob(grid, run, entry.task, prepare_split(grid, entry.task, data / entry.source, out / entry.task),
                        out / entry.task / "runs" / run.name, quick, resamples, tracking)
                for entry in grid.tasks for run in grid.runs]
        console.print(f"submitting {sum(not is_done(job.run_dir) for job in jobs)} of {len(jobs)} runs as jobs")
        run_all(run_grid_job, [job for job in jobs if not is_done(job.run_dir)], executor)
    for entry in grid.tasks:
        folder = out / entry.task
        split = prepare_split(grid, entry.task, data / entry.source, folder)
        run_dirs = {}
        for run in grid.runs:
            run_dir = folder / "runs" / run.name
            progress.announce(f"{entry.task}/{run.name}", "starting" if not is_done(run_dir) else "finished before")
            begin = time.perf_counter()
            state = run_one(grid, run, entry.task, split, run_dir, quick, resamples, tracking, executor)
            if state != "done before, skipped":
                progress.durations.append(time.perf_counter() - begin)
            console.print(f"    {state}")
            run_dirs[run.label or run.name] = named_oof(run_dir, run.name) if grid.split.folds else run_dir
            if grid.split.folds:
                cv_dirs.append(run_dir)
            else:
                all_runs.append(run_dir)
        task_readers = readers_for_task(readers, entry.task, folder) if readers else None
        comparison = compare(list(run_dirs.values()), folder / "comparison", readers=task_readers, n_resamples=resamples)
        comparisons.append(folder / "comparison")
        table = study_table(grid, entry.task, comparison["table"])
        fileio.write_csv(folder / "study_table.csv", table)
        text = "\n".join(markdown_table(table.columns, table.to_numpy()))
        fileio.write_text(folder / "study_table.md", f"# {grid.study}: {entry.task}\n\n{text}\n")
        extras.append((entry.task, table))
        roc = roc_overlay(run_dirs, folder / "roc_all.png")
        if roc:  # the same figure for a paper (PDF, SVG, 300 dpi PNG at one column), indexed by the report
            with paper.paper_style("single", i18n.resolve(None)):
                roc_overlay(run_dirs, out / "paper" / entry.task / "roc_all_backbones.png")
        results[entry.task] = {"table": folder / "study_table.md", "roc": roc, "comparison": folder / "comparison"}
    report = build_report(all_runs, out / "report.html", comparison=comparisons, cams=not quick, extras=extras,
                          title=reproduction_title(grid.study), crossval=cv_dirs)
    return {"tasks": results, "report": report}


def readers_for_task(readers: Path, task: str, folder: Path) -> Path:
    """Rows of readers.csv for one task (by its `task` column when present), rewritten beside the task's outputs."""
    frame = read_table(readers, ("path", "reader", "label"), ReadersError)
    if "task" not in frame.columns:
        return readers
    rows = frame[frame["task"] == task].drop(columns="task")
    root = readers.resolve().parent
    rows["path"] = [str((root / path).resolve()) for path in rows["path"]]
    target = folder / "readers.csv"
    fileio.write_csv(target, rows)
    return target
