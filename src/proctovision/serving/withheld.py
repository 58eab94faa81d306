"""Answers the guard withholds: when an image is out of distribution or of poor quality, ``/predict`` answers the
flags and the sentence but no class, no probabilities and no heatmap. The full answer waits here, under a random
id, for an explicit "show anyway" (``POST /answers/{id}/shown``), which the audit log records before it is given.

Only the most recent answers are kept (in memory, never on disk): an old id is simply no longer there.
"""
from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

KEPT_ANSWERS = 64
OOD_WARNING = ("This image does not look like the images the model was trained on; "
               "its output is not reliable and is not shown as a finding.")
QUALITY_WARNINGS = {"too_dark": "too dark", "overexposed": "overexposed", "blurred": "blurred"}
HIDDEN = ("predicted", "probabilities", "heatmap_png_base64", "heatmap_note")


def warning_for(guard: dict) -> str | None:
    """A plain sentence for the page when the answer should not be read as a finding (the guard withholds it)."""
    problems = [text for name, text in QUALITY_WARNINGS.items() if (guard.get("quality") or {}).get(name)]
    parts = [OOD_WARNING] if guard.get("in_distribution") is False else []
    if problems:
        parts.append(f"Image quality: {', '.join(problems)}; the model cannot judge such images.")
    return " ".join(parts) or None


def hidden(answer: dict) -> dict:
    """One answer (or frame) as the page gets it: without class, numbers and heatmap when the guard withholds it."""
    if not answer.get("warning"):
        return {**answer, "withheld": False}
    return {**answer, **{key: None for key in HIDDEN}, "withheld": True}


def withheld_view(response: dict) -> dict:
    """The response with every withheld part hidden, frames included."""
    view = hidden(response)
    if "frames" in response:
        view["frames"] = [hidden(frame) for frame in response["frames"]]
    return view


def withholds(response: dict) -> bool:
    return bool(response.get("warning")) or any(frame.get("warning") for frame in response.get("frames", ()))


class WithheldAnswers:
    """The last ``KEPT_ANSWERS`` withheld answers by id, with the sha256 of their input (for the audit line)."""

    def __init__(self, kept: int = KEPT_ANSWERS) -> None:
        self.kept = kept
        self.answers: OrderedDict[str, tuple[dict, str]] = OrderedDict()
        self.lock = threading.Lock()

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(16)

    def keep(self, answer_id: str, response: dict, input_sha256: str) -> None:
        with self.lock:
            self.answers[answer_id] = (response, input_sha256)
            while len(self.answers) > self.kept:
                self.answers.popitem(last=False)

    def take(self, answer_id: str) -> tuple[dict, str] | None:
        """The full answer and its input's sha256; it stays, so showing it again is audited again."""
        with self.lock:
            return self.answers.get(answer_id)
