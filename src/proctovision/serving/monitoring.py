"""The service side of monitoring: ``serve --monitor DIR`` records every answer (``/predict`` returns its
``prediction_id``), and ``GET /metrics`` gives Prometheus the folder's figures, on ``serve`` and on
``monitor serve DIR`` (for watch and video deployments, whose answers arrive from other processes).

Metrics follow Prometheus' naming conventions and are read from the monitoring store (each scrape adds the answers
recorded since the last), so every process that records into the folder is counted once:
``proctovision_predictions_total{model_version, source, decision}``, ``proctovision_ood_total{model_version,
source}``, ``proctovision_inference_seconds`` (histogram), ``proctovision_probability{class}`` (histogram) and
``proctovision_alarm{signal}`` (1 while an alarm is open). No label carries an id, a path or a patient attribute.
"""
from __future__ import annotations

import threading
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool

from proctovision.inference.recording import Answer

# The monitoring store (pandas, SQLAlchemy, scipy) is imported only when a service monitors: an ONNX-only service
# without --monitor loads none of it.

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROBABILITY_BUCKETS = tuple(round(0.1 * step, 1) for step in range(1, 11))
METRIC_COLUMNS = ("seq", "source", "status", "decision", "out_of_distribution", "latency_s", "probabilities")


class StoreMetrics:
    """Prometheus metrics kept up to date from the store; ``exposition()`` is what GET /metrics returns."""

    def __init__(self, monitor: "Monitor") -> None:  # noqa: F821
        self.monitor, self.last_seq, self.lock = monitor, 0, threading.Lock()
        self.version = monitor.model_sha256[:12]
        self.registry = CollectorRegistry()
        self.predictions = Counter("proctovision_predictions", "Answers given, by source and decision",
                                   ["model_version", "source", "decision"], registry=self.registry)
        self.ood = Counter("proctovision_ood", "Answers flagged out of distribution", ["model_version", "source"],
                           registry=self.registry)
        self.latency = Histogram("proctovision_inference_seconds", "Time from request to answer",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.probability = Histogram("proctovision_probability", "Probability given to each class", ["class"],
                                     buckets=PROBABILITY_BUCKETS, registry=self.registry)
        self.alarm = Gauge("proctovision_alarm", "1 while the signal's alarm is open (unacknowledged)", ["signal"],
                           registry=self.registry)

    def refresh(self) -> None:
        from proctovision.monitoring.signals import WINDOW_SIGNALS

        with self.lock:
            self.monitor.refresh_alarms()
            rows = self.monitor.answers(after_seq=self.last_seq, columns=METRIC_COLUMNS)
            for row in rows[rows["status"] == "answered"].itertuples(index=False):
                self.predictions.labels(self.version, row.source, row.decision or "").inc()
                if row.out_of_distribution is True:
                    self.ood.labels(self.version, row.source).inc()
                if row.latency_s is not None and row.latency_s == row.latency_s:
                    self.latency.observe(row.latency_s)
                for name, value in (row.probabilities or {}).items():
                    if name in self.monitor.classes:
                        self.probability.labels(name).observe(value)
            if len(rows):
                self.last_seq = int(rows["seq"].iloc[-1])
            open_signals = {alarm["signal"] for alarm in self.monitor.alarms(open_only=True)}
            for signal in [*self.monitor.design["charts"], *WINDOW_SIGNALS]:
                self.alarm.labels(signal).set(1 if signal in open_signals else 0)

    def exposition(self) -> bytes:
        self.refresh()
        return generate_latest(self.registry)


def add_metrics_route(app: FastAPI, metrics: StoreMetrics, check: object | None = None) -> None:
    """GET /metrics in Prometheus' text format (behind the API token when the service has one)."""
    from fastapi import Depends

    dependencies = [Depends(check)] if check is not None else []

    @app.get("/metrics", include_in_schema=False, dependencies=dependencies)
    async def prometheus_metrics() -> Response:
        return Response(await run_in_threadpool(metrics.exposition), media_type=CONTENT_TYPE_LATEST)


def attach_monitor(app: FastAPI, source: str | Path, folder: str | Path, check: object | None = None,
                   auth: object | None = None) -> "Monitor":  # noqa: F821
    """Open the folder, refuse a model other than its own, and give the app recorders (``/predict``'s and the live
    page's), GET /metrics and the /monitor page."""
    from proctovision.monitoring.folder import open_folder
    from proctovision.monitoring.reference import model_sha256
    from proctovision.serving.monitor_page import add_monitor_page

    monitor = open_folder(folder)
    try:
        monitor.check_model(model_sha256(source))
    except Exception:
        monitor.close()
        raise
    app.state.monitor = monitor
    app.state.recorder = monitor.recorder("serve", monitor.model_sha256)
    app.state.live_recorder = monitor.recorder("live", monitor.model_sha256)  # the live page: per second, procedure
    app.state.metrics = StoreMetrics(monitor)
    add_metrics_route(app, app.state.metrics, check)
    add_monitor_page(app, monitor, auth)
    return monitor


async def record_answers(app: FastAPI, answers: list[dict], latency_s: float) -> None:
    """Record the answers of one request (when the app monitors) and add each one's ``prediction_id``."""
    recorder = getattr(app.state, "recorder", None)
    if recorder is None:
        return
    recorded = [Answer(item["probabilities"], item["predicted"], item, latency_s) for item in answers]
    for ident, item in zip(await run_in_threadpool(recorder.record, recorded), answers):
        item["prediction_id"] = ident


def create_monitor_app(folder: str | Path) -> FastAPI:
    """``monitor serve DIR``: GET /metrics and GET /health for a folder that watch or video record into."""
    from proctovision.monitoring.folder import open_folder

    monitor = open_folder(folder)
    app = FastAPI(title="ProctoVision monitoring", version="1")
    app.state.monitor = monitor
    app.state.metrics = StoreMetrics(monitor)
    add_metrics_route(app, app.state.metrics)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "predictions": monitor.count()}

    return app


def record_findings(recorder: object, predictor: object, pictures: list, findings: list, latency_s: float) -> None:
    """Record a chunk of a PACS study's answers (with their OOD and quality flags); each finding gains its
    prediction id, which the SR then carries."""
    import numpy as np

    from proctovision.imaging.quality import assess_quality

    arrays = np.stack([predictor.prepare(picture) for picture in pictures])
    qualities = [assess_quality(picture).to_dict() for picture in pictures]
    scores = predictor.ood_scores(predictor.raw_outputs(arrays)[1])
    answers = [Answer(finding.probabilities, finding.predicted,
                      predictor.guard(None if scores is None else float(scores[index]), qualities[index]), latency_s)
               for index, finding in enumerate(findings)]
    for ident, finding in zip(recorder.record(answers), findings):
        finding.prediction_id = ident
