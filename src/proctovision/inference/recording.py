"""What a predictor's caller hands to a recorder beside it: one ``Answer`` per answer given, and the ``Recorder``
interface (``proctovision.monitoring`` implements it). Callers below the monitoring layer receive a recorder
object and never import monitoring. A stream of frames (a video file, the live page) is pooled into one answer per
second and one per procedure (:func:`pooled_answer`), never one per frame."""
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


@dataclass(frozen=True)
class FrameNumbers:
    """One frame's numbers for pooling, as the live page has them: probabilities (None when the frame had no content
    area to judge), the OOD score, the guard's own verdict and quality flags (where known) and the latency. A video's
    ``FrameRow`` has the same fields but the guard's, which pooling then derives from the score and threshold."""

    probabilities: object | None
    ood_score: float | None = None
    latency_s: float | None = None
    in_distribution: bool | None = None
    quality: dict | None = None


def _flagged_out(row: object, threshold: float | None) -> bool | None:
    verdict = getattr(row, "in_distribution", None)
    if verdict is not None:
        return not verdict
    if row.ood_score is not None and threshold is not None:
        return row.ood_score > threshold
    return None


def pooled_answer(rows: Sequence, classes: tuple[str, ...], decide: object, threshold: float | None,
                  unit: str) -> Answer:
    """One answer for a run of frames: mean probabilities of the frames judged, decided as one image would be;
    flagged out of distribution, or with a quality flag, when most of the frames that say were; the median OOD
    score and latency. A run with no judged frame answers as an image without a content area: no class."""
    import numpy as np

    judged = [row.probabilities for row in rows if row.probabilities is not None]
    mean = np.mean(judged, axis=0) if judged else None
    outs = [flag for flag in (_flagged_out(row, threshold) for row in rows) if flag is not None]
    scores = [row.ood_score for row in rows if row.ood_score is not None]
    qualities = [getattr(row, "quality", None) or {} for row in rows]
    flags = {name: bool(np.mean(known) > 0.5) for name in ("too_dark", "overexposed", "blurred")
             if (known := [bool(quality[name]) for quality in qualities if quality.get(name) is not None])}
    guard = None
    if outs or scores or flags:
        guard = {"in_distribution": bool(np.mean(outs) <= 0.5) if outs else None,
                 "ood_score": float(np.median(scores)) if scores else None, **({"quality": flags} if flags else {})}
    latencies = [row.latency_s for row in rows if row.latency_s is not None]
    probabilities = {name: float(value) for name, value in zip(classes, mean)} if mean is not None else {}
    return Answer(probabilities, decide(mean) if mean is not None else None, guard,
                  float(np.median(latencies)) if latencies else None, unit, len(rows))


def video_answers(result: object, decide: object) -> list[Answer]:
    """A video's answers for monitoring: one per second of video and one for the whole procedure, never one per
    frame (``result`` an inference.video VideoResult, ``decide`` the predictor's decision rule)."""
    if not result.rows:
        return []
    seconds: dict[int, list] = {}
    for row in result.rows:
        seconds.setdefault(int(row.time_s), []).append(row)
    pooled = [pooled_answer(rows, result.classes, decide, result.ood_threshold, "second") for _, rows in
              sorted(seconds.items())]
    return pooled + [pooled_answer(result.rows, result.classes, decide, result.ood_threshold, "procedure")]
