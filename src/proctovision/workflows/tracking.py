"""Experiment tracking in MLflow: parameters, the resolved config, metrics with their CIs, figures and the model
card of every train, evaluate, crossval and reproduce run.

By default the store is a SQLite file (``mlflow.db``) beside the run folder, with artifacts in ``mlartifacts/``
next to it: no server, nothing leaves the machine. Any tracking URI (another SQLite file, a server) can be given;
``--no-track`` turns tracking off. A run folder remembers its MLflow run (``mlflow_run.json``), so training curves,
later evaluations and a resumed run land in one MLflow run.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from proctovision.core import fileio
from proctovision.core.errors import UserError

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # a hospital machine sends nothing anywhere
os.environ.setdefault("DO_NOT_TRACK", "1")

LINK_FILE = "mlflow_run.json"
DEFAULT_EXPERIMENT = "proctovision"


class TrackingError(UserError, RuntimeError):
    """A tracking URI that cannot be used; the message names it."""


@dataclass(frozen=True)
class Tracking:
    """Where runs are logged: an MLflow tracking URI, the experiment, and (for local stores) the artifact folder."""

    uri: str
    experiment: str = DEFAULT_EXPERIMENT
    artifact_location: str | None = None


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def tracking_for(output: Path, uri: str | None = None, enabled: bool = True,
                 experiment: str = DEFAULT_EXPERIMENT) -> Tracking | None:
    """The default store is ``mlflow.db`` beside ``output`` (the run, crossval or reproduce folder)."""
    if not enabled:
        return None
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or sqlite_uri(Path(output).resolve().parent / "mlflow.db")
    if "://" not in uri:  # a plain path: a SQLite file
        uri = sqlite_uri(Path(uri))
    artifacts = None
    if uri.startswith("sqlite:///"):
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    elif uri.startswith("file:"):
        artifacts = uri.rstrip("/") + "/artifacts"
    return Tracking(uri, experiment, artifacts)


def quiet() -> None:
    """Store set-up chatter is not the user's business (set after mlflow configured its own loggers)."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def client(tracking: Tracking) -> Any:
    import mlflow

    quiet()

    try:
        return mlflow.MlflowClient(tracking_uri=tracking.uri)
    except mlflow.exceptions.MlflowException as error:
        raise TrackingError(f"tracking URI {tracking.uri}: {error.message.splitlines()[0]}") from error


def experiment_id(tracking: Tracking) -> str:
    """The experiment's id, created on first use (two jobs creating it at once both end up with the same one)."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(tracking)
    found = mlflow_client.get_experiment_by_name(tracking.experiment)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow_client.create_experiment(tracking.experiment, artifact_location=tracking.artifact_location)
    except MlflowException:
        return mlflow_client.get_experiment_by_name(tracking.experiment).experiment_id


def prepare_store(tracking: Tracking | None) -> None:
    """Create the store and experiment once, here, before parallel jobs would race to set up the same database."""
    if tracking is not None:
        experiment_id(tracking)


def linked_run(tracking: Tracking, folder: Path, name: str, kind: str) -> str:
    """The MLflow run of this folder: the one recorded in mlflow_run.json for this store, else a new one."""
    link = Path(folder) / LINK_FILE
    if link.is_file():
        recorded = json.loads(link.read_text())
        if recorded.get("tracking_uri") == tracking.uri:
            return recorded["run_id"]
    run = client(tracking).create_run(experiment_id(tracking), run_name=name, tags={"proctovision.kind": kind})
    fileio.write_json(link, {"tracking_uri": tracking.uri, "run_id": run.info.run_id,
                             "experiment": tracking.experiment})
    return run.info.run_id


def training_logger(tracking: Tracking, run_dir: Path, name: str | None = None) -> Any:
    """Lightning's MLFlowLogger on the run folder's MLflow run: loss and accuracy per step and epoch."""
    from lightning.pytorch.loggers import MLFlowLogger

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    run_id = linked_run(tracking, run_dir, name or Path(run_dir).name, "train")
    return MLFlowLogger(experiment_name=tracking.experiment, tracking_uri=tracking.uri, run_id=run_id,
                        artifact_location=tracking.artifact_location)


def flatten(data: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


def metric_values(metrics: dict, prefix: str) -> dict[str, float]:
    """``{prefix}/{metric}`` with ``_ci_low``/``_ci_high`` beside it, from a metrics.json entry's metrics."""
    out = {}
    for name, item in metrics.items():
        value = item.get("value") if isinstance(item, dict) else item
        if value is None:
            continue
        out[f"{prefix}/{name}"] = float(value)
        for bound, index in (("ci_low", 0), ("ci_high", 1)):
            interval = item.get("ci95") if isinstance(item, dict) else None
            if interval and interval[index] is not None:
                out[f"{prefix}/{name}_{bound}"] = float(interval[index])
    return out


