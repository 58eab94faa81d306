"""What a predictor's caller hands to a recorder beside it: one ``Answer`` per answer given, and the ``Recorder``
interface (``proctovision.monitoring`` implements it). Callers below the monitoring layer receive a recorder
object and never import monitoring."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Answer:
    """One answer, with nothing that identifies a patient or an image: probabilities, decision, the guard (the
    predictor's ``guard()``: in_distribution, ood_score, quality flags), latency, and what it covers (an image, a
    second of video, a whole procedure, with its number of frames)."""

    probabilities: dict[str, float]
    decision: str | None
    guard: dict | None = None
    latency_s: float | None = None
    unit: str = "image"
    frames: int = 1
    status: str = "answered"


class Recorder(Protocol):
    def record(self, answers: Sequence[Answer]) -> list[str]:
        """Store the answers durably before returning their prediction ids, in order."""
        ...


def answer_from_prediction(prediction: object, latency_s: float | None = None) -> Answer:
    """An ``Answer`` from a predictor ``Prediction`` (its path is not carried over)."""
    return Answer(dict(prediction.probabilities), prediction.predicted, prediction.guard, latency_s)


def _pooled(rows: list, classes: tuple[str, ...], decide: object, threshold: float | None, unit: str) -> Answer:
    """One answer for a run of frames: mean raw probabilities, decided as one image would be; flagged out of
    distribution when most of its scored frames were; latency the frames' median."""
    import numpy as np

    mean = np.mean([row.probabilities for row in rows], axis=0)
    scores = [row.ood_score for row in rows if row.ood_score is not None]
    guard = None
    if scores and threshold is not None:
        guard = {"in_distribution": bool(np.mean([score > threshold for score in scores]) <= 0.5),
                 "ood_score": float(np.median(scores))}
    latencies = [row.latency_s for row in rows if row.latency_s is not None]
    return Answer({name: float(value) for name, value in zip(classes, mean)}, decide(mean), guard,
                  float(np.median(latencies)) if latencies else None, unit, len(rows))


def video_answers(result: object, decide: object) -> list[Answer]:
    """A video's answers for monitoring: one per second of video and one for the whole procedure, never one per
    frame (``result`` an inference.video VideoResult, ``decide`` the predictor's decision rule)."""
    if not result.rows:
        return []
    seconds: dict[int, list] = {}
    for row in result.rows:
        seconds.setdefault(int(row.time_s), []).append(row)
    pooled = [_pooled(rows, result.classes, decide, result.ood_threshold, "second") for _, rows in
              sorted(seconds.items())]
    return pooled + [_pooled(result.rows, result.classes, decide, result.ood_threshold, "procedure")]
