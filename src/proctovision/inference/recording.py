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
