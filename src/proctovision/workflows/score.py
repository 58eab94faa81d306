"""``score``: metrics, figures and subgroups of a predictions file, written beside it (no model needed)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from proctovision.core import fileio
from proctovision.core.tasks import Task
from proctovision.evaluation import subgroups
from proctovision.evaluation.score import ScoreOptions, read_predictions, score_table, task_for
from proctovision.evaluation.subgroups import markdown
from proctovision.reporting.split_figures import forest_plots, write_split_figures


def add_subgroups(
    entry: dict, scored: pd.DataFrame, by: list[str], task: Task, options: ScoreOptions, folder: Path
) -> dict:
    """Every metric with CIs per level of each ``by`` column, a heterogeneity test and forest plots."""
    result = subgroups.subgroup_metrics(scored, by, task.classes, task.ordinal, options.n_resamples, options.seed)
    overall = {name: item["value"] for name, item in entry["metrics"].items()}
    entry["subgroups"] = result
    entry["subgroup_figures"] = {key: Path(path).name for key, path in
                                 forest_plots(result, folder, overall=overall).items()}
    return result


def score_file(
    predictions: Path, out: Path, truth: Path | None = None, split: str | None = "test",
    options: ScoreOptions = ScoreOptions(), task: Task | None = None, by: list[str] | None = None,
) -> dict:
    """``proctovision score``: metrics.json, the scored predictions and figures from a predictions file alone;
    ``by`` adds subgroups (any column of the predictions or the truth manifest)."""
    table = read_predictions(predictions, truth, tuple(by or ()))
    if split is not None and "split" not in table.columns:
        split = None
    entry, scored = score_table(table, split, options, task, predictions)
    name = split or "all"
    write_split_figures(entry, scored, tuple(entry["classes"]), out / "figures", name)
    if by:
        result = add_subgroups(entry, scored, by, task_for(tuple(entry["classes"]), task), options, out / "figures")
        fileio.write_text(out / "subgroups.md", markdown(result))
    fileio.write_json(out / "metrics.json", {name: entry})
    fileio.write_csv(out / "scored_predictions.csv", scored)
    return entry
