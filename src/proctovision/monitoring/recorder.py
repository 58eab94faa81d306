"""Recording answers beside the predictor: a writer thread commits the answers of concurrent callers together
(group commit), and ``record`` returns their prediction ids only once they are durable, so no acknowledged answer
is lost to a crash. Every ``check_every`` answers the charts advance and may raise alarms. Listeners (the
Prometheus metrics) hear of every committed answer."""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence

from sqlalchemy import insert

from proctovision.inference.recording import Answer
from proctovision.monitoring.appearance import appearance_columns
from proctovision.monitoring.reference import answer_score
from proctovision.monitoring.store import PredictionRecord, new_prediction_id, now

SOURCES = ("serve", "live", "predict", "watch", "video")


class MonitorRecorder:
    """Implements :class:`proctovision.inference.recording.Recorder` for one source on an open Monitor."""

    def __init__(self, monitor: object, source: str, check_every: int = 100) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}")
        self.monitor, self.source, self.check_every = monitor, source, check_every
        self.listeners: list[Callable[[list[dict]], None]] = []
        self._queue: queue.Queue = queue.Queue()
        self._since_check = 0
        self._thread = threading.Thread(target=self._write_loop, name=f"monitor-{source}", daemon=True)
        self._thread.start()

    def row(self, answer: Answer) -> dict:
        classes = self.monitor.classes
        guard = answer.guard or {}
        quality = guard.get("quality") or {}
        in_distribution = guard.get("in_distribution")
        score = None
        if answer.decision in classes and answer.probabilities:
            import numpy as np

            probabilities = np.array([[answer.probabilities.get(name, 0.0) for name in classes]])
            score = float(answer_score(probabilities, np.array([classes.index(answer.decision)]))[0])
        return {"id": new_prediction_id(), "at": now(), "model_sha256": self.monitor.model_sha256,
                "source": self.source, "unit": answer.unit, "status": answer.status,
                "probabilities": {key: float(value) for key, value in (answer.probabilities or {}).items()} or None,
                "decision": answer.decision, "score": score, "ood_score": guard.get("ood_score"),
                "out_of_distribution": None if in_distribution is None else not in_distribution,
                **{flag: (None if flag not in quality else bool(quality[flag]))
                   for flag in ("too_dark", "overexposed", "blurred")},
                "latency_s": answer.latency_s, "frames": answer.frames, **appearance_columns(quality)}

    def record(self, answers: Sequence[Answer]) -> list[str]:
        """Store the answers (one transaction shared with whatever else is waiting) and return their ids."""
        rows = [self.row(answer) for answer in answers]
        if not rows:
            return []
        done, failure = threading.Event(), []
        self._queue.put((rows, done, failure))
        done.wait()
        if failure:
            raise failure[0]
        return [row["id"] for row in rows]

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        self.monitor.refresh_alarms()

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            self._commit(batch)

    def _commit(self, batch: list) -> None:
        rows = [row for rows, _, _ in batch for row in rows]
        try:
            with self.monitor.sessions.begin() as session:
                session.execute(insert(PredictionRecord), rows)
        except Exception as error:  # noqa: BLE001 - handed back to every waiting caller
            for _, done, failure in batch:
                failure.append(error)
                done.set()
            return
        for _, done, _ in batch:
            done.set()
        for listener in self.listeners:
            listener(rows)
        self._since_check += len(rows)
        if self._since_check >= self.check_every:
            self._since_check = 0
            try:
                self.monitor.refresh_alarms()
            except Exception:  # noqa: BLE001 - recording goes on; status shows the charts again
                pass