def log_metrics(tracking: Tracking, run_id: str, values: dict[str, float]) -> None:
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    batch = [Metric(key, value, stamp, 0) for key, value in values.items()]
    mlflow_client = client(tracking)
    for start in range(0, len(batch), 500):
        mlflow_client.log_batch(run_id, metrics=batch[start:start + 500])


def log_params(tracking: Tracking, run_id: str, params: dict[str, str]) -> None:
    """Parameters are write-once in MLflow: ones already logged (a resumed or re-evaluated run) are kept."""
    from mlflow.entities import Param
    from mlflow.exceptions import MlflowException

    mlflow_client = client(tracking)
    existing = mlflow_client.get_run(run_id).data.params
    fresh = [Param(key, value) for key, value in params.items() if key not in existing]
    for start in range(0, len(fresh), 100):
        try:
            mlflow_client.log_batch(run_id, params=fresh[start:start + 100])
        except MlflowException:
            pass


def log_run(tracking: Tracking, run_dir: Path) -> str:
    """A run folder in MLflow: config as params and artifact, every split's metrics with CIs, figures, card."""
    from proctovision.artefacts.runs import read_run
    from proctovision.artefacts.card import build_card

    run = read_run(run_dir)
    run_id = linked_run(tracking, run.paths.root, run.paths.root.name, "train")
    config = yaml.safe_load(run.paths.config.read_text(encoding="utf-8"))
    resolved = config.pop("resolved", {})
    params = flatten(config)
    params.update({"weights_source": str(resolved.get("weights_source")),
                   **{f"versions.{key}": str(value) for key, value in (resolved.get("versions") or {}).items()}})
    log_params(tracking, run_id, params)
    mlflow_client = client(tracking)
    mlflow_client.log_artifact(run_id, str(run.paths.config))
    if run.paths.metrics.is_file():
        all_metrics = json.loads(run.paths.metrics.read_text())
        values: dict[str, float] = {}
        for split, entry in all_metrics.items():
            values.update(metric_values(entry.get("metrics", {}), split))
            for key in ("reading_time_s", "images_per_s"):
                if entry.get(key) is not None:
                    values[f"{split}/{key}"] = float(entry[key])
            threshold = (entry.get("threshold") or {}).get("value")
            if threshold is not None:
                values[f"{split}/threshold"] = float(threshold)
        log_metrics(tracking, run_id, values)
        mlflow_client.log_artifact(run_id, str(run.paths.metrics))
    if run.paths.figures.is_dir():
        mlflow_client.log_artifacts(run_id, str(run.paths.figures), "figures")
    with tempfile.TemporaryDirectory() as folder:
        card = Path(folder) / "model_card.json"
        card.write_text(json.dumps(build_card(run), indent=2, default=str))
        mlflow_client.log_artifact(run_id, str(card))
    return run_id


def log_crossval(tracking: Tracking, out: Path, result: dict) -> str:
    """A cross-validation in MLflow: pooled out-of-fold metrics with CIs, mean and SD over folds, the fold runs."""
    run_id = linked_run(tracking, out, f"crossval {Path(out).name}", "crossval")
    log_params(tracking, run_id, {"k": str(result["k"]), "repeats": str(result["repeats"]),
                                  "val": str(result["val"]), "threshold_rule": str(result["threshold_rule"]),
                                  "validation": result["validation"]})
    values: dict[str, float] = {}
    for item in result["per_repeat"]:
        prefix = "pooled" if result["repeats"] == 1 else f"pooled_repeat_{item['repeat']}"
        values.update(metric_values(item["pooled"]["metrics"], prefix))
    for name, stats in result["mean_sd"].items():
        values[f"mean/{name}"] = stats["mean"]
        if stats["sd"] is not None:
            values[f"sd/{name}"] = stats["sd"]
    log_metrics(tracking, run_id, values)
    mlflow_client = client(tracking)
    mlflow_client.log_artifact(run_id, str(Path(out) / "cv_metrics.json"))
    for item in result["per_repeat"]:
        mlflow_client.log_artifact(run_id, str(Path(out) / item["oof_predictions"]))
        for path in item["figures"].values():
            mlflow_client.log_artifact(run_id, str(Path(out) / path), "figures")
    for fold in result["folds"]:
        link = Path(out) / fold["run"] / LINK_FILE
        if link.is_file():
            client(tracking).set_tag(json.loads(link.read_text())["run_id"], "mlflow.parentRunId", run_id)
    return run_id

